"""Learnable Token Merging: the entry point the backbones use.

The pieces live one idea per module (every backbone calls them, none
re-derives them):

* :mod:`~mmltm.ops.grid_plan`: the merged ``h' x w'`` grid and its
  precomputed index lists (:class:`GridPlan`);
* :mod:`~mmltm.ops.merge_mask`: the mask G (:class:`MergeMask`), merge and
  unmerge;
* :mod:`~mmltm.ops.mask_module`: the mask modules, with the equations and
  every decision the paper leaves open: :class:`TokenMerger` (the learned,
  per-image LTM mask) and :class:`GridTokenMerger` (the fixed grid);
* :mod:`~mmltm.ops.tome`: ToMe's bipartite matching, the baseline;
* :mod:`~mmltm.ops.fused`: the compiled CPU kernels of the fixed grid.

:func:`build_token_merger` picks the mask module of a block by
``merge_mode``.
"""
from typing import Optional

import torch.nn as nn

from .grid_plan import GridPlan, check_compression_ratio, get_grid_plan, plan_merge_grid
from .mask_module import MAX_STEP, GridTokenMerger, TokenMerger
from .merge_mask import MergeMask, merge_tokens, unmerge_add, unmerge_tokens

__all__ = [
    'MergeMask', 'TokenMerger', 'GridTokenMerger', 'GridPlan', 'get_grid_plan',
    'plan_merge_grid', 'merge_tokens', 'unmerge_tokens', 'unmerge_add',
    'check_compression_ratio', 'check_merge_mode', 'build_token_merger',
    'MERGE_MODES', 'MAX_STEP'
]

#: modes of :func:`build_token_merger`: the learned LTM mask module, the
#: fixed grid (ablation), or ToMe's training-free matching (baseline)
MERGE_MODES = ('ltm', 'grid', 'tome')


def check_merge_mode(merge_mode: str) -> str:
    """Raise early on an unknown ``merge_mode``, naming the allowed ones."""
    if merge_mode not in MERGE_MODES:
        raise ValueError(f'merge_mode={merge_mode!r} is not supported; '
                         f'allowed: {list(MERGE_MODES)}')
    return merge_mode


def build_token_merger(mode: str, compression_ratio: float, dims: Optional[int] = None,
                       **kwargs) -> nn.Module:
    """The mask module of an LTM block for ``mode``.

    Args:
        mode (str): ``'ltm'`` (:class:`TokenMerger`), ``'grid'``
            (:class:`GridTokenMerger`) or ``'tome'``
            (:class:`~mmltm.ops.tome.ToMeMerger`).
        compression_ratio (float): N'/N in (0, 1].
        dims (int, optional): channels of the tokens the block merges;
            required by ``'ltm'`` (its learned projection), ignored by the
            others.
        **kwargs: the chosen class's other arguments (``'ltm'``:
            ``feat_dims``, ``init_step``, ``learnable_step``; ``'grid'``:
            ``init_step``, ``learnable_step``; ``'tome'``: ``window_size``).

    Raises:
        ValueError: naming a bad mode, or a missing ``dims`` for ``'ltm'``.
        TypeError: for an argument the chosen class does not take.
    """
    check_merge_mode(mode)
    if mode == 'ltm':
        if dims is None:
            raise ValueError("merge_mode='ltm' needs dims (the token channels) for "
                             'its learned projection')
        return TokenMerger(compression_ratio, dims, **kwargs)
    if mode == 'grid':
        return GridTokenMerger(compression_ratio, **kwargs)
    from .tome import ToMeMerger  # lazy: the baseline is optional
    return ToMeMerger(compression_ratio, **kwargs)
