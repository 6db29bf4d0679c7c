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
