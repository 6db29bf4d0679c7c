r"""The merged grid of an LTM block and everything about it that is fixed.

For an ``h x w`` token grid and a compression ratio ``r`` the LTM block
keeps ``N' = h' x w'`` merged tokens on a row/column-even grid (the TPAMI
version of the paper reduces tokens evenly per row and per column, so the
merged tokens keep a 2-D layout that Swin windows, PatchMerging and dense
heads understand). Row ``i`` of the input grid falls into merged row
``floor(i h'/h)`` and column ``j`` into merged column ``floor(j w'/w)``:
that partition into *cells* is the fixed skeleton both mask modules start
from.

Everything that depends only on ``(h, w, h', w')`` (the cell of each token,
each cell's anchor token, the neighbouring cells a token may join, the
uniform weights, the CSR layout of the compiled kernels) is computed once
with integer torch ops whose shapes follow from the four sizes alone, and
kept in a :class:`GridPlan` per ``(h, w, h', w', device)``. The forward
passes only index with these tensors: no data-dependent shapes, no
``bincount`` or boolean indexing, and the plan (not the identity of a
tensor) tells the code that an assignment is the grid's. Inside a
``torch.compile`` trace the same construction is traced into the graph
instead of read from the cache (so the graph has no break and no guard on
the cache); ``torch.export`` (non-strict) reads the cache, and exported
graphs hold the plans as constants.
"""
import dataclasses
import math
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

import torch

__all__ = ['check_compression_ratio', 'plan_merge_grid', 'GridPlan', 'get_grid_plan',
           'pin_input_size']

#: offsets (rows, cols) of the 3 x 3 neighbourhood of a cell, own cell first
NEIGHBOUR_OFFSETS = tuple([(0, 0)] + [(di, dj) for di in (-1, 0, 1)
                                      for dj in (-1, 0, 1) if (di, dj) != (0, 0)])


def check_compression_ratio(ratio: float, name: str = 'compression_ratio') -> float:
    """Validate r in (0, 1] and return it as a float.

    Raises:
        ValueError: naming the bad value and the allowed range.
    """
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) \
            or not math.isfinite(ratio) or not 0.0 < ratio <= 1.0:
        raise ValueError(f'{name}={ratio!r} is not allowed: it is the fraction '
                         f'of tokens kept, N\'/N, and must lie in (0, 1]')
    return float(ratio)


def _pinned(value):
    """``value`` as a Python constant inside a ``torch.compile`` trace.

    With ``dynamic=True`` (or a dimension marked dynamic) the token grid
    ``h x w`` and the module's float ratio reach the plan code as symbolic
    values. The merged grid is ``floor``/``ceil`` of ``sqrt(ratio) h``: as a
    size expression it costs minutes of symbolic reasoning per block (the
    first compile of a small LTM-Swin took 460 s) and the plan tensors get
    symbolic shapes. Hashing a symbolic int or float makes dynamo specialise
    it (a guard ``h == 16``), so the plan is built from constants: a new
    input size costs exactly one recompilation, of one graph. Outside a
    trace it returns ``value`` unchanged.
    """
    return next(iter({value}))


def pin_input_size(x: torch.Tensor) -> Tuple[int, int]:
    """Pin the height and width of ``x`` (a ``(B, C, H, W)`` image batch)
    inside a ``torch.compile`` trace; ``(H, W)`` as Python ints.

    A backbone that calls this first compiles one static graph per input
    size also under ``dynamic=True``. Without it the grid is pinned at the
    first merge (:func:`_pinned`), which gives the same count (one
    recompilation per new size) but traces the layers before it, e.g.
    mmdet's shifted-window padding, in symbolic sizes: 12x slower to trace
    for a small LTM-Swin (about 170 s instead of 14 s here).
    """
    return _pinned(x.shape[-2]), _pinned(x.shape[-1])


_MERGED_GRIDS: Dict[Tuple[int, int, float], Tuple[int, int]] = {}


def plan_merge_grid(h: int, w: int, ratio: float) -> Tuple[int, int]:
    """The merged grid ``(h', w')`` for an ``h x w`` token grid.

    It is the smallest row/column-even grid that keeps at least
    ``ceil(ratio * h * w)`` tokens: ``h'`` is one of the two integers nearest
    to ``sqrt(ratio) * h`` and ``w' = ceil(target / h')``. Ties are broken
    explicitly, so eager code, traced graphs and exported models agree:
    fewest tokens first, then the aspect ratio closest to the input's, then
    the larger ``h'``.
    """
    compiling = torch.compiler.is_dynamo_compiling()
    if compiling:
        h, w, ratio = _pinned(h), _pinned(w), _pinned(ratio)
    else:
        h, w = int(h), int(w)
        if h < 1 or w < 1:
            raise ValueError(f'token grid must be at least 1x1, got {h}x{w}')
        key = (h, w, float(ratio))
        found = _MERGED_GRIDS.get(key)
        if found is not None:
            return found
        check_compression_ratio(ratio)
    # inside a torch.compile trace: no cache (its lookups and mutation would
    # guard or break the graph) and no ``isfinite`` (a graph break on a
    # symbolic float); the mask module checked ``ratio`` when it was built
    target = math.ceil(ratio * h * w - 1e-9)
    side = math.sqrt(ratio) * h
    low = max(1, min(h, math.floor(side)))
    high = max(1, min(h, math.ceil(side)))
    candidates = [(h, w)]
    for hh in ((low, ) if low == high else (low, high)):
        ww = max(1, math.ceil(target / hh))
        if ww <= w:
            candidates.append((hh, ww))
    # the tie-break as an explicit loop (no ``min(key=...)``: dynamo does
    # not trace a tuple-valued key)
    best, best_key = None, None
    for hh, ww in candidates:
        rank = (hh * ww, abs(hh / h - ww / w), -hh)
        if best_key is None or rank < best_key:
            best, best_key = (hh, ww), rank
    if not compiling:  # no side effect in a traced frame
        _MERGED_GRIDS[key] = best
    return best


