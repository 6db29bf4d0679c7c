"""LTM-Swin: equivalence with mmdet's Swin, the dense-G reference, FLOPs,
gradients (also with ``with_cp``), errors."""
import math

import pytest
import torch
from mmdet.models.backbones import SwinTransformer
from mmengine.analysis import FlopAnalyzer
from test_layers import dense_ltm_reference

from mmltm.models.backbones import LTMSwinTransformer
from mmltm.models.utils import is_token_merger_key
from mmltm.ops import build_token_merger, plan_merge_grid
from mmltm.registry import registered_in

TINY = dict(embed_dims=32, depths=(2, 2, 2, 2), num_heads=(1, 2, 4, 8), drop_path_rate=0.)


def _pair(ratio, **kw):
    torch.manual_seed(0)
    cfg = {**TINY, **kw}
    base = SwinTransformer(**cfg)
    base.init_weights()
    base.eval()  # mmdet's Swin.train() returns None: never chain
    ltm = LTMSwinTransformer(compression_ratio=ratio, **cfg)
    result = ltm.load_state_dict(base.state_dict(), strict=False)
    assert not result.unexpected_keys
    assert result.missing_keys and all(map(is_token_merger_key, result.missing_keys))
    return base, ltm.eval()


def test_registered_once_in_every_library():
    assert set(registered_in('LTMSwinTransformer')) == {'mmltm', 'mmpretrain', 'mmdet', 'mmseg'}
    from mmdet.registry import MODELS as DET
    from mmpretrain.registry import MODELS as CLS
    from mmseg.registry import MODELS as SEG
    assert DET.get('LTMSwinTransformer') is SEG.get('LTMSwinTransformer') \
        is CLS.get('LTMSwinTransformer') is LTMSwinTransformer


def test_ratio_one_equals_mmdet_swin_t_224x320():
    torch.manual_seed(0)
    base = SwinTransformer(drop_path_rate=0.)
    base.init_weights()
    base.eval()
    ltm = LTMSwinTransformer(arch='tiny', compression_ratio=1.0, drop_path_rate=0.)
    missing = ltm.load_state_dict(base.state_dict(), strict=False).missing_keys
    assert sorted(missing) == sorted(k for k in ltm.state_dict() if 'token_merger' in k)
    assert sorted(missing) == sorted(f'stages.{i}.blocks.{j}.token_merger.{k}'
                                     for i, s in enumerate(ltm.stages)
                                     for j, b in enumerate(s.blocks)
                                     for k in b.token_merger.state_dict())
    x = torch.randn(1, 3, 224, 320)
    with torch.no_grad():
        ref, out = base(x), ltm.eval()(x)
    for r, o in zip(ref, out):
        assert r.shape == o.shape
        torch.testing.assert_close(o, r, atol=1e-4, rtol=0)


def test_state_dict_keys_are_mmdet_keys_plus_merger_keys():
    base, ltm = _pair(0.7)
    base_keys, ltm_keys = set(base.state_dict()), set(ltm.state_dict())
    assert base_keys <= ltm_keys
    extra = ltm_keys - base_keys
    assert extra == {f'stages.{i}.blocks.{j}.token_merger.{k}'
                     for i in range(4) for j in range(2)
                     for k in ltm.stages[i].blocks[j].token_merger.state_dict()}
    # every other parameter is Swin's; the mask modules' are few
    n_base = sum(p.numel() for p in base.parameters())
    assert sum(p.numel() for n, p in ltm.named_parameters() if 'token_merger' not in n) == n_base
    assert 0 < sum(p.numel() for m in ltm.token_mergers for p in m.parameters()) < 0.01 * n_base


def dense_swin_block(block, x, hw, prev):
    """One LTM-Swin block by plain matmuls: ``Z + Ĝ·FFN(LN(GᵀZ))``."""
    z = x + block.attn(block.norm1(x), hw)
    if block.token_merger.is_identity(hw):
        return z + block.ffn.layers(block.norm2(z)), None
    mask, _ = block.token_merger.merge(z, hw, prev)
    return dense_ltm_reference(z, mask, lambda t: block.ffn.layers(block.norm2(t))), mask


def dense_swin_forward(ltm, x):
    """mmdet's ``SwinTransformer.forward`` with every block dense (eval)."""
    x, hw = ltm.patch_embed(x)
    x = ltm.drop_after_pos(x)
    outs = []
    for i, stage in enumerate(ltm.stages):
        mask = None
        for block in stage.blocks:
            x, mask = dense_swin_block(block, x, hw, mask)
        out, out_hw = x, hw
        if stage.downsample is not None:
            x, hw = stage.downsample(x, hw)
        if i in ltm.out_indices:
            out = getattr(ltm, f'norm{i}')(out)
            outs.append(out.view(-1, *out_hw, ltm.num_features[i]).permute(0, 3, 1, 2))
    return outs


