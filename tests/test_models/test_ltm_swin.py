"""LTM-Swin: equivalence with mmdet's Swin, shapes, FLOPs, gradients, errors."""
import pytest
import torch
from mmdet.models.backbones import SwinTransformer
from mmengine.analysis import FlopAnalyzer

from mmltm.models.backbones import LTMSwinTransformer
from mmltm.models.utils import is_token_merger_key
from mmltm.ops import plan_merge_grid
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
    assert len(missing) == sum(base.stages[i].blocks.__len__() for i in range(4))
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
    assert extra == {f'stages.{i}.blocks.{j}.token_merger.log_step'
                     for i in range(4) for j in range(2)}
    n_extra = sum(p.numel() for n, p in ltm.named_parameters() if 'token_merger' in n)
    assert n_extra == 8  # one scalar per block: parameter count is Swin's


@pytest.mark.parametrize('size', [(64, 64), (75, 101), (33, 47)])
@pytest.mark.parametrize('batch', [1, 2])
def test_outputs_have_swin_shapes_for_odd_sizes_and_small_batches(size, batch):
    base, ltm = _pair(0.6)
    x = torch.randn(batch, 3, *size)
    with torch.no_grad():
        ref, out = base(x), ltm(x)
    assert [o.shape for o in out] == [r.shape for r in ref]
    assert all(torch.isfinite(o).all() for o in out)
    # merging changes the function (it is not a no-op at ratio < 1)
    assert not torch.allclose(out[0], ref[0], atol=1e-4)


def test_train_mode_with_cp_and_gradients_reach_the_mask_module():
    _, ltm = _pair(0.6, with_cp=True, drop_path_rate=0.1)
    ltm.train()
    x = torch.randn(2, 3, 64, 64, requires_grad=True)
    out = ltm(x)
    sum(o.square().mean() for o in out).backward()
    # stage grids 16x16, 8x8, 4x4 merge; the 2x2 grid of stage 4 cannot
    # drop a row or column at ratio 0.6, so its blocks run unmerged
    assert ltm.stages[3].blocks[0].token_merger.is_identity((2, 2))
    grads = [b.token_merger.log_step.grad for s in ltm.stages[:3] for b in s.blocks]
    assert all(g is not None and float(g.abs()) > 0 for g in grads)


def test_with_cp_matches_plain_forward():
    _, ltm = _pair(0.6)
    _, ltm_cp = _pair(0.6, with_cp=True)
    x = torch.randn(1, 3, 64, 64, requires_grad=True)
    for a, b in zip(ltm.train()(x), ltm_cp.train()(x)):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize('dtype', [torch.bfloat16, torch.float16])
def test_autocast_forward(dtype):
    _, ltm = _pair(0.6)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad(), torch.autocast('cpu', dtype=dtype):
        out = ltm(x)
    assert all(torch.isfinite(o.float()).all() for o in out)


def test_masks_chain_within_a_stage_and_are_recorded():
    _, ltm = _pair(0.5)
    ltm.record_merge_masks(True)
    with torch.no_grad():
        ltm(torch.randn(1, 3, 64, 64))
    masks = ltm.last_merge_masks
    assert [len(m) for m in masks] == [2, 2, 2, 2]
    m0 = masks[0][0]
    assert m0.grid == (16, 16) and m0.merged_grid == plan_merge_grid(16, 16, 0.5)
    assert not torch.allclose(masks[0][0].weight, masks[0][1].weight)


@pytest.mark.parametrize('bad', [0.0, -0.5, 1.5, 'x'])
def test_bad_compression_ratio(bad):
    with pytest.raises(ValueError, match=r'compression_ratio=.*\(0, 1\]'):
        LTMSwinTransformer(compression_ratio=bad, **TINY)


def test_ratio_that_keeps_no_token_of_a_window():
    with pytest.raises(ValueError, match=r'compression_ratio=0.01 would keep no token of a 7x7'):
        LTMSwinTransformer(compression_ratio=0.01, **TINY)


def test_unknown_arch_and_unknown_argument():
    with pytest.raises(ValueError, match="arch='huge'"):
        LTMSwinTransformer(arch='huge')
    with pytest.raises(TypeError, match='window_sizes'):
        LTMSwinTransformer(window_sizes=7)


def test_arch_presets():
    assert LTMSwinTransformer(arch='small').stages[2].blocks.__len__() == 18
    base = LTMSwinTransformer(arch='base')
    assert base.num_features == [128, 256, 512, 1024]


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
