"""G, merge and unmerge (mmltm/ops/merge_mask.py) against dense G."""
import pytest
import torch

from mmltm.ops import (MergeMask, get_grid_plan, merge_tokens, plan_merge_grid,
                       unmerge_add, unmerge_tokens)


def random_weights(assign: torch.Tensor, num_merged: int, batch: int) -> torch.Tensor:
    """Positive weights that sum to 1 over each merged token."""
    raw = torch.rand(batch, assign.shape[-1]) + 0.1
    a = assign.expand(batch, -1)
    denom = torch.zeros(batch, num_merged).scatter_add_(1, a, raw)
    return raw / denom.gather(1, a)


def test_merge_then_unmerge_with_the_fixed_grid_equals_dense_g():
    torch.manual_seed(0)
    h, w, C = 6, 8, 5
    plan = get_grid_plan((h, w), plan_merge_grid(h, w, 0.5))
    mask = MergeMask.uniform(plan, batch=3)
    mask.weight = random_weights(mask.assign, mask.num_merged, 3)
    x = torch.randn(3, h * w, C, dtype=torch.float64)
    merged = merge_tokens(x, mask)
    assert merged.dtype == x.dtype
    G = mask.dense().double()
    torch.testing.assert_close(merged, G.transpose(1, 2) @ x)
    torch.testing.assert_close(G.sum(1), torch.ones(3, mask.num_merged, dtype=G.dtype))
    G_row = G / G.sum(2, keepdim=True)  # one-hot rows
    assert torch.equal((G_row > 0).sum(2), torch.ones(3, h * w, dtype=torch.long))
    back = unmerge_tokens(merged, mask)
    assert torch.equal(back, merged[:, mask.assign])  # exact copy-back
    torch.testing.assert_close(back, G_row @ merged)
    const = merged.detach()[:, mask.assign]  # cell-constant input survives
    torch.testing.assert_close(unmerge_tokens(merge_tokens(const, mask), mask), const)


@pytest.mark.parametrize('hw,ratio', [((56, 56), 0.7), ((13, 21), 0.5), ((7, 7), 0.3)])
def test_per_sample_masks_with_and_without_a_plan_agree_with_dense_g(hw, ratio):
    # a per-sample mask on a grid plan merges with the plan's anchor lists; a
    # mask without a plan (ToMe's) with generic scatters: values and gradients
    # must agree, and both must equal G^T X
    torch.manual_seed(4)
    h, w = hw
    plan = get_grid_plan(hw, plan_merge_grid(h, w, ratio))
    B, K = 2, plan.num_merged
    assign = plan.cell.repeat(B, 1)
    moved = plan.candidates[:, 1:].gather(
        1, torch.randint(0, 8, (plan.movable.numel(), 1))).squeeze(1)
    assign[1, plan.movable] = moved  # sample 1: every movable token moves
    weight = random_weights(assign, K, B).double().requires_grad_()
    with_plan = MergeMask(assign, weight, K, plan.grid, plan.merged_grid, plan)
    without = MergeMask(assign, weight, K, plan.grid, plan.merged_grid)
    z = torch.randn(B, h * w, 12, dtype=torch.float64)
    x1, x2 = z.clone().requires_grad_(), z.clone().requires_grad_()
    fast, generic = merge_tokens(x1, with_plan), merge_tokens(x2, without)
    torch.testing.assert_close(fast, generic)
    torch.testing.assert_close(fast, with_plan.dense().transpose(1, 2) @ z)
    g = torch.randn_like(fast)
    (fast * g).sum().backward()
    grad_w = weight.grad.clone()
    weight.grad = None
    (generic * g).sum().backward()
    torch.testing.assert_close(x1.grad, x2.grad)
    torch.testing.assert_close(grad_w, weight.grad)
    delta = torch.randn(B, K, 12, dtype=torch.float64)
    torch.testing.assert_close(unmerge_tokens(delta, with_plan),
                               (with_plan.dense() > 0).double() @ delta)
    torch.testing.assert_close(unmerge_add(z, delta, with_plan),
                               z + unmerge_tokens(delta, without))


def test_shared_assignment_equals_the_same_assignment_per_sample():
    plan = get_grid_plan((4, 4), (2, 2))
    mask = MergeMask.uniform(plan, batch=2)
    per_sample = MergeMask(mask.assign.expand(2, -1).clone(), mask.weight, 4, (4, 4), (2, 2))
    x = torch.randn(2, 16, 3)
    torch.testing.assert_close(merge_tokens(x, per_sample), merge_tokens(x, mask))
    m = merge_tokens(x, mask)
    torch.testing.assert_close(unmerge_tokens(m, per_sample), unmerge_tokens(m, mask))


def test_shape_errors_name_both_sizes():
    mask = MergeMask.uniform(get_grid_plan((5, 5), (3, 3)), batch=1)
    with pytest.raises(ValueError, match='x has 24 tokens but the mask was built for 25'):
        merge_tokens(torch.randn(1, 24, 3), mask)
    with pytest.raises(ValueError, match='got 8 merged tokens, the mask has 9'):
        unmerge_tokens(torch.randn(1, 8, 3), mask)
    with pytest.raises(ValueError, match='base has 24 tokens'):
        unmerge_add(torch.randn(1, 24, 3), torch.randn(1, 9, 3), mask)


@pytest.mark.parametrize('hw,ratio', [((56, 56), 0.7), ((13, 21), 0.5), ((7, 7), 0.3),
                                      ((200, 336), 0.7)])
def test_exported_cell_sum_gathers_exactly_what_the_scatter_adds(hw, ratio, monkeypatch):
    """Inside torch.export the cell sum is computed without a scatter
    (onnxruntime's ScatterND races on repeated indices): every merged token
    gathers the members of the 3 x 3 cells around it and keeps its own. On
    random per-sample masks (every movable token moved to a random
    neighbour, or kept) and on the fixed grid it equals G^T X."""
    torch.manual_seed(5)
    h, w = hw
    plan = get_grid_plan(hw, plan_merge_grid(h, w, ratio))
    B, K = 2, plan.num_merged
    assign = plan.cell.repeat(B, 1)
    pick = torch.randint(0, 9, (plan.movable.numel(), 1))
    moved = plan.candidates.gather(1, pick).squeeze(1)
    assign[1, plan.movable] = moved
    weight = random_weights(assign, K, B).double()
    per_sample = MergeMask(assign, weight, K, plan.grid, plan.merged_grid, plan)
    grid = MergeMask.uniform(plan, batch=B)
    grid.weight = random_weights(grid.assign, K, B).double()
    x = torch.randn(B, h * w, 6, dtype=torch.float64)
    scattered = [merge_tokens(x, m) for m in (per_sample, grid)]
    monkeypatch.setattr(torch.compiler, 'is_exporting', lambda: True)
    for mask, ref in zip((per_sample, grid), scattered):
        gathered = merge_tokens(x, mask)
        torch.testing.assert_close(gathered, ref)
        if h * w <= 4096:  # dense G of the large grid: 9 GB
            torch.testing.assert_close(gathered, mask.dense().double().transpose(1, 2) @ x)
