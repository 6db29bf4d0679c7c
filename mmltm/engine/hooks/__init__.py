from .ib_cluster_hook import IBClusterHook

__all__ = ['IBClusterHook']
