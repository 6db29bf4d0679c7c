r"""ToMe-style token merging: training-free bipartite soft matching.

A baseline for LTM's learned mask (:mod:`mmltm.ops.token_merging`), after
D. Bolya et al., "Token Merging: Your ViT but Faster", ICLR 2023. Written
from the paper's description; it plugs into the same LTM block as
:class:`~mmltm.ops.TokenMerger` (same call, same :class:`MergeMask`), so that
LTM, ToMe and no merging are compared inside one backbone with everything
else equal (``merge_mode='tome'`` in the backbones).

One bipartite round on M tokens (the paper's Sec. 3):
  1. split the tokens alternately into sets A (even positions) and B (odd);
  2. s(a, b) = cos(x_a, x_b) for every a in A, b in B;
  3. every a keeps only its best partner b*(a) = argmax_b s(a, b);
  4. the k edges with the highest s(a, b*(a)) are merged: a joins b*(a)
     (several a may join one b); A tokens not chosen and all B tokens stay.
  5. a merged token is the size-weighted average of what it merged, so after
     any number of rounds it is the plain mean of its original members:
     ``weight[n] = 1 / |cell(n)|`` (every cell's weights sum to 1).

A round removes at most |A| = ceil(M/2) tokens, so keeping N' = ceil(r N)
tokens with r < 0.5 takes several rounds: round t+1 matches the merged tokens
of round t (their mean features), re-split alternately in their current
order. Rounds continue until exactly N - N' tokens are gone.

Differences from ToMe in ViTs, and why (ours):
  * Features: ToMe matches the attention keys; the LTM block offers the mask
    module only Z = X + Attn(LN(X)), so we match Z (as TokenMerger does).
  * No compounding and no proportional attention: the LTM block merges for
    its FFN only and restores all N tokens (see ``token_merging.py``), so each
    block matches afresh on the full grid; ``prev`` is accepted and ignored.
  * Locality (``window_size``): global matching costs (N/2)^2 C per sample:
    about 107 G multiply-adds per block in Swin-T's first stage at 800x1333
    (N = 200 x 334 tokens, C = 96), with a 4.5 GB score matrix, more than
    the whole backbone (~100 G). With ``window_size=s`` the tokens are tiled
    into s x s tiles of the (unpadded) grid and a token's partners are
    restricted to its own tile; the ranking of step 4 stays global over the
    image, so the image still keeps exactly N' tokens. The cost becomes
    about N (s^2 / 4) C (0.08 G per block there with s = 7).
    A tile can shrink to one token but no further, so N' is at least the
    number of tiles: ``num_merged = max(ceil(r N), n_tiles)`` (only reached
    for r near 1/s^2).
  * Everything is batched: tokens live in a padded ``(B, groups, slots)``
    layout (one group for global matching, one per tile otherwise); no loop
    runs over tokens or tiles, only over the (few) rounds.
The matching is a hard arg-max, so no gradient flows into the assignment;
the merged features stay differentiable in ``z`` through ``merge_tokens``.
"""
import math
from functools import lru_cache
from typing import Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from .grid_plan import check_compression_ratio
from .merge_mask import MergeMask, merge_tokens

__all__ = ['ToMeMerger', 'bipartite_soft_matching']


