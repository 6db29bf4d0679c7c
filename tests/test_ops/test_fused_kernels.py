"""The compiled CPU kernels (mmltm/ops/csrc) against the reference code."""
import math
import warnings

import pytest
import torch

from mmltm.ops import (GridTokenMerger, MergeMask, TokenMerger, fused, merge_tokens,
                       unmerge_add, unmerge_tokens)

pytestmark = pytest.mark.skipif(not fused.fused_ops_available(),
                                reason='mmltm kernels not built (MMLTM_WITH_OPS=0)')


def reference_and_fused(merger, z, hw, prev=None):
    with torch.no_grad():
        with fused.fused_ops(False):
            ref = merger.merge(z, hw, prev)
        out = merger.merge(z, hw, prev)
    return ref, out


@pytest.mark.parametrize('batch,hw,channels,ratio,step', [
    (1, (56, 56), 96, 0.7, 1.0),     # LTM-Swin-T stage 1 at 224
    (2, (7, 7), 768, 0.7, 2.5),      # stage 4: cells of 1, 2 and 4 tokens
    (3, (13, 17), 32, 0.5, 0.3),
    (2, (5, 9), 8, 0.3, 29.0),
    (1, (1, 6), 5, 0.5, 1.0),        # a single row
])
def test_mask_and_merge_kernel_equals_reference_uniform_and_chained(
        batch, hw, channels, ratio, step):
    torch.manual_seed(0)
    merger = GridTokenMerger(ratio, init_step=step)
    z = torch.randn(batch, hw[0] * hw[1], channels)
    z[0, 0] = 0  # a zero token: its cosine uses the clamped norm
    (ref_mask, ref_merged), (mask, merged) = reference_and_fused(merger, z, hw)
    torch.testing.assert_close(mask.weight, ref_mask.weight, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(merged, ref_merged, rtol=1e-5, atol=1e-5)
    assert mask.assign is ref_mask.assign and mask.num_merged == ref_mask.num_merged
    # a chained block: the prior is the previous block's weights
    z2 = 1.1 * z + 0.3
    (ref2, ref_merged2), (mask2, merged2) = reference_and_fused(merger, z2, hw, ref_mask)
    torch.testing.assert_close(mask2.weight, ref2.weight, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(merged2, ref_merged2, rtol=1e-5, atol=1e-5)
    # merged tokens are merge_tokens of the mask, and cells sum to one
    torch.testing.assert_close(merged2, merge_tokens(z2, mask2), rtol=1e-5, atol=1e-5)
    sums = torch.zeros(batch, mask2.num_merged).index_add_(1, mask2.assign, mask2.weight)
    torch.testing.assert_close(sums, torch.ones_like(sums))


def test_mask_kernel_with_opposite_tokens_and_capped_step_stays_finite():
    merger = GridTokenMerger(0.25)
    with torch.no_grad():
        merger.log_step.fill_(math.log(1e4))  # capped at MAX_STEP
    z = torch.randn(2, 64, 8)
    z[:, 1::2] = -z[:, 0::2]
    ref_mask = mask = None
    for _ in range(6):
        (ref_mask, _), (mask, merged) = reference_and_fused(merger, z, (8, 8), ref_mask)
        assert torch.isfinite(mask.weight).all() and torch.isfinite(merged).all()
        torch.testing.assert_close(mask.weight, ref_mask.weight, rtol=1e-4, atol=1e-6)


def test_unmerge_add_kernel_equals_reference():
    torch.manual_seed(1)
    merger = GridTokenMerger(0.6)
    z = torch.randn(3, 11 * 13, 24)
    mask = merger(z, (11, 13))
    delta = torch.randn(3, mask.num_merged, 24)
    with torch.no_grad():
        out = unmerge_add(z, delta, mask)
    torch.testing.assert_close(out, z + unmerge_tokens(delta, mask), rtol=0, atol=0)
    # a non-contiguous delta (the ViT block slices off its class token)
    wide = torch.randn(3, 1 + mask.num_merged, 24)
    with torch.no_grad():
        out = unmerge_add(z, wide[:, 1:], mask)
    torch.testing.assert_close(out, z + unmerge_tokens(wide[:, 1:], mask), rtol=0, atol=0)


def test_unmerge_kernel_rejects_an_assignment_outside_the_merged_tokens():
    z = torch.randn(1, 4, 3)
    with pytest.raises(RuntimeError, match=r'assign\[3\] = 2 is not a merged token'):
        fused.unmerge_add(z, torch.randn(1, 2, 3), torch.tensor([0, 1, 1, 2]))


def test_kernels_are_used_only_without_gradients_tracing_or_other_dtypes():
    merger = GridTokenMerger(0.5)
    z = torch.randn(1, 36, 8)
    params = [merger.log_step]
    with torch.no_grad():
        assert fused.can_fuse([z], params)
        assert not fused.can_fuse([z.double()], params)
        with fused.fused_ops(False):
            assert not fused.can_fuse([z], params)
    # training: the step is a parameter that needs a gradient
    assert not fused.can_fuse([z], params)
    assert fused.can_fuse([z], [])
    # the gradient still reaches the step through the reference code
    zg = z.clone().requires_grad_()
    mask, merged = merger.merge(zg, (6, 6))
    unmerge_add(zg, merged ** 2, mask).sum().backward()
    assert merger.log_step.grad is not None and merger.log_step.grad.abs() > 0
    # tracing (the FLOP counter, under no_grad) sees the reference ops

    class Merge(torch.nn.Module):

        def __init__(self):
            super().__init__()
            self.merger = merger

        def forward(self, x):
            return self.merger.merge(x, (6, 6))[1]

    with torch.no_grad():
        traced = torch.jit.trace(Merge(), (z,), check_trace=False)
    graph = str(traced.inlined_graph)
    assert 'index_add' in graph and 'mask_and_merge' not in graph


def test_missing_kernels_warn_once_and_fall_back(monkeypatch):
    monkeypatch.setattr(fused, '_ext', None)
    monkeypatch.setattr(fused, '_EXT_ERROR', ImportError('no _ext here'))
    monkeypatch.setitem(fused._STATE, 'warned', False)
    merger = GridTokenMerger(0.5)
    z = torch.randn(1, 36, 8)
    with torch.no_grad(), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        mask = merger(z, (6, 6))
        merger(z, (6, 6), mask)
    msgs = [str(w.message) for w in caught if 'kernels are not built' in str(w.message)]
    assert len(msgs) == 1 and 'no _ext here' in msgs[0] and 'MMLTM_FUSED_OPS=0' in msgs[0]
    with fused.fused_ops(False):
        torch.testing.assert_close(mask.weight, merger(z, (6, 6)).weight)


def test_ltm_swin_backbone_with_and_without_kernels_agree():
    from mmltm.models.backbones import LTMSwinTransformer
    torch.manual_seed(0)
    model = LTMSwinTransformer(embed_dims=32, depths=(2, 2), num_heads=(2, 4),
                               out_indices=(0, 1), compression_ratio=0.6).eval()
    x = torch.randn(2, 3, 96, 128)
    with torch.inference_mode():
        outs = model(x)
        with fused.fused_ops(False):
            ref = model(x)
    for a, b in zip(outs, ref):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize('batch,hw,channels,ratio,step', [
    (2, (56, 56), 96, 0.7, 1.0),     # LTM-Swin-T stage 1 at 224
    (1, (7, 7), 768, 0.7, 2.5),      # stage 4, one image: channel chunks
    (3, (13, 17), 32, 0.5, 0.3),
    (2, (14, 14), 384, 0.78, 29.0),  # ViT-S's grid, a large step
    (1, (1, 6), 5, 0.5, 1.0),        # a single row
])
def test_ltm_kernel_equals_reference_uniform_and_chained(batch, hw, channels, ratio, step):
    torch.manual_seed(0)
    merger = TokenMerger(ratio, dims=channels, init_step=step)
    z = torch.randn(batch, hw[0] * hw[1], channels)
    z[0, 0] = 0  # a zero token: its features use the clamped norm
    (ref_mask, ref_merged), (mask, merged) = reference_and_fused(merger, z, hw)
    assert torch.equal(mask.assign, ref_mask.assign)
    torch.testing.assert_close(mask.weight, ref_mask.weight, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(merged, ref_merged, rtol=1e-5, atol=1e-5)
    z2 = 1.1 * z + 0.3 * torch.randn_like(z)  # a chained block
    (ref2, ref_merged2), (mask2, merged2) = reference_and_fused(merger, z2, hw, ref_mask)
    assert torch.equal(mask2.assign, ref2.assign)
    torch.testing.assert_close(mask2.weight, ref2.weight, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(merged2, ref_merged2, rtol=1e-5, atol=1e-5)
    # the per-sample unmerge kernel equals the gather
    delta = torch.randn_like(merged2)
    with torch.no_grad():
        out = unmerge_add(z2, delta, mask2)
    torch.testing.assert_close(out, z2 + unmerge_tokens(delta, mask2), rtol=0, atol=0)


def test_ltm_kernel_rejects_a_plan_or_prior_that_does_not_fit():
    merger = TokenMerger(0.5, dims=8)
    z = torch.randn(1, 36, 8)
    prev = merger(z, (6, 6))
    plan = prev.plan
    f = torch.randn(1, 36, 4)
    none_l, none_f = torch.empty(0, dtype=torch.long), torch.empty(0)
    bad = plan.candidates.clone()
    bad[3, 2] = plan.num_merged
    with pytest.raises(RuntimeError, match=r'candidates\[3, 2\] = 20 is not a merged token'):
        fused._ext.ltm_mask_and_merge(z, f, none_l, none_f, plan.anchor, plan.movable, bad,
                                      plan.candidate_valid, 1.0)
    with pytest.raises(RuntimeError, match='does not describe 36 tokens'):
        fused._ext.ltm_mask_and_merge(z, f, none_l, none_f, plan.anchor, plan.movable[:-1],
                                      plan.candidates[:-1], plan.candidate_valid[:-1], 1.0)
    wrong = prev.assign.clone()
    wrong[0, 5] = -1
    with pytest.raises(RuntimeError, match='prior assign entry 5 = -1 is not a merged token'):
        fused._ext.ltm_mask_and_merge(z, f, wrong, prev.weight, plan.anchor, plan.movable,
                                      plan.candidates, plan.candidate_valid, 1.0)
