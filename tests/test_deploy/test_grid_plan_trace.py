"""Grid planning gives the same merged grid and plan eagerly and inside a
torch.compile trace, for every stage grid of LTM-Swin-T at the sizes the
deployment checks use (224², 320x512, 800x1344)."""
import pytest
import torch

from mmltm.ops import get_grid_plan, grid_plan, plan_merge_grid

FIELDS = ('cell', 'uniform_weight', 'anchor', 'movable', 'candidates', 'candidate_valid',
          'cell_ptr', 'cell_tokens', 'first', 'rest', 'rest_cell')


def swin_t_grids(h, w):
    # patch embedding stride 4, then PatchMerging halves (padding odd sizes)
    h, w = -(-h // 4), -(-w // 4)
    grids = []
    for _ in range(4):
        grids.append((h, w))
        h, w = -(-h // 2), -(-w // 2)
    return grids


@pytest.mark.parametrize('size', [(224, 224), (320, 512), (800, 1344)])
def test_traced_plans_equal_eager_plans(size):
    for hw in swin_t_grids(*size):
        merged = plan_merge_grid(*hw, 0.7)

        def traced(x):
            plan = get_grid_plan(hw, plan_merge_grid(*hw, 0.7))
            return x, plan.merged_grid, [getattr(plan, f) for f in FIELDS]

        torch._dynamo.reset()
        grid_plan._MERGED_GRIDS.clear()
        _, traced_grid, traced_tensors = torch.compile(traced, backend='eager',
                                                       fullgraph=True)(torch.zeros(1))
        assert tuple(traced_grid) == merged
        eager = get_grid_plan(hw, merged)
        for f, t in zip(FIELDS, traced_tensors):
            assert torch.equal(t, getattr(eager, f)), (hw, f)
    torch._dynamo.reset()


def test_the_28x28_tie_is_broken_the_same_way_in_a_trace():
    torch._dynamo.reset()
    grid_plan._MERGED_GRIDS.clear()
    out = torch.compile(lambda x: (x, plan_merge_grid(28, 28, 0.7)), backend='eager',
                        fullgraph=True)(torch.zeros(1))[1]
    assert tuple(out) == (24, 23) == plan_merge_grid(28, 28, 0.7)