@lru_cache(maxsize=128)
def _tile_layout(h: int, w: int, s: Optional[int]) -> Tuple[torch.Tensor, int, int]:
    """Flat slot ``g * S + p`` of each token (row-major) in the padded
    ``(groups, S)`` layout: one group of N slots for global matching,
    otherwise one group of ``s * s`` slots per s x s tile (edge tiles are
    smaller; their spare slots stay empty)."""
    n = h * w
    if s is None or s >= max(h, w):
        return torch.arange(n), 1, n
    rows, cols = torch.arange(h)[:, None], torch.arange(w)[None, :]
    tiles_w = math.ceil(w / s)
    group = (rows // s) * tiles_w + cols // s
    pos = (rows % s) * s + cols % s
    return (group * s * s + pos).reshape(-1), math.ceil(h / s) * tiles_w, s * s


def bipartite_soft_matching(x: torch.Tensor, hw: Tuple[int, int], num_keep: int,
                            window_size: Optional[int] = None) -> Tuple[torch.Tensor, int]:
    """Per-sample assignment of ToMe's matching (module docstring).

    Args:
        x (Tensor): ``(B, N, C)`` features on the ``hw`` grid (row-major).
        hw (tuple): ``(h, w)`` with ``h * w == N``.
        num_keep (int): N', the number of tokens to keep, ``1 <= N' <= N``.
        window_size (int, optional): restrict partners to s x s tiles;
            ``None`` matches globally.

    Returns:
        tuple: ``assign`` ``(B, N)`` long in ``[0, N'')`` (the merged token of
        every input token; merged tokens are numbered in the order of their
        first slot, i.e. row-major for global matching) and ``N''`` (= N',
        or the number of tiles if that is larger).
    """
    B, N, C = x.shape
    h, w = hw
    if h * w != N:
        raise ValueError(f'bipartite_soft_matching: {N} tokens do not fill a {h}x{w} grid')
    if not 1 <= num_keep <= N:
        raise ValueError(f'num_keep={num_keep} must lie in [1, {N}]')
    if window_size is not None and window_size < 1:
        raise ValueError(f'window_size={window_size!r} must be >= 1 or None')
    slot0, groups, S = _tile_layout(h, w, window_size)
    slot0 = slot0.to(x.device)
    dev = x.device
    # cur[b, n]: the slot (in [0, groups*S)) holding token n's merged token
    cur = slot0.expand(B, N).clone()
    valid = torch.zeros(B, groups * S, dtype=torch.bool, device=dev)
    valid[:, slot0] = True
    # tokens each sample still has to remove; a sample whose tiles run out of
    # pairs in a round removes fewer and goes on in the next round, so the
    # result of a sample does not depend on the rest of the batch
    remove = torch.full((B, ), N - num_keep, dtype=torch.long, device=dev)
    slots = torch.arange(groups * S, device=dev)
    # Traced (torch.compile / torch.export, e.g. for ONNX) the loop cannot
    # stop on data (``remove``, the per-round k): it runs a fixed number of
    # rounds (_static_rounds) with a fixed top-k, and masks what eager code
    # would not do; a round with nothing to remove changes nothing (the
    # compaction keeps the order of the live slots). Same result as eager,
    # except that a tie of two scores at the k-th place may be broken the
    # other way.
    static = torch.compiler.is_compiling()
    rounds = _static_rounds(N, groups, num_keep) if static else None
    first_round = True
    while (rounds > 0) if static else bool((remove > 0).any()):
        if static:
            rounds -= 1
        # compact every group so its live tokens sit in its first slots, in
        # their current order (a stable sort of ~valid, written with cumsum
        # so that it exports); the A/B split alternates over live tokens
        live = valid.view(B, groups, S)
        live_before = live.long().cumsum(-1)
        dead_before = torch.arange(1, S + 1, device=dev) - live_before
        new_pos = torch.where(live, live_before - 1, live_before[..., -1:] + dead_before - 1)
        order = torch.empty_like(new_pos).scatter_(
            -1, new_pos, torch.arange(S, device=dev).expand_as(new_pos))
        remap = (new_pos + torch.arange(groups, device=dev)[:, None] * S).view(B, -1)
        cur = remap.gather(1, cur)
        valid = _compact_valid(valid, order, groups, S)
        # features of the live tokens: the size-weighted mean of their
        # members; only its direction matters, so the sum will do. In the
        # first round every token is its own slot: a copy (no copy at all
        # for global matching, whose layout is the identity).
        if first_round and groups == 1:
            feats = x
        elif first_round:
            feats = x.new_zeros(B, groups * S, C).index_copy_(1, slot0, x)
        else:
            feats = x.new_zeros(B, groups * S, C).scatter_add_(
                1, cur.unsqueeze(-1).expand(B, N, C), x)
        first_round = False
        feats = F.normalize(feats, dim=-1).view(B, groups, S, C)
        live = valid.view(B, groups, S)
        a, b = feats[:, :, 0::2], feats[:, :, 1::2]
        if b.shape[2] == 0:  # one slot per group: nothing can pair
            break
        scores = a @ b.transpose(-1, -2)  # (B, groups, ceil(S/2), floor(S/2))
        scores = scores.masked_fill(~live[:, :, 1::2].unsqueeze(-2), -math.inf)
        best, partner = scores.max(-1)
        best = best.masked_fill(~live[:, :, 0::2], -math.inf).view(B, -1)
        k = torch.minimum(remove, torch.isfinite(best).sum(1))  # (B,)
        if static:  # at most N - N' and at most one per A slot
            k_max = min(N - num_keep, best.shape[1])
        else:
            k_max = int(k.max())
            if k_max == 0:  # every tile is down to one token
                break
        src = best.topk(k_max, dim=-1).indices  # A index g * ceil(S/2) + i
        chosen = torch.arange(k_max, device=dev) < k[:, None]
        sa = a.shape[2]
        g, i = src // sa, src % sa
        dst = partner.view(B, -1).gather(1, src)
        src_slot, dst_slot = g * S + 2 * i, g * S + 2 * dst + 1
        redirect = slots.expand(B, -1).clone()
        redirect.scatter_(1, src_slot, torch.where(chosen, dst_slot, src_slot))
        cur = redirect.gather(1, cur)  # B slots are never sources: one hop
        valid.scatter_(1, src_slot, valid.gather(1, src_slot) & ~chosen)
        remove -= k
    # number the surviving slots 0..N''-1 in slot order
    rank = valid.long().cumsum(1) - 1
    assign = rank.gather(1, cur)
    # the tiles bound N'' from below (module docstring); eagerly it is read
    # off the result, traced it follows from the sizes
    return assign, max(num_keep, groups) if static else int(valid[0].sum())


def _static_rounds(num_tokens: int, groups: int, num_keep: int) -> int:
    """An upper bound on the rounds of :func:`bipartite_soft_matching`.

    A group of ``m >= 2`` live tokens offers ``ceil(m / 2)`` pairs, so with
    ``rho`` tokens still removable (live tokens minus groups) a round removes
    at least ``min(remove, ceil(rho / 2))``: counting rounds at that rate
    bounds the real count (1 round for ratios >= 0.5).
    """
    remove, removable, rounds = num_tokens - num_keep, num_tokens - groups, 0
    while remove > 0 and removable > 0:
        k = min(remove, -(-removable // 2))
        remove, removable, rounds = remove - k, removable - k, rounds + 1
    return rounds


def _compact_valid(valid: torch.Tensor, order: torch.Tensor, groups: int,
                   S: int) -> torch.Tensor:
    """``valid`` permuted by the per-group ``order`` (live slots first)."""
    B = valid.shape[0]
    return valid.view(B, groups, S).gather(-1, order).view(B, -1)


class ToMeMerger(nn.Module):
    """Training-free bipartite soft matching (ToMe) as an LTM mask module.

    Called like :class:`~mmltm.ops.TokenMerger`:
    ``mask = merger(z, (h, w), prev)`` returns a :class:`MergeMask` with a
    per-sample ``assign`` ``(B, N)``, ``weight[n] = 1 / |cell(n)|`` (the
    size-weighted average; each cell's weights sum to 1) and
    ``num_merged = ceil(r N)`` (see the module docstring for the tile
    bound). ``merged_grid`` is ``(1, N')``: matched tokens have no 2-D
    layout. No parameters.

    Args:
        compression_ratio (float): r = N'/N in (0, 1]; 1.0 is the identity.
            Ratios below 0.5 take several matching rounds.
        window_size (int, optional): match only within s x s tiles of the
            token grid (linear cost, see the module docstring); ``None``
            matches globally as in the paper. Default: None.
    """

    def __init__(self, compression_ratio: float,
                 window_size: Optional[int] = None) -> None:
        super().__init__()
        self.compression_ratio = check_compression_ratio(compression_ratio)
        if window_size is not None and (isinstance(window_size, bool) or
                                        not isinstance(window_size, int) or window_size < 1):
            raise ValueError(f'window_size={window_size!r} must be a positive int or None')
        self.window_size = window_size

    def extra_repr(self) -> str:
        return f'compression_ratio={self.compression_ratio}, window_size={self.window_size}'

    def num_keep(self, hw: Tuple[int, int]) -> int:
        """N' = ceil(r N) for the ``hw`` grid."""
        return max(1, math.ceil(self.compression_ratio * int(hw[0]) * int(hw[1]) - 1e-9))

    def is_identity(self, hw: Tuple[int, int]) -> bool:
        """True when nothing would be merged (N' = N)."""
        return self.num_keep(hw) == int(hw[0]) * int(hw[1])

    @torch.no_grad()
    def forward(self, z: torch.Tensor, hw: Tuple[int, int],
                prev: Optional[MergeMask] = None) -> MergeMask:
        """The mask for tokens ``z`` ``(B, N, C)`` on the grid ``hw``;
        ``prev`` is ignored (every block matches afresh)."""
        B, N, _ = z.shape
        h, w = int(hw[0]), int(hw[1])
        if N != h * w:
            raise ValueError(f'ToMeMerger: {N} tokens do not fill a {h}x{w} grid')
        with torch.autocast(device_type=z.device.type, enabled=False):
            assign, n_out = bipartite_soft_matching(z.float(), (h, w), self.num_keep((h, w)),
                                                    self.window_size)
            sizes = torch.zeros(B, n_out, device=z.device).scatter_add_(
                1, assign, torch.ones(B, N, device=z.device))
            weight = 1.0 / sizes.gather(1, assign)
        return MergeMask(assign, weight, n_out, (h, w), (1, n_out))

    def merge(self, z: torch.Tensor, hw: Tuple[int, int],
              prev: Optional[MergeMask] = None) -> Tuple[MergeMask, torch.Tensor]:
        """The mask and ``merge_tokens(z, mask)``, as :meth:`TokenMerger.merge`."""
        mask = self(z, hw, prev)
        return mask, merge_tokens(z, mask)
