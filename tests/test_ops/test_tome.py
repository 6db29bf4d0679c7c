"""ToMe-style bipartite soft matching (mmltm.ops.tome) and the merger factory."""
import math

import pytest
import torch
import torch.nn.functional as F

from mmltm.ops import MergeMask, build_token_merger, merge_tokens, unmerge_tokens
from mmltm.ops.tome import ToMeMerger, bipartite_soft_matching


def _cell_sizes(mask: MergeMask) -> torch.Tensor:
    B, N = mask.weight.shape
    return torch.zeros(B, mask.num_merged).scatter_add_(1, mask.batched_assign(),
                                                        torch.ones(B, N))


def _reference_one_round(x: torch.Tensor, num_keep: int) -> torch.Tensor:
    """One ToMe round written out with Python loops (one sample): the
    partition of the tokens as a set of frozensets."""
    n = x.shape[0]
    a_idx, b_idx = list(range(0, n, 2)), list(range(1, n, 2))
    xn = F.normalize(x, dim=-1)
    best = {}
    for a in a_idx:
        sims = [(float(xn[a] @ xn[b]), b) for b in b_idx]
        best[a] = max(sims)
    ranked = sorted(a_idx, key=lambda a: -best[a][0])
    merged = ranked[:n - num_keep]
    groups = {b: {b} for b in b_idx}
    for a in a_idx:
        if a in merged:
            groups[best[a][1]].add(a)
        else:
            groups[a] = {a}
    return {frozenset(g) for g in groups.values()}


def _partition(assign: torch.Tensor) -> set:
    return {frozenset(torch.nonzero(assign == k).flatten().tolist())
            for k in assign.unique().tolist()}


@pytest.mark.parametrize('hw', [(6, 8), (7, 7), (5, 9)])
@pytest.mark.parametrize('ratio', [0.9, 0.7, 0.5])
def test_one_round_matches_a_loop_reference(hw, ratio):
    torch.manual_seed(0)
    x = torch.randn(3, hw[0] * hw[1], 6, dtype=torch.float64)
    keep = math.ceil(ratio * hw[0] * hw[1])
    assign, n_out = bipartite_soft_matching(x, hw, keep)
    assert n_out == keep and assign.shape == (3, hw[0] * hw[1])
    for b in range(3):
        assert _partition(assign[b]) == _reference_one_round(x[b], keep)


