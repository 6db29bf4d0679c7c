r"""Learnable Token Merging: the mask module, ``merge_tokens`` and ``unmerge_tokens``.

This file is the only place where the merge math lives; every LTM backbone
calls it. It is pure PyTorch, batched, and knows nothing of Swin or ViT: it
sees tokens ``(B, N, C)`` laid out on an ``h x w`` grid.

Paper: Y. Wang, Y. Yang, "Efficient Visual Transformer by Learnable Token
Merging", arXiv 2407.15219 / IEEE TPAMI 2025. The paper's method section
(its mask-module equations, which reviewers cite as Eqs. 3-4) could not be
read for this implementation; what is known is summarised in the project's
``ltm_paper.md``. The equations below are *ours*, numbered (L1)-(L6); where a
line follows a verified fact of the paper it says so, and every choice the
paper leaves open is listed under "Decisions".

Notation: block ``l`` receives tokens ``X`` (B x N x C) on an h x w grid;
``Z = X + Attn(LN(X))`` is the block's attention output (the paper merges
right after attention, Fig. 1). ``r`` is ``compression_ratio`` = N'/N, the
fraction of tokens kept (README: ``--compression-ratio 0.8``).

(L1) Merged grid (hard part, row/column-even). The TPAMI version reduces
     tokens evenly per row and per column so that merged tokens keep a 2-D
     grid. We keep N' >= ceil(r N) tokens on an h' x w' grid with
     h' in {floor(sqrt(r) h), ceil(sqrt(r) h)} and w' = ceil(ceil(r N) / h')
     (the smaller product wins; see :func:`plan_merge_grid`). Row i of the
     input grid goes to merged row floor(i h'/h), column j to floor(j w'/w):
     ``a(n)`` is the merged token (the "cell") that input token n belongs to.
     H[n, k] = 1[k = a(n)] is the hard assignment: every token belongs to
     exactly one merged token, neighbours to the same one.

(L2) Prior. G^(l-1), the previous block's mask on the same grid (the paper's
     mask module takes it as its second input, Fig. 1), or, in the first
     block of a stage, the uniform mask w0[n] = 1 / |cell a(n)|.

(L3) Merged token under the prior:  c_k = sum_{n: a(n)=k} w0[n] Z_n.

(L4) Soft part, one exponentiated-gradient (mirror-descent) step from the
     prior on the simplex of every cell, for the objective
     L(w) = - sum_n w[n] cos(Z_n, c_{a(n)}) (how well a merged token
     represents its members):
         w[n] = w0[n] exp(eta s_n) / sum_{m: a(m)=a(n)} w0[m] exp(eta s_m),
         s_n = cos(Z_n, c_{a(n)}),  eta = exp(log_step) > 0, learned.
     G^(l)[n, k] = H[n, k] w[n]  (hard part times soft part, as reviewers
     describe the paper's mask). Columns of G sum to 1.

(L5) merge:    X~ = G^T Z,  i.e.  X~_k = sum_{n: a(n)=k} w[n] Z_n   (B x N' x C):
     each merged token is a convex combination of the tokens of its cell.

(L6) unmerge:  U = Ĝ X~ with Ĝ = G row-normalised (rows sum to 1):
     U_n = X~_{a(n)}: every original position gets its merged token back, so
     unmerge(merge(Z)) = Z exactly when tokens within a cell are equal.

The LTM block then runs its MLP on the N' merged tokens and scatters the
result back:  out = Z + unmerge(MLP(LN(X~)))  (see the backbones).

Decisions the paper leaves open (ours, kept identical for every backbone):
  * Soft part (L4): the paper derives it from the gradient of its IB upper
    bound; that bound needs labels and cluster tables the block does not
    have at inference, and its exact form per block is unknown. We take one
    descent step on the label-free within-cell fidelity objective instead.
    This is our reading, not the paper's equation.
  * Mask-module parameters: one scalar ``log_step`` per block (initialised
    to 0, i.e. eta = 1); eta is capped at ``TokenMerger.MAX_STEP`` = 30,
    where the step is already an argmax, so that (L4)'s segment softmax
    needs no per-cell maximum (cosines are <= 1) and cannot underflow.
    The paper's parameter counts equal the baselines' to 0.1 M, so the
    module may have no or negligible parameters.
  * Where merging sits: after attention (paper Fig. 1); only the MLP runs on
    merged tokens, and the residual stream stays at full resolution, so the
    token count is restored after every block. Compounding r over all blocks
    contradicts the paper's FLOP ratios; MLP-only merging reproduces them.
  * Chaining G^(l-1) -> G^(l) is restricted to blocks that share a grid (one
    Swin stage, all ViT blocks); a stage's first block starts from (L2)'s
    uniform mask.
  * Tokens outside the grid (a ViT class token) are never merged.
  * The mask is computed in float32 also under autocast.
  * Sparse representation: G is stored as (a, w), never as an N x N' matrix,
    so merge/unmerge cost O(N C) (index_add / gather); ``MergeMask.dense()``
    builds G for tests and visualisation.

Speed: the code below is the reference, and what training runs. At
inference on CPU (float32, no gradient needed) :meth:`TokenMerger.merge` and
:func:`unmerge_add` hand the same equations to compiled kernels
(:mod:`mmltm.ops.fused`), which make one pass over the tokens where the
eager code makes about eight; the tests hold them to the reference.
"""
import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Optional, Tuple

