"""The merge scope of an LTM backbone: how far merged tokens travel.

Every LTM backbone takes ``merge_scope``:

* ``'ffn'`` (the default): every LTM block merges after its attention, runs
  its FFN on the merged tokens and unmerges (:mod:`.ltm_block`). Attention
  always sees the full grid.
* ``'stage'``: a stage's *merging block* (its first LTM block whose grid is
  big enough to merge; LTM-ViT: the layer ``merge_layer``) merges as in
  ``'ffn'`` (attention on the full grid, G from its mask module, FFN on the
  merged tokens) but hands on the **merged** tokens; the following blocks of
  the stage run whole (attention and FFN) on the merged ``h' x w'`` grid.
  Where a full grid is needed (stage outputs, Swin's PatchMerging input,
  MobileViT's fold, EfficientViT's next stage, ViT's patch-token outputs),
  the merged stream is unmerged **as a residual**::

      Z0 = the merging block's attention output (full grid)
      m0 = merge(Z0, G)                   # what the merging block's FFN saw
      m  = the merged stream after the last block run on the merged grid
      full = Z0 + unmerge(m - m0, G)

  so the full-resolution detail that merging averages out is kept (every
  block after the merger adds its update to every position of its merged
  token), and a stage whose only LTM block is the merger equals ``'ffn'``
  exactly. One unmerge per stage.

Decisions (ours; the paper's figure only shows the merged tokens passed on):

* **No compounding**: only the merging block of a stage merges; the blocks
  after it run on its merged grid and do not merge further, so no masks
  need composing and a stage costs one merge and one (residual) unmerge.
  The paper's FLOPs ratios are reached with one merge per stage
  (per-arch ``'stage'`` defaults of each backbone).
* The mask modules of the blocks that do not merge in ``'stage'`` scope are
  still built: both scopes have the **same parameters and state-dict keys**,
  so a checkpoint of either scope loads into the other unchanged. Those
  modules do not run; in training they are tied into the block's output
  with an exact zero (:func:`~.ltm_block.tie_unused_parameters`, for DDP
  without ``find_unused_parameters``) and get a zero gradient.
* ``last_merge_masks`` in ``'stage'`` scope: the merging block's G, ``None``
  for every other block (they did not merge).
* ``merge_mode='tome'``: its merged tokens have no 2-D layout (merged grid
  ``(1, N')``). Backbones whose later blocks need a grid (Swin's windows,
  EfficientViT's convolutions) reject ``merge_scope='stage'`` with it at
  build time; global attention (ViT, MobileViT) runs on it.

:class:`StageRunner` runs the LTM blocks of one stage in either scope; a
backbone's stage loop calls it per block and asks it for the full grid at
the stage end (:meth:`StageRunner.full`). The blocks provide ``forward``
(``'ffn'``), ``forward_merging`` and ``forward_whole``
(:class:`~.ltm_block.LTMBlockMixin`).
"""
from dataclasses import dataclass
from typing import Any, Optional, Sequence, Tuple, Union

import torch

from mmltm.ops import MergeMask, check_compression_ratio, unmerge_add

__all__ = ['MERGE_SCOPES', 'GRIDLESS_MODES', 'check_merge_scope', 'check_scope_mode',
           'check_stage_ratios', 'MergedStage', 'StageRunner']

#: the allowed values of ``merge_scope``
MERGE_SCOPES = ('ffn', 'stage')

#: merge modes whose merged tokens have no 2-D layout
GRIDLESS_MODES = ('tome', )


def check_merge_scope(merge_scope: str) -> str:
    """Raise early on an unknown ``merge_scope``, naming the allowed ones."""
    if merge_scope not in MERGE_SCOPES:
        raise ValueError(f'merge_scope={merge_scope!r} is not supported; '
                         f'allowed: {list(MERGE_SCOPES)}')
    return merge_scope


def check_scope_mode(merge_scope: str, merge_mode: str, backbone: str, why: str) -> None:
    """Raise for ``merge_scope='stage'`` with a gridless ``merge_mode`` on a
    backbone whose blocks after the merger need a 2-D grid (``why``)."""
    if merge_scope == 'stage' and merge_mode in GRIDLESS_MODES:
        raise ValueError(f"merge_scope='stage' with merge_mode={merge_mode!r} is not "
                         f"supported by {backbone}: {why}, and {merge_mode!r} merged "
                         f"tokens have no 2-D layout; use merge_mode 'ltm' or 'grid', "
                         f"or merge_scope='ffn'")