def test_block_equals_the_dense_reference_and_chains_its_mask():
    _, ltm = _pair(0.6)
    stage = ltm.stages[0]
    x = torch.randn(2, 16 * 16, 32)
    with torch.no_grad():
        out0, mask0 = stage.blocks[0](x, (16, 16))
        out1, mask1 = stage.blocks[1](out0, (16, 16), mask0)
        ref0, ref_mask0 = dense_swin_block(stage.blocks[0], x, (16, 16), None)
        ref1, _ = dense_swin_block(stage.blocks[1], ref0, (16, 16), ref_mask0)
    assert mask0.merged_grid == plan_merge_grid(16, 16, 0.6)
    torch.testing.assert_close(out0, ref0, atol=1e-5, rtol=0)
    torch.testing.assert_close(out1, ref1, atol=1e-5, rtol=0)
    # the second block started from the first one's mask, not the uniform one
    with torch.no_grad():
        z1 = out0 + stage.blocks[1].attn(stage.blocks[1].norm1(out0), (16, 16))
        fresh, _ = stage.blocks[1].token_merger.merge(z1, (16, 16), None)
    assert not torch.allclose(fresh.weight, mask1.weight, atol=1e-4)


@pytest.mark.parametrize('size', [(64, 64), (75, 101), (33, 47)])
@pytest.mark.parametrize('batch', [1, 2])
def test_backbone_equals_the_dense_reference_for_odd_sizes_and_small_batches(size, batch):
    base, ltm = _pair(0.6)
    x = torch.randn(batch, 3, *size)
    with torch.no_grad():
        ref, out, dense = base(x), ltm(x), dense_swin_forward(ltm, x)
    assert [o.shape for o in out] == [r.shape for r in ref]
    for o, d in zip(out, dense):
        torch.testing.assert_close(o, d, atol=1e-5, rtol=1e-5)
    # merging changes the function (it is not a no-op at ratio < 1)
    assert not torch.allclose(out[0], ref[0], atol=1e-4)


def test_train_mode_with_cp_and_gradients_reach_the_mask_module():
    _, ltm = _pair(0.6, with_cp=True, drop_path_rate=0.1)
    ltm.train()
    x = torch.randn(2, 3, 64, 64, requires_grad=True)
    out = ltm(x)
    sum(o.square().mean() for o in out).backward()
    # stage grids 16x16, 8x8, 4x4 merge; the 2x2 grid of stage 4 cannot
    # drop a row or column at ratio 0.6, so its blocks run unmerged and tie
    # their parameter in with an exact zero (DDP needs a gradient for it)
    assert ltm.stages[3].blocks[0].token_merger.is_identity((2, 2))
    grads = [b.token_merger.log_step.grad for s in ltm.stages[:3] for b in s.blocks]
    assert all(g is not None and float(g.abs()) > 0 for g in grads)
    tied = [p for b in ltm.stages[3].blocks for p in b.token_merger.parameters()]
    assert tied and all(p.grad is not None and not p.grad.any() for p in tied)


def test_with_cp_gives_the_same_outputs_and_gradients():
    _, ltm = _pair(0.6)
    _, ltm_cp = _pair(0.6, with_cp=True)
    results = []
    for model in (ltm.train(), ltm_cp.train()):
        x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1),
                        requires_grad=True)
        out = model(x)
        sum((o * torch.linspace(-1, 1, o.shape[1])[:, None, None]).square().mean()
            for o in out).backward()
        results.append((out, x.grad, {n: p.grad for n, p in model.named_parameters()}))
    (out, gx, grads), (out_cp, gx_cp, grads_cp) = results
    for a, b in zip(out, out_cp):
        torch.testing.assert_close(a, b)
    torch.testing.assert_close(gx, gx_cp)
    assert grads.keys() == grads_cp.keys()
    for name in grads:
        assert grads[name] is not None, name
        torch.testing.assert_close(grads[name], grads_cp[name], msg=name)


@pytest.mark.parametrize('dtype,atol,stages', [(torch.float16, 0.02, 4), (torch.bfloat16, 0.1, 2)])
def test_autocast_forward_is_close_to_float32(dtype, atol, stages):
    """Under autocast (the mask in float32) the outputs stay within about
    3x the measured low-precision error (fp16 0.004, bf16 0.03 on maps of
    magnitude ~4) of the float32 ones. With bf16 (8-bit mantissa) a
    content-dependent mask may assign some tokens of the deeper stages to
    other merged tokens, so there only the first two stages are compared
    and the rest must be finite."""
    _, ltm = _pair(0.6)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        ref = ltm(x)
        with torch.autocast('cpu', dtype=dtype):
            out = ltm(x)
    for o, r in zip(out[:stages], ref):
        torch.testing.assert_close(o.float(), r, atol=atol, rtol=0)
    assert all(torch.isfinite(o.float()).all() for o in out)


def test_tome_mode_equals_the_dense_reference():
    base, _ = _pair(0.6)
    tome = LTMSwinTransformer(compression_ratio=0.6, merge_mode='tome', **TINY)
    tome.load_state_dict(base.state_dict(), strict=False)
    tome.eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        for o, d in zip(tome(x), dense_swin_forward(tome, x)):
            torch.testing.assert_close(o, d, atol=1e-5, rtol=1e-5)


