"""The merged grid and its precomputed plan (mmltm/ops/grid_plan.py)."""
import math

import pytest
import torch

from mmltm.ops import get_grid_plan, plan_merge_grid
from mmltm.ops.grid_plan import NEIGHBOUR_OFFSETS


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
    cell = get_grid_plan((h, w), (hh, ww)).cell.view(h, w)
    row_sizes = torch.bincount(cell[:, 0] // ww, minlength=hh)
    col_sizes = torch.bincount(cell[0] % ww, minlength=ww)
    assert row_sizes.min() >= 1 and row_sizes.max() - row_sizes.min() <= 1
    assert col_sizes.min() >= 1 and col_sizes.max() - col_sizes.min() <= 1


def test_plan_merge_grid_is_close_to_the_target_and_breaks_ties_explicitly():
    for n in (14, 28, 56):
        hh, ww = plan_merge_grid(n, n, 0.7)
        assert hh * ww - math.ceil(0.7 * n * n) < min(hh, ww)
    # 28x28 at 0.7: 24x23 and 23x24 keep 552 tokens with the same aspect
    # error; the rule takes the larger h' (a Python set's order used to pick)
    assert plan_merge_grid(28, 28, 0.7) == (24, 23)
    assert plan_merge_grid(14, 14, 0.78) == (13, 12)
    assert plan_merge_grid(56, 56, 0.7) == (46, 48)  # fewer tokens beats aspect


@pytest.mark.parametrize('hw,merged', [((56, 56), (46, 48)), ((7, 7), (5, 7)),
                                       ((13, 21), (9, 15)), ((1, 6), (1, 3)), ((4, 4), (2, 2))])
def test_grid_plan_lists_agree_with_the_cell_geometry(hw, merged):
    (h, w), (hh, ww) = hw, merged
    plan = get_grid_plan(hw, merged)
    rows = torch.arange(h) * hh // h
    cols = torch.arange(w) * ww // w
    assert torch.equal(plan.cell, (rows[:, None] * ww + cols[None, :]).reshape(-1))
    sizes = torch.bincount(plan.cell, minlength=hh * ww)
    assert torch.equal(plan.uniform_weight, 1.0 / sizes[plan.cell].float())
    # one anchor per cell, in cell order, at the cell's (upper-left) centre
    assert torch.equal(plan.cell[plan.anchor], torch.arange(hh * ww))
    for k in (0, hh * ww // 2, hh * ww - 1):
        members = torch.nonzero(plan.cell == k).squeeze(1)
        r, c = members // w, members % w
        ar, ac = int(plan.anchor[k]) // w, int(plan.anchor[k]) % w
        assert ar == int(r.min()) + (int(r.max() - r.min())) // 2
        assert ac == int(c.min()) + (int(c.max() - c.min())) // 2
    # movable = every other token, and their 3x3 candidate cells
    assert sorted(plan.movable.tolist() + plan.anchor.tolist()) == list(range(h * w))
    assert plan.candidates.shape == (plan.movable.numel(), len(NEIGHBOUR_OFFSETS))
    for i in range(0, plan.movable.numel(), max(1, plan.movable.numel() // 7)):
        own = int(plan.cell[plan.movable[i]])
        r, c = own // ww, own % ww
        for j, (dr, dc) in enumerate(NEIGHBOUR_OFFSETS):
            inside = 0 <= r + dr < hh and 0 <= c + dc < ww
            assert bool(plan.candidate_valid[i, j]) == inside
            assert int(plan.candidates[i, j]) == ((r + dr) * ww + c + dc if inside else own)
    # the CSR and first/rest layouts describe the same partition
    for k in range(hh * ww):
        toks = plan.cell_tokens[plan.cell_ptr[k]:plan.cell_ptr[k + 1]]
        assert torch.equal(toks, torch.nonzero(plan.cell == k).squeeze(1))
        assert int(plan.first[k]) == int(toks[0])
    assert torch.equal(plan.cell[plan.rest], plan.rest_cell)
    assert plan.first.numel() + plan.rest.numel() == h * w


def test_grid_plan_is_built_once_per_grid_and_device():
    a = get_grid_plan((9, 9), (6, 7))
    assert get_grid_plan((9, 9), (6, 7), 'cpu') is a
    assert get_grid_plan((9, 9), (6, 6)) is not a
    with pytest.raises(ValueError, match='merged grid 10x7 must fit in the token grid 9x9'):
        get_grid_plan((9, 9), (10, 7))
