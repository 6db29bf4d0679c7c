"""Training-engine pieces of mmltm.

Importing this package (``import mmltm`` does) registers the mmltm hooks and
the atomic checkpoint file backend, nothing else. The checkpoint-loading fix
for torch >= 2.6 (see :mod:`mmltm.engine.checkpoint`) is installed by
``tools/train.py`` / ``tools/test.py``, by :class:`CheckpointGuardHook`, by
an explicit :func:`install_checkpoint_fix` call, or by importing
:mod:`mmltm.engine.checkpoint_fix` (a config's ``custom_imports``).
"""
from . import hooks  # noqa: F401  (registers the hooks)
from .checkpoint import (ATOMIC_BACKEND, AtomicLocalBackend,
                         UnreadableCheckpointError, checkpoint_fix_installed,
                         install_checkpoint_fix, read_local_checkpoint,
                         uninstall_checkpoint_fix)
from .runner_utils import (check_checkpoint_keys, check_data_roots,
                           close_dist, collect_data_roots, init_cpu_dist,
                           prepare_runner_cfg, runner_for, scope_init,
                           task_of_config)

__all__ = [
    'install_checkpoint_fix', 'uninstall_checkpoint_fix',
    'checkpoint_fix_installed', 'check_data_roots', 'collect_data_roots',
    'prepare_runner_cfg', 'task_of_config', 'init_cpu_dist', 'close_dist',
    'runner_for', 'scope_init',
    'check_checkpoint_keys', 'AtomicLocalBackend',
    'UnreadableCheckpointError', 'read_local_checkpoint', 'ATOMIC_BACKEND'
]
