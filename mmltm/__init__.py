"""mmltm: Learnable Token Merging vision transformers for OpenMMLab.

``import mmltm`` (or ``custom_imports=dict(imports=['mmltm'])`` in a config)
registers every backbone, loss, head and hook of the package in the mmltm,
mmpretrain, mmdet and mmseg registries, and does nothing else:

* the toy-data generator (:mod:`mmltm.datasets.toy`) is imported only when
  used (``mmltm.datasets`` resolves lazily; the tools import it on demand);
* the checkpoint-loading fix for torch >= 2.6 is *not* installed; the tools
  install it, and other entry points opt in with
  ``mmltm.engine.install_checkpoint_fix()`` or by importing
  ``mmltm.engine.checkpoint_fix`` (e.g. in a config's ``custom_imports``),
  see :mod:`mmltm.engine.checkpoint`.
"""
import importlib
from typing import Any

from .version import __version__
from . import registry  # noqa: F401
from . import ops  # noqa: F401
from . import engine  # noqa: F401
from . import models  # noqa: F401

__all__ = ['__version__']


def __getattr__(name: str) -> Any:
    # ``mmltm.datasets`` holds the toy-data generator: loaded on first use
    if name == 'datasets':
        return importlib.import_module('.datasets', __name__)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
