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

A file that torch cannot read (a text file, a truncated or corrupt
checkpoint) raises :class:`UnreadableCheckpointError` naming the path,
instead of torch's bare ``UnpicklingError: invalid load key`` or
``PytorchStreamReader failed reading zip archive``.

Who installs it: ``import mmltm`` does **not** (no import side effects beyond
registration). ``tools/train.py``, ``tools/test.py`` and
:class:`~mmltm.engine.hooks.CheckpointGuardHook` call
:func:`install_checkpoint_fix`; any other entry point either calls it or
imports :mod:`mmltm.engine.checkpoint_fix`, e.g. from a config::

    custom_imports = dict(imports=['mmltm', 'mmltm.engine.checkpoint_fix'],
                          allow_failed_imports=False)

which mmengine processes before the Runner loads anything (so mmdet's own
``tools/train.py --resume`` works too). It is idempotent;
:func:`uninstall_checkpoint_fix` restores mmengine's loader.

Atomic writes
-------------
:class:`AtomicLocalBackend` (registered as the mmengine file backend
``'mmltm_atomic_local'``) writes every file to a temporary name in the same
folder, flushes and fsyncs it, then renames it over the target
(``os.replace``, atomic on POSIX), so a run killed while saving leaves the
previous checkpoint intact and never a truncated ``iter_N.pth``. mmengine's
``CheckpointHook`` uses it with ``backend_args=dict(backend=
'mmltm_atomic_local')``, which ``CheckpointGuardHook`` sets for a local
``out_dir`` when the config gives no ``backend_args``.
"""
import inspect
import os
import os.path as osp
import pickle
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Callable, Optional, Union

import mmengine
import torch
from mmengine.fileio import LocalBackend
from mmengine.fileio.backends import register_backend
from mmengine.fileio.backends.registry_utils import backends as _BACKENDS
from mmengine.runner.checkpoint import CheckpointLoader
from mmengine.runner.checkpoint import load_from_local as _mmengine_load_local

#: the CheckpointLoader prefix that mmengine uses for plain file paths
LOCAL_SCHEME = ''

# torch < 1.13 has no ``weights_only`` argument (and never restricted loads)
_HAS_WEIGHTS_ONLY = 'weights_only' in inspect.signature(torch.load).parameters

#: name of :class:`AtomicLocalBackend` in mmengine's file-backend registry
ATOMIC_BACKEND = 'mmltm_atomic_local'

# what torch.load raises for a file that is no (complete) torch checkpoint
_UNREADABLE_ERRORS = (pickle.UnpicklingError, EOFError, RuntimeError,
                      ValueError, zipfile.BadZipFile, UnicodeDecodeError)


class UnreadableCheckpointError(RuntimeError):
    """A local checkpoint file exists but torch cannot read it."""


def read_local_checkpoint(filename: str,
                          map_location: Optional[Union[str, torch.device,
                                                       Callable]] = None
                          ) -> Any:
    """``torch.load`` with ``weights_only=False`` whose failure names the
    file.

    Args:
        filename (str): Path of the checkpoint file; ``~`` is expanded.
        map_location (str | torch.device | callable, optional): Same as
            :func:`torch.load`.

    Raises:
        FileNotFoundError: if there is no such file.
        UnreadableCheckpointError: if torch cannot read it (text file,
            truncated or corrupt checkpoint).
    """
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    kwargs = dict(weights_only=False) if _HAS_WEIGHTS_ONLY else {}
    try:
        return torch.load(filename, map_location=map_location, **kwargs)
    except _UNREADABLE_ERRORS as err:
        reason = str(err).rstrip('.')
        raise UnreadableCheckpointError(
            f'checkpoint {filename} ({osp.getsize(filename)} bytes) cannot '
            f'be read: {type(err).__name__}: {reason}. It is not a file '
            'written by torch.save, or it is truncated / corrupt (e.g. a run '
            'killed while saving it)') from err


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

    Raises:
        FileNotFoundError: if there is no such file.
        UnreadableCheckpointError: naming the file, if torch cannot read it.
    """
    return read_local_checkpoint(filename, map_location=map_location)


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


class AtomicLocalBackend(LocalBackend):
    """mmengine's local file backend whose writes are atomic: the data goes
    to a temporary file in the target's folder, is flushed and fsynced, and
    then renamed over the target. A reader (or a resumed run) sees either
    the old file or the complete new one, never a truncated file."""

    @staticmethod
    def _atomic_write(data: Union[bytes, str], filepath: Union[str, Path],
                      mode: str, encoding: Optional[str] = None) -> None:
        filepath = str(filepath)
        folder = osp.dirname(osp.abspath(filepath))
        mmengine.mkdir_or_exist(folder)
        fd, tmp = tempfile.mkstemp(
            prefix=f'.{osp.basename(filepath)}.', suffix='.tmp', dir=folder)
        try:
            with os.fdopen(fd, mode, encoding=encoding) as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, filepath)
        except BaseException:
            if osp.exists(tmp):
                os.remove(tmp)
            raise

    def put(self, obj: bytes, filepath: Union[str, Path]) -> None:
        """Write bytes to ``filepath`` atomically (temp file + rename)."""
        self._atomic_write(obj, filepath, 'wb')

    def put_text(self,
                 obj: str,
                 filepath: Union[str, Path],
                 encoding: str = 'utf-8') -> None:
        """Write text to ``filepath`` atomically (temp file + rename)."""
        self._atomic_write(obj, filepath, 'w', encoding=encoding)


# a registration under our own name; never replaces another backend
if _BACKENDS.get(ATOMIC_BACKEND) is None:
    register_backend(ATOMIC_BACKEND, AtomicLocalBackend)
elif _BACKENDS[ATOMIC_BACKEND].__name__ != AtomicLocalBackend.__name__:
    raise KeyError(f'file backend {ATOMIC_BACKEND!r} is already registered '
                   f'for {_BACKENDS[ATOMIC_BACKEND]!r}')

__all__ = [
    'load_from_local', 'install_checkpoint_fix', 'uninstall_checkpoint_fix',
    'checkpoint_fix_installed', 'read_local_checkpoint',
    'UnreadableCheckpointError', 'AtomicLocalBackend', 'ATOMIC_BACKEND'
]