@pytest.mark.parametrize('window', [None, 3, 7])
@pytest.mark.parametrize('ratio', [1.0, 0.9, 0.7, 0.5, 0.3, 0.1])
def test_shapes_counts_and_weights(window, ratio):
    torch.manual_seed(1)
    h, w, C, B = 9, 11, 8, 4
    merger = ToMeMerger(ratio, window_size=window)
    z = torch.randn(B, h * w, C)
    mask = merger(z, (h, w))
    n_tiles = 1 if window is None else math.ceil(h / window) * math.ceil(w / window)
    assert mask.num_merged == max(math.ceil(ratio * h * w), n_tiles)
    assert mask.assign.shape == (B, h * w) and mask.assign.dtype == torch.long
    assert mask.weight.shape == (B, h * w) and mask.grid == (h, w)
    assert mask.merged_grid == (1, mask.num_merged)
    sizes = _cell_sizes(mask)
    assert (sizes >= 1).all()  # every merged token has a member
    # size-weighted average: weight = 1 / |cell|, each cell's weights sum to 1
    torch.testing.assert_close(mask.weight, 1.0 / sizes.gather(1, mask.assign))
    sums = torch.zeros(B, mask.num_merged).scatter_add_(1, mask.assign, mask.weight)
    torch.testing.assert_close(sums, torch.ones_like(sums))
    # the assignment is per sample (unless every tile is down to one token)
    if ratio < 1 and mask.num_merged > n_tiles:
        assert not all(torch.equal(mask.assign[0], mask.assign[i]) for i in range(1, B))
    if window is not None:  # partners stay inside their tile
        rows, cols = torch.arange(h).repeat_interleave(w), torch.arange(w).repeat(h)
        tile = (rows // window) * math.ceil(w / window) + cols // window
        for b in range(B):
            for k in range(mask.num_merged):
                assert tile[mask.assign[b] == k].unique().numel() == 1


def test_merge_is_mean_of_members_and_unmerge_copies_back():
    torch.manual_seed(2)
    B, h, w, C = 2, 6, 6, 5
    z = torch.randn(B, h * w, C, dtype=torch.float64)
    mask = ToMeMerger(0.6)(z, (h, w))
    merged = merge_tokens(z, mask)
    assert merged.shape == (B, mask.num_merged, C) and merged.dtype == z.dtype
    G = mask.dense().double()
    torch.testing.assert_close(merged, G.transpose(1, 2) @ z)
    for b in range(B):
        for k in range(mask.num_merged):
            torch.testing.assert_close(merged[b, k], z[b, mask.assign[b] == k].mean(0))
    back = unmerge_tokens(merged, mask)
    assert back.shape == z.shape
    assert torch.equal(back, torch.stack([merged[b, mask.assign[b]] for b in range(B)]))


def test_similar_tokens_are_merged_first():
    # two exact duplicates among orthogonal tokens: the pair must merge
    C = 16
    x = torch.eye(C)[:12].unsqueeze(0).clone()
    x[0, 7] = x[0, 2]  # A token 2 duplicates B token 7
    assign, _ = bipartite_soft_matching(x, (3, 4), 11)
    assert assign[0, 2] == assign[0, 7]
    assert assign[0].unique().numel() == 11


def test_identity_at_ratio_one_and_no_parameters():
    merger = ToMeMerger(1.0)
    assert merger.is_identity((7, 9)) and not ToMeMerger(0.9).is_identity((7, 9))
    assert list(merger.parameters()) == [] and list(merger.buffers()) == []
    z = torch.randn(2, 63, 4)
    mask = merger(z, (7, 9))
    assert mask.num_merged == 63
    torch.testing.assert_close(unmerge_tokens(merge_tokens(z, mask), mask), z)


def test_gradient_flows_through_merge_not_matching():
    z = torch.randn(2, 36, 8, requires_grad=True)
    mask = ToMeMerger(0.5)(z, (6, 6))
    assert not mask.weight.requires_grad
    unmerge_tokens(merge_tokens(z, mask) ** 2, mask).sum().backward()
    assert z.grad is not None and z.grad.abs().sum() > 0


def test_batched_equals_per_sample():
    torch.manual_seed(3)
    z = torch.randn(5, 8 * 8, 6)
    merger = ToMeMerger(0.4, window_size=4)
    batched = merger(z, (8, 8))
    for b in range(5):
        single = merger(z[b:b + 1], (8, 8))
        assert torch.equal(single.assign[0], batched.assign[b])


def test_errors_are_clear():
    with pytest.raises(ValueError, match=r'compression_ratio=.*\(0, 1\]'):
        ToMeMerger(0.0)
    with pytest.raises(ValueError, match='window_size=0'):
        ToMeMerger(0.5, window_size=0)
    with pytest.raises(ValueError, match='do not fill a 5x5 grid'):
        ToMeMerger(0.5)(torch.randn(1, 24, 3), (5, 5))


def test_factory_builds_tome_with_its_window_and_ignores_dims():
    tome = build_token_merger('tome', 0.7, dims=96, window_size=7)
    assert isinstance(tome, ToMeMerger) and tome.window_size == 7
    assert not list(tome.parameters())


def test_ltm_swin_tome_mode_runs_and_has_no_merger_parameters():
    from mmltm.models.backbones import LTMSwinTransformer
    cfg = dict(embed_dims=16, depths=(1, 2), num_heads=(1, 2), strides=(4, 2),
               out_indices=(0, 1), drop_path_rate=0.)
    torch.manual_seed(0)
    ltm = LTMSwinTransformer(compression_ratio=0.6, **cfg).eval()
    tome = LTMSwinTransformer(compression_ratio=0.6, merge_mode='tome', **cfg).eval()
    assert all(isinstance(m, ToMeMerger) and m.window_size == 7 for m in tome.token_mergers)
    assert not any('token_merger' in k for k in tome.state_dict())
    tome.load_state_dict({k: v for k, v in ltm.state_dict().items() if 'token_merger' not in k})
    x = torch.randn(2, 3, 40, 56)
    tome.record_merge_masks(True)
    with torch.no_grad():
        outs = tome(x)
    assert [o.shape for o in outs] == [o.shape for o in ltm(x)]
    mask = tome.last_merge_masks[0][0]
    assert mask.assign.shape == (2, 10 * 14) and mask.num_merged == math.ceil(0.6 * 140)
    with pytest.raises(ValueError, match="merge_mode='fast'"):
        LTMSwinTransformer(compression_ratio=0.6, merge_mode='fast', **cfg)


@pytest.mark.parametrize('window,ratio', [(None, 0.7), (None, 0.3), (3, 0.7), (3, 0.1),
                                          (4, 0.3), (1, 0.5)])
def test_traced_matching_with_a_fixed_round_count_equals_eager(window, ratio):
    # under torch.compile / torch.export the matching runs a fixed number of
    # rounds with a fixed top-k (no data-dependent control flow, so that it
    # exports); it must give eager's assignment. Several rounds (0.3, 0.1)
    # and uneven tiles (9x11 in 3x3 / 4x4 tiles) included.
    from mmltm.ops import tome
    h, w = 9, 11
    x = torch.randn(3, h * w, 8, generator=torch.Generator().manual_seed(2))
    keep = math.ceil(ratio * h * w)
    assign, n_out = bipartite_soft_matching(x, (h, w), keep, window)
    torch._dynamo.reset()
    traced = torch.compile(bipartite_soft_matching, backend='eager', fullgraph=True)
    t_assign, t_n_out = traced(x, (h, w), keep, window)
    torch._dynamo.reset()
    assert t_n_out == n_out
    assert torch.equal(t_assign, assign)
    # the fixed round count: none with 1x1 tiles, one for ratios >= 0.5
    # (a round can remove half the tokens), more below
    groups = tome._tile_layout(h, w, window)[1]
    rounds = tome._static_rounds(h * w, groups, keep)
    if window == 1:
        assert rounds == 0
    elif ratio >= 0.5:
        assert rounds == 1
    else:
        assert rounds >= 2
