r"""The LTM mask modules: ``G(l) = MaskModule(Z, G(l-1))``.

Paper: Y. Wang, Y. Yang, "Efficient Visual Transformer by Learnable Token
Merging", arXiv 2407.15219 / IEEE TPAMI 2025. Its method section (the mask
module's equations, which reviewers cite as Eqs. 3-4) could not be read for
this implementation; what is known is summarised in the project's
``ltm_paper.md``. The equations below are *ours*, numbered; where a line
follows a verified fact of the paper it says so, and every choice the paper
leaves open is listed under "Decisions".

Notation: block ``l`` receives tokens ``X`` (B x N x C) on an h x w grid;
``Z = X + Attn(LN(X))`` is its attention output (the paper merges right
after attention, Fig. 1). ``r = compression_ratio = N'/N`` is the fraction
of tokens kept. The merged tokens sit on the row/column-even ``h' x w'``
grid of :func:`~mmltm.ops.grid_plan.plan_merge_grid` (TPAMI: "even token
reduction per row and column"); cell k of that grid is the block of input
rows/columns that falls into merged row/column k, and its *anchor* is the
token nearest the cell's centre. ``G(l)`` is ``N x N'``, one non-zero per
row (:class:`~mmltm.ops.merge_mask.MergeMask`).

``TokenMerger`` (``merge_mode='ltm'``, the default): learned, per image
-----------------------------------------------------------------------
(M1) Features. ``f_n = P (Z_n - mean_c Z_n)``, ``P`` a learned
     ``d x C`` projection (``d = feat_dims``, default 8, initialised as a
     random orthonormal map so that cosines of ``f`` approximate cosines of
     the centred ``Z``: merging is similarity-driven already at
     initialisation, also on a checkpoint trained without LTM).
(M2) Prior (the mask module's second input, Fig. 1). The representative of
     merged token k is its merged feature under the previous block's mask,
     ``q_k = sum_n G(l-1)[n, k] f_n``; in the first block of a grid (no
     G(l-1)) it is the anchor's feature, ``q_k = f_anchor(k)``.
(M3) Assignment (hard part, per image). Anchors stay in their cell. Every
     other token n may join the cell of its own grid cell ``c(n)`` or any of
     the 8 cells around it, and joins the most similar one:
         a(n) = argmax_{k in N9(c(n))} cos(f_n, q_k)     (own cell on ties).
     So merged tokens gather similar neighbours across the fixed cell
     borders, every merged token keeps at least its anchor (no empty
     column), and the merged grid stays ``h' x w'``.
(M4) Soft part: one exponentiated-gradient step on the simplex of each
     merged token for the fidelity ``-sum_n w_n s_n``, ``s_n =
     cos(f_n, q_a(n))``, from the uniform weights:
         w_n = exp(eta s_n) / sum_{m: a(m) = a(n)} exp(eta s_m),
     ``eta`` learned (``log_step``, smoothly bounded, see below).
     ``G(l)[n, a(n)] = w_n`` (hard part times soft part, as reviewers
     describe the paper's mask); columns sum to 1.
(M5) merge ``X~ = G^T Z``; the block runs its FFN on the N' merged tokens;
     unmerge ``Ĝ`` (row-normalised G) copies each result back to every token
     of its merged token (:mod:`mmltm.ops.merge_mask`).
Parameters per block: ``d C + 1`` (``P`` and ``log_step``): about 35 k for
Swin-T or ViT-S, 96 k for Swin-B (the paper's parameter counts equal the
baselines' to 0.1 M). The task loss and the IB loss reach ``P`` and ``eta``
through the weights (M4) (and ``q`` through the prior); the arg-max of (M3)
has no gradient.

``GridTokenMerger`` (``merge_mode='grid'``): the fixed grid, for ablation
-------------------------------------------------------------------------
(G1) ``a(n) = c(n)``: every token stays in its grid cell, for every image.
(G2) Prior w0: G(l-1)'s weights, or the uniform ``1 / |cell|``.
(G3) ``c_k = sum_{n in cell k} w0_n Z_n``; ``s_n = cos(Z_n, c_a(n))``.
(G4) ``w_n = w0_n exp(eta s_n) / sum_{m in cell} w0_m exp(eta s_m)``.
Its one parameter per block is ``log_step``. At inference on CPU (float32,
no gradient) :meth:`GridTokenMerger.merge` runs (G2)-(G4) and the merge in
one compiled kernel (:mod:`mmltm.ops.fused`).

Decisions the paper leaves open (ours):
  * Soft part: the paper derives it from the gradient of its IB upper
    bound; that bound needs labels and cluster tables a block does not have
    at inference, so we take one descent step on a label-free fidelity
    objective instead, and train the module with the IB loss on top
    (:mod:`mmltm.models.losses.ib_loss`). Not the paper's equation.
  * The step ``eta = MAX_STEP * tanh(exp(log_step) / MAX_STEP)``: about
    ``exp(log_step)`` for small steps, smoothly bounded by ``MAX_STEP = 30``
    (where the step is already an arg-max) and never with a zero gradient;
    the bound keeps ``exp(eta (s - 1))`` (``s <= 1``) above float32
    underflow without a per-cell maximum.
  * Candidates of (M3): the 3 x 3 cells around a token's own cell, so a
    merged token never reaches further than about two cells; anchors fixed.
  * Chaining G(l-1) -> G(l) only between blocks that share a grid (one Swin
    stage, all ViT blocks, one MobileViT block); the first block of a grid
    gets ``prev=None``. Any other ``prev`` (another grid or batch) is an
    error, never silently replaced.
  * A class token (ViT) is never merged (the backbones keep it out).
  * The mask is computed in float32, also under autocast.
"""
import math
from typing import Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import fused
from .grid_plan import GridPlan, check_compression_ratio, get_grid_plan, plan_merge_grid
from .merge_mask import MergeMask, cell_sum, merge_tokens, unmerge_tokens

