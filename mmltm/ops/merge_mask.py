r"""The merging mask G of an LTM block, and merge / unmerge with it.

G is ``N x N'``: column k holds the weights with which the N input tokens
form merged token k, and every row has at most one non-zero entry (each
token belongs to exactly one merged token: the "hard" part), so G is stored
sparsely as ``(assign, weight)``::

    G[b, n, assign[b, n]] = weight[b, n],   every other entry 0

Columns sum to 1 (merged tokens are convex combinations). Then

    merge:    X~ = G^T Z                 X~_k = sum_{n: a(n)=k} w[n] Z_n
    unmerge:  U  = Ĝ X~ (rows of G normalised to 1, i.e. one-hot rows):
              U_n = X~_{a(n)}, every position gets its merged token back.

Both cost O(N C) with gathers and an ``index_add`` over flattened rows; no
``N x N'`` product is ever formed (``MergeMask.dense()`` builds G for tests
and visualisation). The code here is the reference; at inference on CPU
:func:`unmerge_add` hands a shared assignment to the compiled kernel
(:mod:`mmltm.ops.fused`).
"""
from dataclasses import dataclass
from typing import Optional, Tuple

import torch

from . import fused
from .grid_plan import NEIGHBOUR_OFFSETS, GridPlan

__all__ = ['MergeMask', 'merge_tokens', 'unmerge_tokens', 'unmerge_add']


@dataclass
class MergeMask:
    """The merging mask G (N x N') of one block, stored sparsely.

    Attributes:
        assign (Tensor): long, the merged token of each input token: ``(N,)``
            when every sample shares the assignment (the fixed grid), or
            ``(B, N)`` when it is per sample (the learned LTM mask, ToMe).
        weight (Tensor): ``(B, N)`` the soft weight w[n]; the weights of one
            merged token sum to 1.
        num_merged (int): N'.
        grid (tuple): ``(h, w)`` of the input tokens.
        merged_grid (tuple): ``(h', w')`` of the merged tokens.
        plan (GridPlan, optional): the grid plan the mask was built on. With
            it, merging uses the plan's precomputed index lists (anchors for a
            per-sample mask, the first member of each cell for the fixed
            grid); without it (ToMe), generic scatters.
    """
    assign: torch.Tensor
    weight: torch.Tensor
    num_merged: int
    grid: Tuple[int, int]
    merged_grid: Tuple[int, int]
    plan: Optional[GridPlan] = None

    @property
    def num_tokens(self) -> int:
        return self.assign.shape[-1]

    @property
    def batch_size(self) -> int:
        return self.weight.shape[0]

    @property
    def per_sample(self) -> bool:
        return self.assign.dim() == 2

    def batched_assign(self) -> torch.Tensor:
        """``assign`` as ``(B, N)``."""
        return self.assign.expand(self.weight.shape[0], -1)

    def dense(self) -> torch.Tensor:
        """G as a dense ``(B, N, N')`` tensor (for tests and visualisation)."""
        B, N = self.weight.shape
        g = self.weight.new_zeros(B, N, self.num_merged)
        g.scatter_(2, self.batched_assign().unsqueeze(-1), self.weight.unsqueeze(-1))
        return g

    @classmethod
    def uniform(cls, plan: GridPlan, batch: int, dtype=torch.float32) -> 'MergeMask':
        """The fixed-grid mask with uniform weights, w0[n] = 1 / |cell(n)|."""
        return cls(plan.cell, plan.uniform_weight.to(dtype).expand(batch, -1),
                   plan.num_merged, plan.grid, plan.merged_grid, plan)

    def check_prior_for(self, grid: Tuple[int, int], merged_grid: Tuple[int, int],
                        batch: int, who: str) -> None:
        """Raise unless this mask can be the prior ``G(l-1)`` of a block with
        that grid, merged grid and batch size."""
        if tuple(self.grid) != tuple(grid) or tuple(self.merged_grid) != tuple(merged_grid) \
                or self.batch_size != batch:
            raise ValueError(
                f'{who}: prev was built for a {self.grid[0]}x{self.grid[1]} grid merged to '
                f'{self.merged_grid[0]}x{self.merged_grid[1]} with batch {self.batch_size}, '
                f'but this block has a {grid[0]}x{grid[1]} grid merged to '
                f'{merged_grid[0]}x{merged_grid[1]} with batch {batch}; '
                f'pass prev=None for a block that starts a new grid')


def _flat_index(assign: torch.Tensor, num_merged: int) -> torch.Tensor:
    """Per-sample ``(B, M)`` indices into a flattened ``(B * N', C)`` tensor."""
    B = assign.shape[0]
    offset = torch.arange(B, device=assign.device).unsqueeze(1) * num_merged
    return (assign + offset).reshape(-1)


def _weighted_rows(x: torch.Tensor, index: torch.Tensor,
                   weight: Optional[torch.Tensor]) -> torch.Tensor:
    """``x[:, index] * weight[:, index, None]`` with one new tensor."""
    rows = x.index_select(1, index)
    if weight is None:
        return rows
    wr = weight.index_select(1, index).unsqueeze(-1)
    if rows.requires_grad or wr.requires_grad:
        return rows * wr
    return rows.mul_(wr)


