"""Let mmengine 0.10.7 reload its own checkpoints under torch >= 2.6.

Why this exists
---------------
torch 2.6 changed the default of ``torch.load`` to ``weights_only=True``: the
unpickler then only accepts tensors and plain containers. mmengine's
``Runner`` saves more than that in every checkpoint (``meta['message_hub']``
holds ``HistoryBuffer`` objects and numpy arrays, ``meta['seed']`` may be a
numpy scalar, the optimizer state of some wrappers holds custom objects), and
mmengine 0.10.7 calls ``torch.load(filename, map_location=...)`` without the
argument. The result: ``--resume``, ``load_from`` and an ``init_cfg`` of type
``Pretrained`` pointing at a checkpoint written by another mmengine run (for
example the LTM-Swin ImageNet checkpoint used by the detection configs) all
fail with ``UnpicklingError: Weights only load failed``.

What it changes, and only that
------------------------------
:func:`install_checkpoint_fix` replaces the loader that mmengine's
:class:`~mmengine.runner.CheckpointLoader` uses for **local paths** (the
scheme with the empty prefix, ``load_from_local``) by
:func:`load_from_local`, which is mmengine's function plus
``weights_only=False``. Remote schemes (``http(s)://``, ``open-mmlab://``,
``s3://`` ...) keep torch's safe default: a file downloaded from a URL written
in somebody else's config is not something the user vetted; a local file is
one the user (or their own training run) put there and named on the command
line or in their config. Unpickling a file can run code, so only point
mmltm's tools at local checkpoints you trust, exactly as with torch < 2.6.

The fix is installed by ``import mmltm`` (``mmltm/engine/__init__.py``), i.e.
also by ``custom_imports=dict(imports=['mmltm'])`` in a config, which is
processed before the Runner loads anything. No environment variable is
needed. It is idempotent; :func:`uninstall_checkpoint_fix` restores
mmengine's loader (used by the tests).
"""
import inspect
import os.path as osp
from typing import Any, Callable, Optional, Union

import torch
from mmengine.runner.checkpoint import CheckpointLoader
from mmengine.runner.checkpoint import load_from_local as _mmengine_load_local

#: the CheckpointLoader prefix that mmengine uses for plain file paths
LOCAL_SCHEME = ''

# torch < 1.13 has no ``weights_only`` argument (and never restricted loads)
_HAS_WEIGHTS_ONLY = 'weights_only' in inspect.signature(torch.load).parameters


def load_from_local(filename: str,
                    map_location: Optional[Union[str, torch.device,
                                                 Callable]] = None) -> Any:
    """Load a local checkpoint written by mmengine, including its ``meta``.

    Same contract as :func:`mmengine.runner.checkpoint.load_from_local` (the
    name is kept because ``CheckpointLoader`` logs ``__name__[10:]``, i.e.
    "local"), but unpickles with ``weights_only=False`` so that the
    ``message_hub`` / numpy objects mmengine stores in ``meta`` load again.

    Args:
        filename (str): Path of the checkpoint file; ``~`` is expanded.
        map_location (str | torch.device | callable, optional): Same as
            :func:`torch.load`. Defaults to None.

    Returns:
        dict: The loaded checkpoint.
    """
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    if _HAS_WEIGHTS_ONLY:
        return torch.load(
            filename, map_location=map_location, weights_only=False)
    return torch.load(filename, map_location=map_location)


def install_checkpoint_fix() -> None:
    """Make :class:`CheckpointLoader` load local files with
    ``weights_only=False`` (see the module docstring). Idempotent."""
    CheckpointLoader.register_scheme(
        prefixes=LOCAL_SCHEME, loader=load_from_local, force=True)


def uninstall_checkpoint_fix() -> None:
    """Restore mmengine's own loader for local paths."""
    CheckpointLoader.register_scheme(
        prefixes=LOCAL_SCHEME, loader=_mmengine_load_local, force=True)


def checkpoint_fix_installed() -> bool:
    """Whether local paths currently go through :func:`load_from_local`."""
    return CheckpointLoader._get_checkpoint_loader(
        'any/local/file.pth') is load_from_local


__all__ = [
    'load_from_local', 'install_checkpoint_fix', 'uninstall_checkpoint_fix',
    'checkpoint_fix_installed'
]