__all__ = ['TokenMerger', 'GridTokenMerger', 'MAX_STEP']

#: bound of the step eta: at eta = 30 a cosine gap of 0.1 already weighs
#: e^3 = 20x, i.e. the step is an arg-max
MAX_STEP = 30.0


def _raw_step(step: float) -> float:
    """``log_step`` for which :func:`bounded_step` gives ``step``."""
    if not 0 < step < MAX_STEP:
        raise ValueError(f'init_step={step!r} is not allowed: the step eta must lie in '
                         f'(0, {MAX_STEP})')
    return math.log(MAX_STEP * math.atanh(step / MAX_STEP))


def bounded_step(log_step: torch.Tensor) -> torch.Tensor:
    """``eta = MAX_STEP * tanh(exp(log_step) / MAX_STEP)`` (smooth bound)."""
    return MAX_STEP * torch.tanh(log_step.float().exp() / MAX_STEP)


def segment_softmax_weights(score: torch.Tensor, eta: torch.Tensor, mask_like: MergeMask,
                            prior: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``w_n = p_n exp(eta s_n) / sum_{a(m)=a(n)} p_m exp(eta s_m)`` for
    scores ``s <= 1`` ``(B, N)`` grouped by ``mask_like``'s assignment
    (``p`` the prior weights, uniform when None).

    Every logit ``eta s_n`` is at most ``eta``, so ``exp(eta (s - 1)) <= 1``
    needs no per-group maximum; with ``eta <= MAX_STEP`` the largest term of
    a group stays above ``e^(-2 MAX_STEP)``, far from float32 underflow.
    """
    e = torch.exp(eta * (score - 1.0))
    if prior is not None:
        e = e * prior
    # each token's group total: the cell sums unmerged back to the tokens
    denom = cell_sum(e.unsqueeze(-1), mask_like)  # (B, N', 1)
    return e / unmerge_tokens(denom, mask_like).squeeze(-1)


class _MaskModule(nn.Module):
    """What both mask modules share: the ratio, the merged grid, the checks."""

    def __init__(self, compression_ratio: float, init_step: float,
                 learnable_step: bool) -> None:
        super().__init__()
        self.compression_ratio = check_compression_ratio(compression_ratio)
        log_step = torch.tensor(_raw_step(init_step))
        # at ratio 1 nothing is ever merged: a parameter there would get no
        # gradient and trip DDP's unused-parameter check; the key stays
        if learnable_step and self.compression_ratio < 1.0:
            self.log_step = nn.Parameter(log_step)
        else:
            self.register_buffer('log_step', log_step)

    def extra_repr(self) -> str:
        return f'compression_ratio={self.compression_ratio}'

    @property
    def step(self) -> torch.Tensor:
        """The step eta of the soft part (a 0-dim tensor)."""
        return bounded_step(self.log_step)

    def merged_grid(self, hw: Tuple[int, int]) -> Tuple[int, int]:
        """``(h', w')`` for the token grid ``hw``."""
        return plan_merge_grid(int(hw[0]), int(hw[1]), self.compression_ratio)

    def is_identity(self, hw: Tuple[int, int]) -> bool:
        """True when the merged grid is the input grid (nothing to merge)."""
        return tuple(self.merged_grid(hw)) == (int(hw[0]), int(hw[1]))

    def _plan(self, z: torch.Tensor, hw: Tuple[int, int],
              prev: Optional[MergeMask]) -> GridPlan:
        B, N, _ = z.shape
        h, w = int(hw[0]), int(hw[1])
        if N != h * w:
            raise ValueError(f'{type(self).__name__}: {N} tokens do not fill a {h}x{w} grid')
        merged_grid = self.merged_grid((h, w))
        if prev is not None:
            prev.check_prior_for((h, w), merged_grid, B, type(self).__name__)
        return get_grid_plan((h, w), merged_grid, z.device)

    def forward(self, z: torch.Tensor, hw: Tuple[int, int],
                prev: Optional[MergeMask] = None) -> MergeMask:
        """G(l) for tokens ``z`` ``(B, N, C)`` on the grid ``hw``; ``prev`` is
        G(l-1) of the same grid and batch, or None (first block of a grid)."""
        return self._build(z, hw, prev)[0]

    def merge(self, z: torch.Tensor, hw: Tuple[int, int],
              prev: Optional[MergeMask] = None) -> Tuple[MergeMask, torch.Tensor]:
        """G(l) and the merged tokens ``merge_tokens(z, G)`` ``(B, N', C)``:
        what the LTM blocks call."""
        mask, merged = self._build(z, hw, prev)
        return mask, merge_tokens(z, mask) if merged is None else merged

    def _build(self, z, hw, prev) -> Tuple[MergeMask, Optional[torch.Tensor]]:
        raise NotImplementedError


class TokenMerger(_MaskModule):
    """The learned LTM mask module, (M1)-(M4) of the module docstring.

    Args:
        compression_ratio (float): r = N'/N in (0, 1]. At 1.0 the module is
            the identity (and holds no parameters).
        dims (int): channels C of the tokens it merges.
        feat_dims (int): d, the width of the learned similarity features.
            Default: 8 (capped at ``dims``).
        init_step (float): initial eta of the soft part, in (0, 30).
            Default: 1.0.
        learnable_step (bool): learn eta. Default: True.
    """

    def __init__(self, compression_ratio: float, dims: int, feat_dims: int = 8,
                 init_step: float = 1.0, learnable_step: bool = True) -> None:
        if isinstance(dims, bool) or not isinstance(dims, int) or dims < 1:
            raise ValueError(f'dims={dims!r} is not allowed: the token channels, a positive int')
        if isinstance(feat_dims, bool) or not isinstance(feat_dims, int) or feat_dims < 1:
            raise ValueError(f'feat_dims={feat_dims!r} is not allowed: a positive int')
        super().__init__(compression_ratio, init_step, learnable_step)
        self.dims, self.feat_dims = dims, min(feat_dims, dims)
        weight = nn.init.orthogonal_(torch.empty(self.feat_dims, dims))
        if self.compression_ratio < 1.0:
            self.proj = nn.Parameter(weight)
        else:
            self.register_buffer('proj', weight)

    def extra_repr(self) -> str:
        return f'compression_ratio={self.compression_ratio}, dims={self.dims}, ' \
               f'feat_dims={self.feat_dims}'

    def features(self, z: torch.Tensor, normalise: bool = True) -> torch.Tensor:
        """(M1) the features ``(B, N, d)`` in float32, unit-norm unless
        ``normalise=False``."""
        # P (z - mean_c z) = (P - row means of P) z: the centring is folded
        # into the weight, so the features cost one small matmul
        proj = self.proj.float()
        f = F.linear(z.float(), proj - proj.mean(1, keepdim=True))
        return F.normalize(f, dim=-1, eps=1e-12) if normalise else f

    def _build(self, z, hw, prev):
        plan = self._plan(z, hw, prev)
        B, K = z.shape[0], plan.num_merged
        if fused.can_fuse([z] if prev is None else [z, prev.weight],
                          [self.proj, self.log_step]):
            assign, weight, merged = fused.ltm_mask_and_merge(
                z, self.features(z, normalise=False), prev, plan, self.step)
            return MergeMask(assign, weight, K, plan.grid, plan.merged_grid, plan), merged
        with torch.autocast(device_type=z.device.type, enabled=False):
            f = self.features(z)
            if prev is None:  # (M2) anchors' features
                q = f.index_select(1, plan.anchor)
            else:
                q = F.normalize(cell_sum(f, prev, prev.weight.float()), dim=-1, eps=1e-12)
            # (M3) each movable token against the 9 cells around its own
            fm = f.index_select(1, plan.movable)  # (B, M, d)
            M, nc = plan.candidates.shape
            qc = q.index_select(1, plan.candidates.reshape(-1)).view(B, M, nc, f.shape[-1])
            cand_score = torch.linalg.vecdot(qc, fm.unsqueeze(2))  # (B, M, 9)
            cand_score = cand_score.masked_fill(~plan.candidate_valid, -2.0)
            moved_score, best = cand_score.max(dim=-1)
            moved_cell = plan.candidates.expand(B, M, nc).gather(2, best.unsqueeze(-1)).squeeze(-1)
            anchor_score = torch.linalg.vecdot(f.index_select(1, plan.anchor), q)  # (B, K)
            assign = plan.cell.repeat(B, 1).index_copy_(1, plan.movable, moved_cell)
            score = torch.zeros(B, plan.num_tokens, device=z.device).index_copy(
                1, plan.movable, moved_score).index_copy(1, plan.anchor, anchor_score)
            groups = MergeMask(assign, score, K, plan.grid, plan.merged_grid, plan)
            weight = segment_softmax_weights(score, self.step, groups)  # (M4)
        return MergeMask(assign, weight, K, plan.grid, plan.merged_grid, plan), None


class GridTokenMerger(_MaskModule):
    """The fixed-grid mask module, (G1)-(G4): image-independent cells with
    learned soft weights (one parameter per block). For ablations.

    Args:
        compression_ratio (float): r = N'/N in (0, 1].
        init_step (float): initial eta, in (0, 30). Default: 1.0.
        learnable_step (bool): learn eta (``log_step``). Default: True.
    """

    def __init__(self, compression_ratio: float, init_step: float = 1.0,
                 learnable_step: bool = True) -> None:
        super().__init__(compression_ratio, init_step, learnable_step)

    def _build(self, z, hw, prev):
        plan = self._plan(z, hw, prev)
        B = z.shape[0]
        if fused.can_fuse([z] if prev is None else [z, prev.weight], [self.log_step]):
            weight, merged = fused.mask_and_merge(
                z, None if prev is None else prev.weight, plan.cell_ptr, plan.cell_tokens,
                self.step)
            return MergeMask(plan.cell, weight, plan.num_merged, plan.grid,
                             plan.merged_grid, plan), merged
        with torch.autocast(device_type=z.device.type, enabled=False):
            zf = z.float()
            uniform = MergeMask.uniform(plan, B)
            w0 = None if prev is None else prev.weight.float()
            # (G3) only the centroids' direction is used, so under the uniform
            # prior the plain cell sum will do
            centroids = cell_sum(zf, uniform, w0)
            # cos = <Z_n, c> / (|Z_n| |c|): the centroids are gathered
            # unnormalised and both norms divide a (B, N) vector
            dot = torch.linalg.vecdot(centroids.index_select(1, plan.cell), zf)
            norms = torch.linalg.vector_norm(zf, dim=-1) * \
                torch.linalg.vector_norm(centroids, dim=-1).index_select(1, plan.cell)
            score = dot / norms.clamp_min(1e-12)
            weight = segment_softmax_weights(score, self.step, uniform, w0)  # (G4)
        return MergeMask(plan.cell, weight, plan.num_merged, plan.grid,
                         plan.merged_grid, plan), None
