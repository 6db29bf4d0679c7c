import math

import pytest
import torch

from mmltm.ops import (MergeMask, TokenMerger, grid_assignment, merge_tokens,
                       plan_merge_grid, unmerge_tokens)


@pytest.mark.parametrize('hw', [(56, 56), (28, 28), (14, 14), (7, 7), (13, 21), (1, 5)])
@pytest.mark.parametrize('ratio', [0.25, 0.5, 0.7, 0.8, 1.0])
def test_plan_merge_grid_keeps_at_least_ceil_rn_on_an_even_grid(hw, ratio):
    h, w = hw
    hh, ww = plan_merge_grid(h, w, ratio)
    assert 1 <= hh <= h and 1 <= ww <= w
    assert hh * ww >= math.ceil(ratio * h * w - 1e-9)
    if ratio == 1.0:
        assert (hh, ww) == (h, w)
    # row/column-even: every merged row (column) gathers 1 or ceil(h/hh) rows
    a = grid_assignment(h, w, hh, ww).view(h, w)
    row_sizes = torch.bincount(a[:, 0] // ww, minlength=hh)
    col_sizes = torch.bincount(a[0] % ww, minlength=ww)
    assert row_sizes.min() >= 1 and row_sizes.max() - row_sizes.min() <= 1
    assert col_sizes.min() >= 1 and col_sizes.max() - col_sizes.min() <= 1


def test_plan_merge_grid_is_close_to_the_target():
    # the grid overshoots ceil(rN) by less than one merged row/column
    for n in (14, 28, 56):
        hh, ww = plan_merge_grid(n, n, 0.7)
        target = math.ceil(0.7 * n * n)
        assert hh * ww - target < min(hh, ww)


@pytest.mark.parametrize('bad', [0, -0.1, 1.01, float('nan'), 'half', True])
def test_bad_compression_ratio_names_value_and_range(bad):
    with pytest.raises(ValueError, match=r'compression_ratio=.*\(0, 1\]'):
        TokenMerger(bad)


def test_merge_then_unmerge_with_hard_assignment_returns_merged_value():
    torch.manual_seed(0)
    h, w, C = 6, 8, 5
    hh, ww = plan_merge_grid(h, w, 0.5)
    mask = MergeMask.uniform(h, w, (hh, ww), batch=3)
    # random (non-uniform) weights that sum to 1 in each cell
    raw = torch.rand(3, h * w)
    denom = torch.zeros(3, hh * ww).index_add_(1, mask.assign, raw)
    mask.weight = raw / denom[:, mask.assign]
    x = torch.randn(3, h * w, C, dtype=torch.float64)
    merged = merge_tokens(x, mask)
    assert merged.shape == (3, hh * ww, C) and merged.dtype == x.dtype
    # each merged token is the convex combination of its cell (G^T X)
    G = mask.dense().double()
    torch.testing.assert_close(merged, G.transpose(1, 2) @ x)
    assert torch.allclose(G.sum(1), torch.ones(3, hh * ww, dtype=G.dtype))  # columns
    # unmerge: the row-normalised G is one-hot, rows sum to 1
    G_row = G / G.sum(2, keepdim=True)
    assert torch.equal((G_row > 0).sum(2), torch.ones(3, h * w, dtype=torch.long))
    back = unmerge_tokens(merged, mask)
    assert back.shape == x.shape and back.dtype == x.dtype
    assert torch.equal(back, merged[:, mask.assign])  # exact copy-back
    torch.testing.assert_close(back, G_row @ merged)
    # a cell-constant input survives merge -> unmerge exactly
    const = merged.detach()[:, mask.assign]
    torch.testing.assert_close(unmerge_tokens(merge_tokens(const, mask), mask), const)


def test_per_sample_assignment_matches_shared_one():
    h, w = 4, 4
    mask = MergeMask.uniform(h, w, (2, 2), batch=2)
    per_sample = MergeMask(mask.assign.expand(2, -1).clone(), mask.weight, 4, (h, w), (2, 2))
    x = torch.randn(2, 16, 3)
    torch.testing.assert_close(merge_tokens(x, per_sample), merge_tokens(x, mask))
    m = merge_tokens(x, mask)
    torch.testing.assert_close(unmerge_tokens(m, per_sample), unmerge_tokens(m, mask))


def test_token_merger_mask_is_normalised_input_dependent_and_chains():
    torch.manual_seed(0)
    merger = TokenMerger(0.5)
    z = torch.randn(2, 10 * 12, 16)
    g1 = merger(z, (10, 12))
    hh, ww = plan_merge_grid(10, 12, 0.5)
    assert g1.num_merged == hh * ww and g1.merged_grid == (hh, ww)
    sums = torch.zeros(2, g1.num_merged).index_add_(1, g1.assign, g1.weight)
    torch.testing.assert_close(sums, torch.ones_like(sums))
    assert (g1.weight > 0).all()
    # input dependent: the two samples get different weights
    assert not torch.allclose(g1.weight[0], g1.weight[1])
    # not uniform (the step moved away from the prior)
    uniform = MergeMask.uniform(10, 12, (hh, ww), 2).weight
    assert (g1.weight - uniform).abs().max() > 1e-3
    # chaining: the previous mask is the starting point of the step
    g2 = merger(z, (10, 12), g1)
    assert not torch.allclose(g2.weight, g1.weight)
    # (L4) closed form: w ∝ w0 exp(eta cos(z, c)), c = merge under the prior
    c = torch.nn.functional.normalize(merge_tokens(z, g1), dim=-1)[:, g1.assign]
    s = (torch.nn.functional.normalize(z, dim=-1) * c).sum(-1)
    raw = g1.weight * torch.exp(merger.log_step.exp() * s)
    den = torch.zeros(2, g1.num_merged).index_add_(1, g1.assign, raw)[:, g1.assign]
    torch.testing.assert_close(g2.weight, raw / den)


def test_token_merger_identity_at_ratio_one_and_gradient_to_step():
    merger = TokenMerger(1.0)
    assert merger.is_identity((7, 9))
    z = torch.randn(1, 63, 4)
    mask = merger(z, (7, 9))
    torch.testing.assert_close(unmerge_tokens(merge_tokens(z, mask), mask), z)

    merger = TokenMerger(0.6)
    z = torch.randn(2, 64, 8, requires_grad=True)
    mask = merger(z, (8, 8))
    out = unmerge_tokens(merge_tokens(z, mask) ** 2, mask).sum()
    out.backward()
    assert merger.log_step.grad is not None and merger.log_step.grad.abs() > 0
    assert z.grad is not None


def test_token_merger_under_autocast_returns_fp32_mask_and_keeps_dtype():
    merger = TokenMerger(0.5)
    z = torch.randn(2, 36, 8).to(torch.bfloat16)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        mask = merger(z, (6, 6))
        merged = merge_tokens(z, mask)
    assert mask.weight.dtype == torch.float32
    assert merged.dtype == torch.bfloat16
    assert torch.isfinite(merged.float()).all()


def test_shape_errors_are_clear():
    merger = TokenMerger(0.5)
    with pytest.raises(ValueError, match='do not fill a 5x5 grid'):
        merger(torch.randn(1, 24, 3), (5, 5))
    mask = merger(torch.randn(1, 25, 3), (5, 5))
    with pytest.raises(ValueError, match='built for 25'):
        merge_tokens(torch.randn(1, 24, 3), mask)


def test_large_steps_are_capped_and_stay_finite():
    """(L4) needs no per-cell maximum: eta is capped at MAX_STEP, where the
    step is already an argmax, and the weights stay finite and normalised
    even for opposite tokens in one cell, over a chain of blocks."""
    merger = TokenMerger(0.25)
    with torch.no_grad():
        merger.log_step.fill_(math.log(1e4))
    z = torch.randn(2, 64, 8)
    z[:, 1::2] = -z[:, 0::2]  # neighbours point in opposite directions
    mask = None
    for _ in range(6):
        mask = merger(z, (8, 8), mask)
        assert torch.isfinite(mask.weight).all()
        sums = torch.zeros(2, mask.num_merged).index_add_(1, mask.assign, mask.weight)
        torch.testing.assert_close(sums, torch.ones_like(sums))
    # the capped step equals an explicit step of MAX_STEP
    capped = TokenMerger(0.25, init_step=TokenMerger.MAX_STEP)
    torch.testing.assert_close(capped(z, (8, 8)).weight, merger(z, (8, 8)).weight)
    with pytest.raises(ValueError, match=r'init_step=31.0 is not allowed.*\(0, 30.0\]'):
        TokenMerger(0.5, init_step=31.0)
