"""mmltm: Learnable Token Merging vision transformers for OpenMMLab.

``import mmltm`` (or ``custom_imports=dict(imports=['mmltm'])`` in a config)
registers every backbone, loss, head and hook of the package in the
mmpretrain, mmdet and mmseg registries, and installs the checkpoint-loading
fix for torch >= 2.6 (see :mod:`mmltm.engine.checkpoint`).
"""
from .version import __version__
from . import registry  # noqa: F401
from . import ops  # noqa: F401
from . import engine  # noqa: F401
from . import models  # noqa: F401
from . import datasets  # noqa: F401

__all__ = ['__version__']
