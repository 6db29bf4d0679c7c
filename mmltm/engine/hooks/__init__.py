from .checkpoint_guard_hook import CheckpointGuardHook
from .ib_cluster_hook import IBClusterHook

__all__ = ['CheckpointGuardHook', 'IBClusterHook']