def test_masks_are_recorded_per_stage():
    _, ltm = _pair(0.5)
    ltm.record_merge_masks(True)
    with torch.no_grad():
        ltm(torch.randn(1, 3, 64, 64))
    masks = ltm.last_merge_masks
    assert [len(m) for m in masks] == [2, 2, 2, 2]
    for stage, grid in zip(masks, [(16, 16), (8, 8), (4, 4), (2, 2)]):
        for mask in stage:
            if plan_merge_grid(*grid, 0.5) == grid:
                assert mask is None
            else:
                assert mask.grid == grid and mask.merged_grid == plan_merge_grid(*grid, 0.5)
    # the masks of the last forward: a second image replaces them
    first = masks[0][0].weight
    with torch.no_grad():
        ltm(torch.randn(1, 3, 64, 64))
    assert ltm.last_merge_masks[0][0].weight is not first
    ltm.record_merge_masks(False)
    with pytest.raises(RuntimeError, match='recording is off'):
        ltm.last_merge_masks


@pytest.mark.parametrize('bad', [0.0, -0.5, 1.5, 'x'])
def test_bad_compression_ratio(bad):
    with pytest.raises(ValueError, match=r'compression_ratio=.*\(0, 1\]'):
        LTMSwinTransformer(compression_ratio=bad, **TINY)


def test_tiny_ratio_keeps_a_token_per_map_not_per_window():
    """The FFN merges over the whole map of a stage, so there is no window
    bound: 0.01 keeps one token of a 16x16 map (and is what it computes)."""
    _, ltm = _pair(0.01)
    assert 1 <= math.prod(plan_merge_grid(16, 16, 0.01)) <= 4  # ceil(0.01 * 256) = 3
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        for o, d in zip(ltm(x), dense_swin_forward(ltm, x)):
            torch.testing.assert_close(o, d, atol=1e-5, rtol=1e-5)


@pytest.fixture()
def no_mmdet_build(monkeypatch):
    """Make the (slow) mmdet build fail loudly: errors raised under this
    fixture were raised before it."""
    def refuse(self, *args, **kwargs):
        raise AssertionError('mmdet SwinTransformer.__init__ ran')

    monkeypatch.setattr(SwinTransformer, '__init__', refuse)


@pytest.mark.parametrize('kwargs,error,match', [
    (dict(merge_mode='fast'), ValueError, r"merge_mode='fast' is not supported"),
    (dict(compression_ratio=1.5), ValueError, r'compression_ratio=1.5'),
    (dict(arch='huge'), ValueError, r"arch='huge' is not supported"),
    (dict(merger_cfg=dict(bogus=1)), TypeError, r"merger_cfg=\{'bogus': 1\}.*bogus"),
    (dict(merger_cfg='x'), TypeError, r"merger_cfg='x' must be a dict"),
    (dict(merge_mode='tome', init_step=2.0), ValueError,
     r"init_step=2.0 does not apply to merge_mode='tome'"),
])
def test_bad_arguments_raise_before_the_mmdet_build(no_mmdet_build, kwargs, error, match):
    with pytest.raises(error, match=match):
        LTMSwinTransformer(**{**TINY, **kwargs})


def test_merger_cfg_reaches_every_mask_module():
    ltm = LTMSwinTransformer(compression_ratio=0.5, merger_cfg=dict(learnable_step=False),
                             init_step=2.0, **TINY)
    expected = build_token_merger('ltm', 0.5, dims=32, init_step=2.0).log_step
    for merger in ltm.token_mergers:
        assert 'log_step' in dict(merger.named_buffers())  # learnable_step=False
        torch.testing.assert_close(merger.log_step, expected)  # init_step=2.0
    tome = LTMSwinTransformer(compression_ratio=0.5, merge_mode='tome',
                              merger_cfg=dict(window_size=None), **TINY)
    assert all(m.window_size is None for m in tome.token_mergers)


def test_unknown_argument():
    with pytest.raises(TypeError, match='window_sizes'):
        LTMSwinTransformer(window_sizes=7)


def _flops(model, size):
    model.eval()
    analyzer = FlopAnalyzer(model, torch.randn(1, 3, *size))
    analyzer.unsupported_ops_warnings(False)
    analyzer.uncalled_modules_warnings(False)
    return analyzer


def test_flops_ratio_of_default_ltm_swin_t_at_224():
    torch.manual_seed(0)
    base = SwinTransformer()
    ltm = LTMSwinTransformer(arch='tiny')  # default compression_ratio
    fb, fl = _flops(base, (224, 224)), _flops(ltm, (224, 224))
    ratio = fl.total() / fb.total()
    assert 4.4e9 < fb.total() < 4.6e9  # mmengine's count of Swin-T (4.5 G in the paper)
    assert ratio <= 0.85, ratio
    # the counter sees the reduced token count: FFN of block 0 on N' tokens
    hh, ww = plan_merge_grid(56, 56, ltm.compression_ratio)
    ffn = fl.by_module()['stages.0.blocks.0.ffn.layers']
    assert ffn == hh * ww * (96 * 384 + 384 * 96)
    assert fb.by_module()['stages.0.blocks.0.ffn.layers'] == 56 * 56 * (96 * 384 * 2)