@dataclass(frozen=True)
class GridPlan:
    """Fixed facts of one ``h x w -> h' x w'`` merge, on one device.

    Attributes:
        grid, merged_grid (tuple): ``(h, w)`` and ``(h', w')``.
        cell (Tensor): long ``(N,)``, the cell (merged token) of each token,
            row-major.
        uniform_weight (Tensor): float ``(N,)``, ``1 / |cell(n)|``.
        anchor (Tensor): long ``(N',)``, the token nearest the centre of each
            cell (the upper-left one of the central tokens): it always stays
            in its cell, so no merged token is ever empty.
        movable (Tensor): long ``(M,)``, every other token (``M = N - N'``).
        candidates (Tensor): long ``(M, 9)``, for each movable token the cells
            of the 3 x 3 neighbourhood of its own cell, own cell first;
            positions outside the merged grid repeat the own cell.
        candidate_valid (Tensor): bool ``(M, 9)``, False for those repeats.
        cell_ptr, cell_tokens (Tensor): the partition as CSR (the tokens of
            cell k are ``cell_tokens[cell_ptr[k]:cell_ptr[k + 1]]``), for the
            compiled kernels.
        first, rest, rest_cell (Tensor): the first token of every cell, the
            other tokens and their cells (a cell sum is one gather plus an
            ``index_add`` over ``rest`` only).
        receivers (Tensor, optional): long ``(N', 9 S)`` (S the largest
            cell): every token that may join merged token k, i.e. the S
            member slots of each of the 3 x 3 cells around k (in the order of
            ``NEIGHBOUR_OFFSETS``, own cell first), padded;
            ``receiver_valid`` (bool, same shape) is False for the padding.
            Exported graphs sum cells with them, without a scatter (see
            ``merge_mask.cell_sum``). Only the cached plans carry them (None
            in a plan built inside a ``torch.compile`` trace, which never
            exports).
    """
    grid: Tuple[int, int]
    merged_grid: Tuple[int, int]
    cell: torch.Tensor
    uniform_weight: torch.Tensor
    anchor: torch.Tensor
    movable: torch.Tensor
    candidates: torch.Tensor
    candidate_valid: torch.Tensor
    cell_ptr: torch.Tensor
    cell_tokens: torch.Tensor
    first: torch.Tensor
    rest: torch.Tensor
    rest_cell: torch.Tensor
    receivers: Optional[torch.Tensor] = None
    receiver_valid: Optional[torch.Tensor] = None

    @property
    def num_tokens(self) -> int:
        return self.grid[0] * self.grid[1]

    @property
    def num_merged(self) -> int:
        return self.merged_grid[0] * self.merged_grid[1]

    @property
    def is_identity(self) -> bool:
        return self.grid == self.merged_grid