def cell_sum(x: torch.Tensor, mask: MergeMask,
             weight: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``sum_{n: a(n)=k} weight[n] x_n`` for every merged token k
    (``weight`` None: all ones): ``(B, N, C)`` -> ``(B, N', C)``."""
    B, N, C = x.shape
    plan, K = mask.plan, mask.num_merged
    if plan is not None and torch.compiler.is_exporting():
        return _gathered_cell_sum(x, mask, weight)
    if plan is not None and not mask.per_sample:
        # the fixed grid: one row gather for the first member of each cell and
        # an index_add over the other members only (N - N' of them), about
        # twice as fast on CPU as an index_add over all N tokens
        out = _weighted_rows(x, plan.first, weight)
        if plan.rest.numel():
            out.index_add_(1, plan.rest_cell, _weighted_rows(x, plan.rest, weight))
        return out
    if plan is not None:
        # a per-sample mask on a grid plan: every anchor stays in its own cell
        # (anchor k is the k-th merged token), only the movable tokens scatter
        out = _weighted_rows(x, plan.anchor, weight).reshape(B * K, C)
        moved = _weighted_rows(x, plan.movable, weight).reshape(-1, C)
        out = out.index_add(0, _flat_index(mask.assign.index_select(1, plan.movable), K), moved)
        return out.view(B, K, C)
    if weight is not None:
        x = x * weight.unsqueeze(-1)
    if mask.per_sample:  # e.g. ToMe's matching
        return x.new_zeros(B * K, C).index_add_(
            0, _flat_index(mask.assign, K), x.reshape(B * N, C)).view(B, K, C)
    return x.new_zeros(B, K, C).index_add_(1, mask.assign, x)


def _gathered_cell_sum(x: torch.Tensor, mask: MergeMask,
                       weight: Optional[torch.Tensor]) -> torch.Tensor:
    """:func:`cell_sum` without a scatter, for exported graphs: merged token
    k gathers each token that may join it (``plan.receivers``: the members
    of the 3 x 3 cells around k) and keeps those assigned to k.

    An ``index_add`` with repeated indices exports to a ``ScatterND`` with
    ``reduction='add'``, which onnxruntime's CPU provider splits over its
    threads without guarding the repeats (onnxruntime issue 18048): the sums
    came out wrong by up to 0.2 in some runs of one session (2 threads,
    LTM-Swin at 800x1344). A gather has no such race on any runtime. One
    gather of ``(B, N', S, C)`` per neighbouring cell (S the largest cell;
    the fixed grid needs its own cell only): about 9 S times the work of the
    scatter, small next to a block.
    """
    receivers, receiver_valid = mask.plan.receivers, mask.plan.receiver_valid
    if weight is not None:
        x = x * weight.unsqueeze(-1).to(x.dtype)
    B, C, K = x.shape[0], x.shape[2], mask.num_merged
    size = receivers.shape[1] // len(NEIGHBOUR_OFFSETS)
    cells = torch.arange(K, device=x.device).unsqueeze(1)
    out = x.new_zeros(B, K, C)
    for j in range(len(NEIGHBOUR_OFFSETS) if mask.per_sample else 1):
        tokens = receivers[:, j * size:(j + 1) * size]  # (K, S)
        keep = receiver_valid[:, j * size:(j + 1) * size]
        if mask.per_sample:
            keep = keep & (mask.assign.index_select(1, tokens.reshape(-1)).view(B, K, size) == cells)
        rows = x.index_select(1, tokens.reshape(-1)).view(B, K, size, C)
        out = out + (rows * keep.unsqueeze(-1).to(x.dtype)).sum(2)
    return out


def merge_tokens(x: torch.Tensor, mask: MergeMask) -> torch.Tensor:
    """``X~ = G^T X``: ``(B, N, C)`` -> ``(B, N', C)``, in the dtype of ``x``."""
    N = x.shape[1]
    if N != mask.num_tokens:
        raise ValueError(f'merge_tokens: x has {N} tokens but the mask was built '
                         f'for {mask.num_tokens} ({mask.grid[0]}x{mask.grid[1]})')
    return cell_sum(x, mask, mask.weight.to(x.dtype))


def unmerge_tokens(x_merged: torch.Tensor, mask: MergeMask) -> torch.Tensor:
    """``U = Ĝ X~``: ``(B, N', C)`` -> ``(B, N, C)``, a gather (every
    original position receives its merged token)."""
    if x_merged.shape[1] != mask.num_merged:
        raise ValueError(f'unmerge_tokens: got {x_merged.shape[1]} merged tokens, '
                         f'the mask has {mask.num_merged}')
    if not mask.per_sample:
        return x_merged.index_select(1, mask.assign)
    B, K, C = x_merged.shape
    return x_merged.reshape(B * K, C).index_select(
        0, _flat_index(mask.assign, K)).view(B, mask.num_tokens, C)


def unmerge_add(base: torch.Tensor, delta: torch.Tensor, mask: MergeMask) -> torch.Tensor:
    """``base + unmerge_tokens(delta, mask)``: the LTM block's residual add.

    ``base`` ``(B, N, C)``, ``delta`` ``(B, N', C)``. One pass over the
    tokens with the compiled kernel where it applies (see
    :mod:`~mmltm.ops.fused`), the reference gather-and-add otherwise.
    """
    if base.shape[1] != mask.num_tokens:
        raise ValueError(f'unmerge_add: base has {base.shape[1]} tokens, the mask '
                         f'was built for {mask.num_tokens}')
    if delta.shape[1] == mask.num_merged and base.shape[::2] == delta.shape[::2] and \
            fused.can_fuse((base, delta)):
        return fused.unmerge_add(base, delta, mask.assign)
    return base + unmerge_tokens(delta, mask)
