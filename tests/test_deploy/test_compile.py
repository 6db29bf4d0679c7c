"""torch.compile: the LTM backbones are one graph (torch._dynamo.explain).

Explain only (no inductor compile: too slow for the suite), on small
backbones of the real classes, in the PyTorch-reference mode and in kernel
mode (the compiled CPU kernels as torch.ops.mmltm.* custom ops), with cold
grid-plan caches (the plans are built inside the trace).
"""
import pytest
import torch

from mmltm.ops import fused, grid_plan


@pytest.mark.parametrize('name', ['swin', 'vit'])
@pytest.mark.parametrize('kernels', [False, True])
def test_backbone_forward_is_one_graph(name, kernels, build):
    if kernels and not fused.fused_ops_available():
        pytest.skip('compiled kernels not built')
    model = build(name)
    x = torch.randn(1, 3, 64, 96)
    grid_plan._PLANS.clear()
    grid_plan._MERGED_GRIDS.clear()
    torch._dynamo.reset()
    with torch.no_grad(), fused.fused_ops(kernels):
        explained = torch._dynamo.explain(model)(x)
        expected = model(x)
    assert explained.graph_break_count == 0, [b.reason for b in explained.break_reasons]
    assert explained.graph_count == 1
    code = '\n'.join(g.code for g in explained.graphs)
    # kernel mode puts the kernels in the graph as custom ops, reference mode never
    assert ('torch.ops.mmltm.' in code) == kernels
    # the traced graph computes the eager model (plans built in the trace)
    torch._dynamo.reset()
    with torch.no_grad(), fused.fused_ops(kernels):
        outs = torch.compile(model, backend='eager', fullgraph=True)(x)
    torch._dynamo.reset()
    for a, b in zip(outs, expected):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-5)


@pytest.mark.parametrize('name', ['vit', 'swin'])
def test_a_second_input_size_recompiles_exactly_once(name, build):
    # dynamic=True: the grid sizes reach the plan code symbolically and are
    # pinned there (grid_plan._pinned), so each new input size is one more
    # compilation of one graph (a static plan per size), never a graph split
    # into pieces (22 compilations before) and never a recompile per block.
    # LTM-Swin's forward pins the input size first (grid_plan.pin_input_size):
    # unpinned, the count is the same (measured: 1, 2, 3 compilations for
    # three sizes, 0 breaks) but mmdet's window padding is traced in symbolic
    # sizes, ~170 s a size here, too slow for the suite
    model = build(name)
    compiled_graphs = []

    def counting_backend(gm, example_inputs):
        compiled_graphs.append(gm)
        return gm.forward

    torch._dynamo.reset()
    compiled = torch.compile(model, backend=counting_backend, dynamic=True)
    counts = []
    with torch.no_grad(), fused.fused_ops(False):
        for hw in ((64, 64), (64, 96), (64, 64)):
            x = torch.randn(1, 3, *hw, generator=torch.Generator().manual_seed(0))
            outs, expected = compiled(x), model(x)
            counts.append(len(compiled_graphs))
            for a, b in zip(outs, expected):
                torch.testing.assert_close(a, b, rtol=0, atol=1e-5)
    torch._dynamo.reset()
    # one graph for the first size, one more for the second, none to go back
    assert counts == [1, 2, 2]