def _build_plan(h: int, w: int, hh: int, ww: int, device: torch.device) -> Dict[str, torch.Tensor]:
    """The plan's tensors, with torch ops whose shapes follow from the four
    ints alone (no ``bincount``, ``nonzero`` or boolean indexing), so that
    the same code runs eagerly (once, cached) and inside a ``torch.compile``
    trace (where it becomes part of the graph)."""
    def arange(n: int) -> torch.Tensor:
        return torch.arange(n, device=device, dtype=torch.long)

    def where_false(flags: torch.Tensor, count: int) -> torch.Tensor:
        # positions of the 0 entries in increasing order; ``count`` of them
        return torch.sort(flags, stable=True).indices[:count]

    def marked(index: torch.Tensor) -> torch.Tensor:
        # 1 at ``index``, 0 elsewhere (scatter, not index_fill with a Python
        # scalar, which torch.jit's tracer, i.e. the FLOP counter, rejects)
        return torch.zeros(N, dtype=torch.long, device=device).scatter(
            0, index, torch.ones_like(index))

    N, K = h * w, hh * ww
    rows, cols = arange(h) * hh // h, arange(w) * ww // w
    cell = (rows[:, None] * ww + cols[None, :]).reshape(-1)
    # merged row k covers input rows ceil(k h / h') .. ceil((k + 1) h / h') - 1
    row_edge = (arange(hh + 1) * h + hh - 1) // hh
    col_edge = (arange(ww + 1) * w + ww - 1) // ww
    row_start, row_size = row_edge[:-1], row_edge[1:] - row_edge[:-1]
    col_start, col_size = col_edge[:-1], col_edge[1:] - col_edge[:-1]
    sizes = (row_size[:, None] * col_size[None, :]).reshape(-1)
    # anchor of cell (r, c): its central token (upper-left of the centre)
    anchor_r = row_start + (row_size - 1) // 2
    anchor_c = col_start + (col_size - 1) // 2
    anchor = (anchor_r[:, None] * w + anchor_c[None, :]).reshape(-1)
    movable = where_false(marked(anchor), N - K)
    own = cell.index_select(0, movable)
    mr, mc = own // ww, own % ww
    cand, valid = [], []
    for di, dj in NEIGHBOUR_OFFSETS:
        r, c = mr + di, mc + dj
        ok = (r >= 0) & (r < hh) & (c >= 0) & (c < ww)
        cand.append(torch.where(ok, r * ww + c, own))
        valid.append(ok)
    order = torch.sort(cell, stable=True).indices
    ptr = torch.cat([sizes.new_zeros(1), torch.cumsum(sizes, 0)])
    # in cell order the first member of cell k sits at ptr[k]
    rest_pos = where_false(marked(ptr[:-1]), N - K)
    return dict(
        cell=cell, uniform_weight=(1.0 / sizes.index_select(0, cell).double()).float(),
        anchor=anchor, movable=movable,
        candidates=torch.stack(cand, 1), candidate_valid=torch.stack(valid, 1),
        cell_ptr=ptr, cell_tokens=order, first=order.index_select(0, ptr[:-1]),
        rest=order.index_select(0, rest_pos),
        rest_cell=cell.index_select(0, order.index_select(0, rest_pos)))


_PLANS: Dict[Tuple[int, int, int, int, str], GridPlan] = {}


def get_grid_plan(grid: Tuple[int, int], merged_grid: Tuple[int, int],
                  device=None) -> GridPlan:
    """The :class:`GridPlan` of ``grid -> merged_grid`` on ``device``.

    Built once per ``(grid, merged_grid, device)`` and kept: a forward pass
    on a GPU does not copy the plan from the host in every block.
    """
    if torch.compiler.is_dynamo_compiling():  # constants, see _pinned
        grid, merged_grid = tuple(map(_pinned, grid)), tuple(map(_pinned, merged_grid))
    h, w = int(grid[0]), int(grid[1])
    hh, ww = int(merged_grid[0]), int(merged_grid[1])
    if not (1 <= hh <= h and 1 <= ww <= w):
        raise ValueError(f'merged grid {hh}x{ww} must fit in the token grid {h}x{w}')
    device = torch.device(device if device is not None else 'cpu')
    if torch.compiler.is_dynamo_compiling():
        # inside a torch.compile trace: build the plan in the graph (static
        # shapes, a few dozen small ops) rather than through the host cache,
        # whose dict mutation and lookups would break or guard the graph
        return GridPlan(grid=(h, w), merged_grid=(hh, ww), **_build_plan(h, w, hh, ww, device))
    key = (h, w, hh, ww, str(device))
    plan = _PLANS.get(key)
    if plan is None:
        plan = GridPlan(grid=(h, w), merged_grid=(hh, ww), **_build_plan(h, w, hh, ww, device))
        receivers, valid = _receivers(plan)
        plan = _PLANS[key] = dataclasses.replace(plan, receivers=receivers,
                                                 receiver_valid=valid)
    return plan


def _largest_span(n: int, m: int) -> int:
    """The most input rows (columns) that one of ``m`` merged rows covers
    when ``n`` rows are split as in :func:`_build_plan`."""
    return max(((k + 1) * n + m - 1) // m - (k * n + m - 1) // m for k in range(m))


def _receivers(plan: GridPlan) -> Tuple[torch.Tensor, torch.Tensor]:
    """``plan.receivers`` and ``plan.receiver_valid`` (see :class:`GridPlan`):
    a token joins its own cell or one of the 8 around it, so the tokens that
    may join cell k are the members of the 3 x 3 cells around k."""
    (h, w), (hh, ww) = plan.grid, plan.merged_grid
    N, K = plan.num_tokens, plan.num_merged
    ptr = plan.cell_ptr
    sizes = ptr[1:] - ptr[:-1]
    largest = _largest_span(h, hh) * _largest_span(w, ww)
    own = torch.arange(K, device=ptr.device)
    kr, kc = own // ww, own % ww
    receivers, valid = [], []
    for di, dj in NEIGHBOUR_OFFSETS:
        r, c = kr + di, kc + dj
        inside = (r >= 0) & (r < hh) & (c >= 0) & (c < ww)
        around = torch.where(inside, r * ww + c, own)
        start, size = ptr.index_select(0, around), sizes.index_select(0, around)
        for rank in range(largest):
            receivers.append(plan.cell_tokens.index_select(0, (start + rank).clamp(max=N - 1)))
            valid.append(inside & (size > rank))
    return torch.stack(receivers, 1), torch.stack(valid, 1)
