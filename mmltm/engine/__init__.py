"""Training-engine pieces of mmltm.

Importing this package (``import mmltm`` does) registers the mmltm hooks and
installs the checkpoint-loading fix for torch >= 2.6, so that mmengine's
``Runner`` can resume from / load its own checkpoints again (see
:mod:`mmltm.engine.checkpoint` for what exactly changes and why).
"""
from . import hooks  # noqa: F401  (registers the hooks)
from .checkpoint import (checkpoint_fix_installed, install_checkpoint_fix,
                         uninstall_checkpoint_fix)
from .runner_utils import (check_checkpoint_keys, check_data_roots,
                           collect_data_roots, init_cpu_dist,
                           prepare_runner_cfg, scope_init, task_of_config)

install_checkpoint_fix()

__all__ = [
    'install_checkpoint_fix', 'uninstall_checkpoint_fix',
    'checkpoint_fix_installed', 'check_data_roots', 'collect_data_roots',
    'prepare_runner_cfg', 'task_of_config', 'init_cpu_dist', 'scope_init',
    'check_checkpoint_keys'
]