import torch
import torch.nn as nn

from . import fused

__all__ = [
    'MergeMask', 'TokenMerger', 'plan_merge_grid', 'grid_assignment',
    'merge_tokens', 'unmerge_tokens', 'unmerge_add', 'check_compression_ratio',
    'build_token_merger', 'check_merge_mode', 'MERGE_MODES'
]


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


@lru_cache(maxsize=256)
def plan_merge_grid(h: int, w: int, ratio: float) -> Tuple[int, int]:
    """The merged grid ``(h', w')`` of (L1) for an ``h x w`` token grid.

    It is the smallest row/column-even grid that keeps at least
    ``ceil(ratio * h * w)`` tokens: ``h'`` is one of the two integers nearest
    to ``sqrt(ratio) * h`` and ``w' = ceil(target / h')``.
    """
    if h < 1 or w < 1:
        raise ValueError(f'token grid must be at least 1x1, got {h}x{w}')
    check_compression_ratio(ratio)
    target = math.ceil(ratio * h * w - 1e-9)
    best = (h, w)
    side = math.sqrt(ratio) * h
    for hh in {max(1, min(h, math.floor(side))), max(1, min(h, math.ceil(side)))}:
        ww = max(1, math.ceil(target / hh))
        if ww > w:
            continue
        if (hh * ww, abs(hh / h - ww / w)) < (best[0] * best[1], abs(best[0] / h - best[1] / w)):
            best = (hh, ww)
    return best


@lru_cache(maxsize=256)
def _grid_assignment_cpu(h: int, w: int, hh: int, ww: int) -> torch.Tensor:
    rows = torch.arange(h) * hh // h
    cols = torch.arange(w) * ww // w
    return (rows[:, None] * ww + cols[None, :]).reshape(-1)


@lru_cache(maxsize=256)
def _uniform_weight_cpu(h: int, w: int, hh: int, ww: int) -> torch.Tensor:
    assign = _grid_assignment_cpu(h, w, hh, ww)
    sizes = torch.bincount(assign, minlength=hh * ww).float()
    return 1.0 / sizes[assign]


def grid_assignment(h: int, w: int, hh: int, ww: int,
                    device: Optional[torch.device] = None) -> torch.Tensor:
    """``a`` of (L1): for each of the ``h*w`` tokens (row-major) the index of
    its merged token on the ``hh x ww`` grid. Every merged token gets at least
    one input token when ``hh <= h`` and ``ww <= w``."""
    if not (1 <= hh <= h and 1 <= ww <= w):
        raise ValueError(f'merged grid {hh}x{ww} must fit in the token grid {h}x{w}')
    return _on_device(_grid_assignment_cpu, h, w, hh, ww, device=device)


@lru_cache(maxsize=256)
def _cell_sum_plan_cpu(h: int, w: int, hh: int, ww: int) -> Tuple[torch.Tensor, ...]:
    """How to sum the cells of the grid assignment with fast gathers.

    Returns ``(first, cells, members)``: ``first[k]`` is the first token of
    cell k (row-major), ``members`` every other token and ``cells`` the cell
    it belongs to. A cell sum is then ``x[first] + index_add(cells,
    x[members])``: the per-slice ``index_add`` loop runs over only N - N'
    tokens instead of N (a third of them at r = 0.7), and the gathers are
    contiguous row copies.
    """
    assign = _grid_assignment_cpu(h, w, hh, ww)
    order = torch.argsort(assign, stable=True)
    sorted_cells = assign[order]
    sizes = torch.bincount(assign, minlength=hh * ww)
    rank = torch.arange(assign.numel()) - (torch.cumsum(sizes, 0) - sizes)[sorted_cells]
    rest = rank > 0
    return order[rank == 0], sorted_cells[rest], order[rest]


