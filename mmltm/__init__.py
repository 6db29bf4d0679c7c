"""mmltm: Learnable Token Merging vision transformers for OpenMMLab.

``import mmltm`` (or ``custom_imports=dict(imports=['mmltm'])`` in a config)
registers every backbone, loss, head, hook and dataset of the package in the
mmltm, mmpretrain, mmdet and mmseg registries, and does nothing else:

* the toy-data generator (:mod:`mmltm.datasets.toy`) is imported only when
  a toy dataset is built or one of its functions is used;
* the checkpoint-loading fix for torch >= 2.6 is *not* installed; the tools
  install it, and other entry points opt in with
  ``mmltm.engine.install_checkpoint_fix()`` or by importing
  ``mmltm.engine.checkpoint_fix`` (e.g. in a config's ``custom_imports``),
  see :mod:`mmltm.engine.checkpoint`.
"""
from .version import __version__
from . import registry  # noqa: F401
from . import ops  # noqa: F401
from . import engine  # noqa: F401
from . import models  # noqa: F401
from . import datasets  # noqa: F401  (registration only; the generator is lazy)

__all__ = ['__version__']