def check_stage_ratios(ratio: Union[float, Sequence[float]],
                       num_stages: int) -> Union[float, Tuple[float, ...]]:
    """``ratio`` as a float, or a per-stage sequence as a tuple of
    ``num_stages`` floats, each checked to lie in (0, 1]."""
    if isinstance(ratio, (list, tuple)):
        if len(ratio) != num_stages:
            raise ValueError(f'compression_ratio={ratio!r} is not allowed: a per-stage '
                             f'sequence needs {num_stages} entries (one per stage), '
                             f'got {len(ratio)}')
        return tuple(check_compression_ratio(r, f'compression_ratio[{i}]')
                     for i, r in enumerate(ratio))
    return check_compression_ratio(ratio)


@dataclass
class MergedStage:
    """What a stage's merging block hands on besides the merged tokens.

    Attributes:
        base (Tensor): ``Z0`` ``(B, N, C)``, the merging block's full-grid
            attention output (patch tokens only).
        start (Tensor): ``m0 = merge(Z0, G)`` ``(B, N', C)``.
        mask (MergeMask): G.
        num_extra (int): extra tokens (a class token) in front of the
            merged stream; never merged, passed through as they are.
    """
    base: torch.Tensor
    start: torch.Tensor
    mask: MergeMask
    num_extra: int = 0

    @property
    def merged_grid(self) -> Tuple[int, int]:
        """``(h', w')`` the following blocks run on."""
        return tuple(self.mask.merged_grid)

    def full(self, merged: torch.Tensor) -> torch.Tensor:
        """``Z0 + unmerge(m - m0, G)`` (with the extra tokens of ``merged``
        in front): the full-grid tokens of the merged stream ``merged``."""
        E = self.num_extra
        out = unmerge_add(self.base, merged[:, E:] - self.start, self.mask)
        return torch.cat([merged[:, :E], out], dim=1) if E else out


class StageRunner:
    """Runs the LTM blocks of one stage in a merge scope.

    Call it on every LTM block in forward order (``x = runner(block, x)``);
    the tokens it returns are on the full grid until the merging block ran,
    on the merged grid after it (``'stage'``). :meth:`full` gives the
    full-grid tokens at any point.

    Args:
        merge_scope (str): ``'ffn'`` or ``'stage'``.
        hw (tuple, optional): the stage's token grid (EfficientViT's blocks
            read it from their map: None).
        merge_from (int): in ``'stage'`` scope the index of the first block
            that may merge; the blocks before it run whole on the full grid.
            Default: 0.
        **block_kwargs: passed to every block call (``num_extra_tokens``).
    """

    def __init__(self, merge_scope: str, hw: Optional[Tuple[int, int]] = None,
                 merge_from: int = 0, **block_kwargs: Any) -> None:
        self.merge_scope = check_merge_scope(merge_scope)
        self.hw = None if hw is None else (int(hw[0]), int(hw[1]))
        self.merge_from = merge_from
        self.block_kwargs = block_kwargs
        self.mask: Optional[MergeMask] = None  # 'ffn': the previous block's G
        self.stage: Optional[MergedStage] = None  # 'stage': after the merger
        self.index = 0

    @property
    def merged(self) -> bool:
        """True when the tokens are on the merged grid."""
        return self.stage is not None

    def __call__(self, block, x: torch.Tensor) -> torch.Tensor:
        index, self.index = self.index, self.index + 1
        grid = () if self.hw is None else (self.hw, )
        if self.merge_scope == 'ffn':
            x, self.mask = block(x, *grid, prev=self.mask, **self.block_kwargs)
            return x
        if self.stage is not None:
            return block.forward_whole(x, self.stage.merged_grid, **self.block_kwargs)
        if index < self.merge_from:
            return block.forward_whole(x, self.hw, **self.block_kwargs)
        x, self.stage = block.forward_merging(x, self.hw, **self.block_kwargs)
        return x

    def full(self, x: torch.Tensor) -> torch.Tensor:
        """The full-grid tokens of ``x`` (unmerged as a residual when the
        stage merged; ``x`` itself otherwise)."""
        return x if self.stage is None else self.stage.full(x)