@lru_cache(maxsize=256)
def _cell_csr_cpu(h: int, w: int, hh: int, ww: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """The grid assignment as CSR for the fused kernel: the tokens of cell k
    are ``tokens[ptr[k]:ptr[k + 1]]`` (row-major within the cell)."""
    assign = _grid_assignment_cpu(h, w, hh, ww)
    sizes = torch.bincount(assign, minlength=hh * ww)
    ptr = torch.cat([sizes.new_zeros(1), torch.cumsum(sizes, 0)])
    return ptr, torch.argsort(assign, stable=True)


def _plan_first(h, w, hh, ww):
    return _cell_sum_plan_cpu(h, w, hh, ww)[0]


def _plan_cells(h, w, hh, ww):
    return _cell_sum_plan_cpu(h, w, hh, ww)[1]


def _plan_members(h, w, hh, ww):
    return _cell_sum_plan_cpu(h, w, hh, ww)[2]


@lru_cache(maxsize=512)
def _on_device(fn, *args, device=None) -> torch.Tensor:
    # cached per device so that a GPU forward does not copy the (constant)
    # assignment from the host in every block
    return fn(*args).to(device)


@dataclass
class MergeMask:
    """The merging mask G (N x N') of one block, stored sparsely.

    Attributes:
        assign (Tensor): long, the merged token of each input token: ``(N,)``
            when every sample shares the assignment (the LTM grid), or
            ``(B, N)`` when it is per sample (e.g. ToMe's matching).
        weight (Tensor): ``(B, N)`` the soft weight w[n]; weights of one cell
            sum to 1, so ``G[b, n, assign[n]] = weight[b, n]`` and every other
            entry of row n is 0.
        num_merged (int): N'.
        grid (tuple): ``(h, w)`` of the input tokens.
        merged_grid (tuple): ``(h', w')`` of the merged tokens.
    """
    assign: torch.Tensor
    weight: torch.Tensor
    num_merged: int
    grid: Tuple[int, int]
    merged_grid: Tuple[int, int]

    @property
    def num_tokens(self) -> int:
        return self.assign.shape[-1]

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
    def uniform(cls, h: int, w: int, merged_grid: Tuple[int, int], batch: int,
                device=None, dtype=torch.float32) -> 'MergeMask':
        """(L2): the uniform mask, w0[n] = 1 / |cell a(n)|."""
        assign = grid_assignment(h, w, *merged_grid, device=device)
        weight = _on_device(_uniform_weight_cpu, h, w, *merged_grid, device=device).to(dtype)
        return cls(assign, weight.expand(batch, -1), merged_grid[0] * merged_grid[1],
                   (h, w), tuple(merged_grid))


def _cell_sum(x: torch.Tensor, mask: MergeMask,
              weight: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``sum_{n: a(n)=k} weight[n] x_n`` for every cell k (``weight`` None:
    all ones): ``(B, N, C)`` -> ``(B, N', C)``."""
    B, N, C = x.shape
    assign = mask.assign
    (h, w), (hh, ww) = mask.grid, mask.merged_grid
    # the LTM grid assignment (the cached tensor itself, so the plan below is
    # known to describe it): two row gathers and an index_add over the N - N'
    # non-first members only, about 2x faster on CPU than an index_add over
    # all N tokens; the weights multiply the gathered rows, in place when no
    # gradient is needed, so no (B, N, C) temporary is made
    if assign.dim() == 1 and 1 <= hh <= h and 1 <= ww <= w and \
            hh * ww == mask.num_merged and \
            assign is grid_assignment(h, w, hh, ww, device=x.device):
        first = _on_device(_plan_first, h, w, hh, ww, device=x.device)
        members = _on_device(_plan_members, h, w, hh, ww, device=x.device)
        out = _weighted_rows(x, first, weight)
        if members.numel():
            out.index_add_(1, _on_device(_plan_cells, h, w, hh, ww, device=x.device),
                           _weighted_rows(x, members, weight))
        return out
    if weight is not None:
        x = x * weight.unsqueeze(-1)
    if assign.dim() == 2:  # per-sample assignment (e.g. ToMe)
        return x.new_zeros(B, mask.num_merged, C).scatter_add_(
            1, assign.unsqueeze(-1).expand(B, N, C), x)
    return x.new_zeros(B, mask.num_merged, C).index_add_(1, assign, x)


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


def merge_tokens(x: torch.Tensor, mask: MergeMask) -> torch.Tensor:
    """(L5) ``X~ = G^T X``: ``(B, N, C)`` -> ``(B, N', C)``.

    Computed as a weighted sum over the cells (gathers and ``index_add``),
    O(N C); the result has the dtype of ``x``.
    """
    N = x.shape[1]
    if N != mask.num_tokens:
        raise ValueError(f'merge_tokens: x has {N} tokens but the mask was built '
                         f'for {mask.num_tokens} ({mask.grid[0]}x{mask.grid[1]})')
    return _cell_sum(x, mask, mask.weight.to(x.dtype))


def unmerge_add(base: torch.Tensor, delta: torch.Tensor, mask: MergeMask) -> torch.Tensor:
    """``base + unmerge_tokens(delta, mask)``: the LTM block's residual add.

    ``base`` ``(B, N, C)``, ``delta`` ``(B, N', C)``. One pass over the
    tokens with the compiled kernel where it applies (:mod:`~mmltm.ops.fused`),
    the reference gather-and-add otherwise.
    """
    if base.shape[1] != mask.num_tokens:
        raise ValueError(f'unmerge_add: base has {base.shape[1]} tokens, the mask '
                         f'was built for {mask.num_tokens}')
    if mask.assign.dim() == 1 and delta.shape[1] == mask.num_merged and \
            base.shape[::2] == delta.shape[::2] and fused.can_fuse((base, delta)):
        return fused.unmerge_add(base, delta, mask.assign)
    return base + unmerge_tokens(delta, mask)


def unmerge_tokens(x_merged: torch.Tensor, mask: MergeMask) -> torch.Tensor:
    """(L6) ``U = Ĝ X~``: ``(B, N', C)`` -> ``(B, N, C)``.

    With the hard assignment each row of G has one non-zero entry, so the
    row-normalised Ĝ is one-hot and unmerging is a gather: every original
    position receives its merged token.
    """
    if x_merged.shape[1] != mask.num_merged:
        raise ValueError(f'unmerge_tokens: got {x_merged.shape[1]} merged tokens, '
                         f'the mask has {mask.num_merged}')
    if mask.assign.dim() == 1:
        return x_merged.index_select(1, mask.assign)
    B, _, C = x_merged.shape
    return x_merged.gather(1, mask.assign.unsqueeze(-1).expand(B, mask.num_tokens, C))


class TokenMerger(nn.Module):
    """The LTM mask module: computes G^(l) from Z and G^(l-1), (L1)-(L4).

    Args:
        compression_ratio (float): r = N'/N in (0, 1]. At 1.0 the module is
            the identity and the block equals its base block.
        init_step (float): initial eta of (L4). Default: 1.0.
        learnable_step (bool): learn ``log_step`` (one scalar). Default: True.
            At ``compression_ratio=1`` it is a buffer (same state-dict key).
    """

    #: cap of the step eta of (L4): at eta = 30 a cosine gap of 0.1 already
    #: weighs e^3 = 20x, i.e. the step is an argmax; the cap keeps (L4)'s
    #: exponentials clear of float32 underflow (see :meth:`forward`)
    MAX_STEP = 30.0

    def __init__(self, compression_ratio: float, init_step: float = 1.0,
                 learnable_step: bool = True) -> None:
        super().__init__()
        self.compression_ratio = check_compression_ratio(compression_ratio)
        if not 0 < init_step <= self.MAX_STEP:
            raise ValueError(f'init_step={init_step!r} is not allowed: the step '
                             f'eta must lie in (0, {self.MAX_STEP}]')
        log_step = torch.tensor(math.log(init_step))
        # at ratio 1 nothing is ever merged: a parameter there would get no
        # gradient and trip DDP's unused-parameter check; the key stays
        if learnable_step and self.compression_ratio < 1.0:
            self.log_step = nn.Parameter(log_step)
        else:
            self.register_buffer('log_step', log_step)

    def extra_repr(self) -> str:
        return f'compression_ratio={self.compression_ratio}'

    def merged_grid(self, hw: Tuple[int, int]) -> Tuple[int, int]:
        return plan_merge_grid(int(hw[0]), int(hw[1]), self.compression_ratio)

    def is_identity(self, hw: Tuple[int, int]) -> bool:
        """True when the merged grid is the input grid (nothing to merge)."""
        return tuple(self.merged_grid(hw)) == (int(hw[0]), int(hw[1]))

    def forward(self, z: torch.Tensor, hw: Tuple[int, int],
                prev: Optional[MergeMask] = None) -> MergeMask:
        """Build G^(l) for tokens ``z`` ``(B, N, C)`` on the grid ``hw``."""
        return self._build(z, hw, prev)[0]

    def merge(self, z: torch.Tensor, hw: Tuple[int, int],
              prev: Optional[MergeMask] = None) -> Tuple[MergeMask, torch.Tensor]:
        """G^(l) and the merged tokens ``merge_tokens(z, G)`` ``(B, N', C)``.

        The LTM blocks call this: at inference on CPU one compiled kernel
        computes both (:mod:`~mmltm.ops.fused`).
        """
        mask, merged = self._build(z, hw, prev)
        return mask, merge_tokens(z, mask) if merged is None else merged

    def _build(self, z: torch.Tensor, hw: Tuple[int, int],
               prev: Optional[MergeMask]) -> Tuple[MergeMask, Optional[torch.Tensor]]:
        B, N, C = z.shape
        h, w = int(hw[0]), int(hw[1])
        if N != h * w:
            raise ValueError(f'TokenMerger: {N} tokens do not fill a {h}x{w} grid')
        merged_grid = self.merged_grid((h, w))
        uniform = prev is None or prev.grid != (h, w) or prev.merged_grid != merged_grid \
            or prev.weight.shape[0] != B
        if uniform:
            prev = MergeMask.uniform(h, w, merged_grid, B, device=z.device)
        assign = prev.assign
        if assign is grid_assignment(h, w, *merged_grid, device=z.device) and \
                fused.can_fuse([z] if uniform else [z, prev.weight], [self.log_step]):
            ptr, tokens = _cell_csr_cpu(h, w, *merged_grid)  # CPU only
            eta = min(math.exp(float(self.log_step)), self.MAX_STEP)
            weight, merged = fused.mask_and_merge(
                z, None if uniform else prev.weight, ptr, tokens, eta)
            return MergeMask(assign, weight, prev.num_merged, (h, w), merged_grid), merged
        with torch.autocast(device_type=z.device.type, enabled=False):
            zf = z.float()
            w0 = None if uniform else prev.weight.float()
            # (L3) merged tokens under the prior; only their direction is
            # used, so under the uniform prior the plain cell sum will do
            centroids = _cell_sum(zf, prev, w0)
            # s_n = cos(Z_n, c_a(n)) = <Z_n, c_a(n)> / (|Z_n| |c_a(n)|): the
            # centroids are gathered unnormalised and both norms divide a
            # (B, N) vector, which saves a (B, N', C) division
            dot = torch.linalg.vecdot(centroids.index_select(1, assign), zf)
            norms = torch.linalg.vector_norm(zf, dim=-1) * \
                torch.linalg.vector_norm(centroids, dim=-1).index_select(1, assign)
            score = dot / norms.clamp_min(1e-12)  # (B, N), in [-1, 1]
            # (L4) w ∝ w0 exp(eta s) within each cell (segment softmax).
            # Every logit log w0 + eta s is at most log w0 + eta (s <= 1), so
            # exp(eta (s - 1)) needs no per-cell maximum to stay <= 1; with
            # eta <= MAX_STEP the largest term of a cell stays above
            # w0_max e^(-2 MAX_STEP) >= e^(-60) / N, far from float32 underflow.
            # Under the uniform prior w0 is constant in a cell and cancels.
            eta = self.log_step.float().exp().clamp(max=self.MAX_STEP)
            e = torch.exp(eta * (score - 1.0))
            if w0 is not None:
                e = e * w0
            denom = e.new_zeros(B, prev.num_merged).index_add_(1, assign, e)
            weight = e / denom.index_select(1, assign)
        return MergeMask(assign, weight, prev.num_merged, (h, w), merged_grid), None


#: modes of :func:`build_token_merger`: the learned LTM mask, or ToMe's
#: training-free bipartite matching (:mod:`mmltm.ops.tome`) as a baseline
MERGE_MODES = ('ltm', 'tome')


def check_merge_mode(mode: str) -> str:
    """Raise early on an unknown ``mode``, naming the allowed ones."""
    if mode not in MERGE_MODES:
        raise ValueError(f'merge_mode={mode!r} is not supported; allowed: {list(MERGE_MODES)}')
    return mode


def build_token_merger(mode: str, compression_ratio: float, dims: Optional[int] = None,
                       **kwargs) -> nn.Module:
    """The mask module of an LTM block for ``mode``.

    Args:
        mode (str): ``'ltm'`` (:class:`TokenMerger`) or ``'tome'``
            (:class:`~mmltm.ops.tome.ToMeMerger`).
        compression_ratio (float): N'/N in (0, 1].
        dims (int, optional): the token channel count of the block (not used
            by these modules yet; the backbones always pass it).
        **kwargs: the chosen class's other arguments.

    Raises:
        ValueError: naming the bad mode and the allowed ones.
    """
    check_merge_mode(mode)
    if mode == 'tome':
        from .tome import ToMeMerger  # lazy: the baseline is optional
        return ToMeMerger(compression_ratio, **kwargs)
    return TokenMerger(compression_ratio, **kwargs)
