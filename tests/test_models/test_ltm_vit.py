"""LTM-ViT: equivalence with mmpretrain's ViT, shapes, FLOPs, gradients,
errors, the simple feature pyramid and a train step."""
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from mmengine.analysis import FlopAnalyzer
from mmpretrain.models.backbones import VisionTransformer
from mmpretrain.models.utils import resize_pos_embed
from test_layers import dense_encoder_layer

from mmltm.models.backbones import LTMVisionTransformer
from mmltm.models.backbones.ltm_vit import DEFAULT_VIT_COMPRESSION_RATIOS
from mmltm.models.layers import LTMTransformerEncoderLayer
from mmltm.models.necks import SimpleFeaturePyramid
from mmltm.models.utils import is_token_merger_key
from mmltm.ops import plan_merge_grid
from mmltm.registry import registered_in

TINY = dict(
    arch=dict(embed_dims=32, num_layers=3, num_heads=2,
              feedforward_channels=64),
    img_size=64, patch_size=8)


def _pair(ratio, **kw):
    """A VisionTransformer and an LTM-ViT with the same weights."""
    torch.manual_seed(0)
    cfg = {**TINY, **kw}
    base = VisionTransformer(**cfg)
    base.init_weights()
    ltm = LTMVisionTransformer(compression_ratio=ratio, **cfg)
    result = ltm.load_state_dict(base.state_dict(), strict=False)
    assert not result.unexpected_keys
    assert result.missing_keys and all(map(is_token_merger_key,
                                           result.missing_keys))
    base.eval()
    ltm.eval()
    return base, ltm


def _gflops(model, size):
    x = torch.randn(1, 3, size, size)
    with torch.no_grad():
        analyzer = FlopAnalyzer(model, (x, ))
        analyzer.unsupported_ops_warnings(False)
        analyzer.uncalled_modules_warnings(False)
        return analyzer.total() / 1e9, analyzer


def test_registered_in_every_library():
    assert set(registered_in('LTMVisionTransformer')) == {
        'mmltm', 'mmpretrain', 'mmdet', 'mmseg'}
    assert set(registered_in('SimpleFeaturePyramid')) == {
        'mmltm', 'mmpretrain', 'mmdet', 'mmseg'}
    from mmdet.registry import MODELS as DET
    from mmseg.registry import MODELS as SEG
    assert DET.get('LTMVisionTransformer') is SEG.get(
        'LTMVisionTransformer') is LTMVisionTransformer


def test_ratio_one_equals_mmpretrain_vit_s():
    """ViT-S/16 (deit-small) at 224x224, same weights: equal outputs."""
    torch.manual_seed(0)
    base = VisionTransformer(arch='deit-small', out_type='raw')
    base.init_weights()
    ltm = LTMVisionTransformer(arch='deit-small', compression_ratio=1.0,
                               out_type='raw')
    missing = ltm.load_state_dict(base.state_dict(), strict=False).missing_keys
    assert sorted(missing) == sorted(f'layers.{i}.token_merger.log_step'
                                     for i in range(12))
    base.eval()
    ltm.eval()
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        ref, out = base(x)[0], ltm(x)[0]
    assert out.shape == ref.shape == (1, 197, 384)
    torch.testing.assert_close(out, ref, atol=1e-4, rtol=0)


@pytest.mark.parametrize('out_type', ['cls_token', 'featmap', 'raw',
                                      'avg_featmap'])
def test_ratio_one_equals_base_every_out_type(out_type):
    base, ltm = _pair(1.0, out_type=out_type, out_indices=(0, 2))
    x = torch.randn(2, 3, 48, 80)  # non-square: 6 x 10 patches
    with torch.no_grad():
        for r, o in zip(base(x), ltm(x)):
            torch.testing.assert_close(o, r, atol=1e-5, rtol=0)


def test_state_dict_keys_are_base_keys_plus_merger_keys():
    base, ltm = _pair(0.5)
    base_keys, ltm_keys = set(base.state_dict()), set(ltm.state_dict())
    assert base_keys <= ltm_keys
    assert ltm_keys - base_keys == {f'layers.{i}.token_merger.log_step'
                                    for i in range(3)}
    n_extra = sum(p.numel() for n, p in ltm.named_parameters()
                  if 'token_merger' in n)
    assert n_extra == 3  # one scalar per block
    assert all(isinstance(layer, LTMTransformerEncoderLayer)
               for layer in ltm.layers)


@pytest.mark.parametrize('hw', [(48, 80), (64, 64), (24, 24)])
def test_shapes_and_masks_with_merging(hw):
    _, ltm = _pair(0.5, out_type='featmap', out_indices=(0, 1, 2))
    ltm.record_merge_masks()
    x = torch.randn(2, 3, *hw)
    with torch.no_grad():
        outs = ltm(x)
    h, w = hw[0] // 8, hw[1] // 8
    assert [tuple(o.shape) for o in outs] == [(2, 32, h, w)] * 3
    assert len(ltm.last_merge_masks) == 1  # one grid: one stage
    masks = ltm.last_merge_masks[0]
    assert len(masks) == 3
    assert all(m.grid == (h, w) and m.merged_grid == plan_merge_grid(h, w, 0.5)
               for m in masks)
    # G's columns sum to 1: each merged token is a convex combination
    g = masks[-1].dense()
    torch.testing.assert_close(g.sum(1), torch.ones(2, g.shape[2]))


def dense_vit_forward(ltm, x):
    """``VisionTransformer.forward`` (out_type 'raw', last layer) with every
    layer dense: ``[Z_cls + D_cls, Z + Ĝ·D]``, ``D = FFN(LN([Z_cls, GᵀZ]))``."""
    B = x.shape[0]
    x, hw = ltm.patch_embed(x)
    x = torch.cat([ltm.cls_token.expand(B, -1, -1), x], 1)
    x = x + resize_pos_embed(ltm.pos_embed, ltm.patch_resolution, hw,
                             mode=ltm.interpolate_mode, num_extra_tokens=1)
    x = ltm.pre_norm(ltm.drop_after_pos(x))
    mask = None
    for layer in ltm.layers:
        x, mask = dense_encoder_layer(layer, x, hw, mask, num_extra=1)
    return ltm.ln1(x)


@pytest.mark.parametrize('hw', [(64, 64), (48, 80)])
def test_equals_the_dense_reference_and_cls_token_is_never_merged(hw):
    base, ltm = _pair(0.5, out_type='raw')
    x = torch.randn(2, 3, *hw)
    with torch.no_grad():
        ref, out, dense = base(x)[0], ltm(x)[0], dense_vit_forward(ltm, x)
    assert out.shape == ref.shape == (2, 1 + hw[0] * hw[1] // 64, 32)
    torch.testing.assert_close(out, dense, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(out, ref, atol=1e-3)
    # first block by hand: the class token's FFN sees the unmerged token
    layer = ltm.layers[0]
    with torch.no_grad():
        tokens, grid = ltm.patch_embed(x)
        z = torch.cat([ltm.cls_token.expand(2, -1, -1), tokens], 1) + \
            resize_pos_embed(ltm.pos_embed, ltm.patch_resolution, grid, num_extra_tokens=1)
        out0, mask = layer(z, grid, None, 1)
        zz = z + layer.attn(layer.ln1(z))
        cls_ref = zz[:, :1] + layer.ffn(layer.ln2(zz[:, :1]), identity=0)
    torch.testing.assert_close(out0[:, :1], cls_ref, atol=1e-5, rtol=0)
    assert mask.merged_grid == plan_merge_grid(*grid, 0.5)


def test_tome_mode_equals_the_dense_reference():
    base, _ = _pair(0.5, out_type='raw')
    tome = LTMVisionTransformer(compression_ratio=0.5, merge_mode='tome', out_type='raw',
                                **TINY)
    tome.load_state_dict(base.state_dict(), strict=False)
    tome.eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(tome(x)[0], dense_vit_forward(tome, x), atol=1e-5,
                                   rtol=1e-5)


@pytest.mark.parametrize('bad', [0, 0.0, -0.5, 1.01, 2, float('nan'), True,
                                 '0.5', None])
def test_bad_compression_ratio_raises(bad):
    if bad is None:  # None means "arch preset", which is valid
        assert LTMVisionTransformer(**TINY).compression_ratio == 0.8
        return
    with pytest.raises(ValueError, match='compression_ratio'):
        LTMVisionTransformer(compression_ratio=bad, **TINY)


def test_arch_presets():
    assert LTMVisionTransformer(arch='deit-small').compression_ratio == \
        DEFAULT_VIT_COMPRESSION_RATIOS['deit-small'] == 0.78
    assert LTMVisionTransformer(arch='deit-base').compression_ratio == 0.6
    assert LTMVisionTransformer.arch_zoo['deit-s']['compression_ratio'] == 0.78


def test_gradients_reach_every_log_step():
    _, ltm = _pair(0.5, out_type='featmap')
    ltm.train()
    out = ltm(torch.randn(2, 3, 64, 64))[0]
    (out ** 2).mean().backward()
    for i, merger in enumerate(ltm.token_mergers):
        assert merger.log_step.grad is not None, i
        assert merger.log_step.grad.abs() > 0, i


def test_frozen_stages_freeze_token_mergers():
    ltm = LTMVisionTransformer(compression_ratio=0.5, frozen_stages=2, **TINY)
    assert not ltm.layers[0].token_merger.log_step.requires_grad
    assert not ltm.layers[1].token_merger.log_step.requires_grad
    assert ltm.layers[2].token_merger.log_step.requires_grad


@pytest.mark.parametrize('arch,paper,paper_ltm', [('deit-small', 4.3, 3.7),
                                                   ('deit-base', 17.6, 12.9)])
def test_flops_match_paper(arch, paper, paper_ltm):
    """mmengine's counter: baseline within 5% of the paper's ViT row; the
    default ratio lands within 0.015 of the paper's LTM/baseline ratio."""
    base, _ = _gflops(VisionTransformer(arch=arch), 224)
    ltm_model = LTMVisionTransformer(arch=arch)
    ltm, analyzer = _gflops(ltm_model, 224)
    assert abs(base / paper - 1) < 0.05, base
    assert abs(ltm / base - paper_ltm / paper) < 0.015, (ltm, base)
    assert abs(ltm / paper_ltm - 1) < 0.05, ltm
    # the counter sees the FFN on 1 + N' tokens (N' of the planned grid)
    hh, ww = plan_merge_grid(14, 14, ltm_model.compression_ratio)
    c = ltm_model.embed_dims
    ffn = analyzer.by_module()['layers.0.ffn']
    assert ffn == (1 + hh * ww) * 2 * c * 4 * c


def test_simple_feature_pyramid_on_ltm_vit():
    _, ltm = _pair(0.5, out_type='featmap', out_indices=(2, ))
    neck = SimpleFeaturePyramid(32, 16, num_outs=5,
                                norm_cfg=dict(type='GN', num_groups=4))
    with torch.no_grad():
        outs = neck(ltm(torch.randn(2, 3, 64, 96)))  # 8 x 12 patches
    assert [tuple(o.shape[2:]) for o in outs] == [(32, 48), (16, 24), (8, 12),
                                                  (4, 6), (2, 3)]
    assert all(o.shape[:2] == (2, 16) for o in outs)
    # values: the 0.5x level max-pools the map before its convs, the extra
    # level is a stride-2 subsampling of the last one
    with torch.no_grad():
        feat = ltm(torch.randn(2, 3, 64, 96))
        outs = neck(feat)
        half = neck.output_convs[3](neck.lateral_convs[3](F.max_pool2d(feat[0], 2)))
    torch.testing.assert_close(outs[3], half)
    torch.testing.assert_close(outs[4], outs[3][..., ::2, ::2])
    with pytest.raises(ValueError, match='scale_factors'):
        SimpleFeaturePyramid(32, 16, scale_factors=(3.0, ))
    with pytest.raises(ValueError, match='num_outs'):
        SimpleFeaturePyramid(32, 16, num_outs=2)


def test_train_step_in_mmpretrain_classifier():
    from mmengine.optim import build_optim_wrapper
    from mmpretrain.registry import MODELS
    from mmpretrain.structures import DataSample
    torch.manual_seed(0)
    model = MODELS.build(
        dict(
            type='ImageClassifier',
            data_preprocessor=dict(type='ClsDataPreprocessor',
                                   num_classes=4),
            backbone=dict(type='LTMVisionTransformer', compression_ratio=0.5,
                          **TINY),
            # (DeiT's VisionTransformerClsHead starts at zero: no gradient
            # would reach the backbone in the first step)
            head=dict(type='LinearClsHead', num_classes=4, in_channels=32)))
    model.init_weights()
    optim = build_optim_wrapper(model, dict(optimizer=dict(type='AdamW',
                                                           lr=1e-3)))
    data = dict(
        inputs=[torch.randint(0, 255, (3, 64, 64), dtype=torch.uint8)
                for _ in range(4)],
        data_samples=[DataSample().set_gt_label(i % 4) for i in range(4)])
    before = [m.log_step.item() for m in model.backbone.token_mergers]
    losses = model.train_step(data, optim)
    assert math.isfinite(losses['loss'].item())
    after = [m.log_step.item() for m in model.backbone.token_mergers]
    # the mask modules are trained; the last block's merging only changes
    # patch tokens, which the class-token classifier no longer sees
    assert all(b != a for b, a in zip(before[:-1], after[:-1])), after


def test_tome_merge_mode_is_a_like_for_like_baseline():
    torch.manual_seed(0)
    tome = LTMVisionTransformer(compression_ratio=0.5, merge_mode='tome',
                                out_type='featmap', **TINY)
    tome.record_merge_masks()
    tome.eval()
    with torch.no_grad():
        out = tome(torch.randn(2, 3, 64, 64))[0]
    assert out.shape == (2, 32, 8, 8)
    # same number of merged tokens as LTM's grid would keep at least
    assert all(m.num_merged == math.ceil(0.5 * 64)
               for m in tome.last_merge_masks[0])
    assert not any('token_merger' in n for n, _ in tome.named_parameters())
    with pytest.raises(ValueError, match='merge_mode'):
        LTMVisionTransformer(merge_mode='bipartite', **TINY)


# ---------------------------------------------------------------- configs
REPO = Path(__file__).resolve().parents[2]


def _cfg(name: str) -> str:
    return str(REPO / 'configs' / f'{name}.py')


def _flat(obj, prefix=''):
    if isinstance(obj, dict):
        out = {}
        for key, value in obj.items():
            out.update(_flat(value, f'{prefix}{key}.'))
        return out
    return {prefix[:-1]: obj}


def config_diff(a: str, b: str):
    """Top-level-ish keys whose values differ between two configs (a
    backbone ``init_cfg`` counts as one key)."""
    from mmengine.config import Config
    fa = _flat(Config.fromfile(a).to_dict())
    fb = _flat(Config.fromfile(b).to_dict())
    return {('model.backbone.init_cfg'
             if k.startswith('model.backbone.init_cfg.') else k)
            for k in fa.keys() | fb.keys() if fa.get(k, ...) != fb.get(k, ...)}


DENSE_LTM_KEYS = {'ltm_pretrained', 'model.backbone.type',
                  'model.backbone.compression_ratio', 'model.backbone.init_cfg'}
TOY_LTM_KEYS = {'model.backbone.type', 'model.backbone.compression_ratio'}
IB_KEYS = {'model.backbone.compression_ratio', 'model.head.type',
           'model.head.ib_weight', 'model.head.ib_loss.type',
           'model.head.ib_loss.beta', 'model.head.num_clusters',
           'model.head.num_input_clusters', 'model.head.input_size',
           'custom_hooks'}


@pytest.mark.parametrize('ltm,base,toy_ltm,toy_base', [
    ('mask_rcnn_ltm_vit_s_coco', 'mask_rcnn_vit_s_coco',
     'mask_rcnn_ltm_vit_s_toy', 'mask_rcnn_vit_s_toy'),
    ('upernet_ltm_vit_s_ade20k', 'upernet_vit_s_ade20k',
     'upernet_ltm_vit_s_toy', 'upernet_vit_s_toy'),
])
def test_dense_configs_differ_in_the_backbone_only(ltm, base, toy_ltm,
                                                   toy_base):
    from mmengine.config import Config
    assert config_diff(_cfg(ltm), _cfg(base)) == DENSE_LTM_KEYS
    assert config_diff(_cfg(f'toy/{toy_ltm}'),
                       _cfg(f'toy/{toy_base}')) == TOY_LTM_KEYS
    real, toy = (Config.fromfile(_cfg(ltm)),
                 Config.fromfile(_cfg(f'toy/{toy_ltm}')))
    assert real.model.backbone.type == toy.model.backbone.type == \
        'LTMVisionTransformer'
    assert real.model.backbone.compression_ratio == \
        toy.model.backbone.compression_ratio == \
        DEFAULT_VIT_COMPRESSION_RATIOS['deit-small']
    assert real.model.backbone.init_cfg.checkpoint == real.ltm_pretrained
    assert real.model.backbone.init_cfg.prefix == 'backbone.'
    assert Config.fromfile(_cfg(base)).model.backbone.type == \
        'mmpretrain.VisionTransformer'


@pytest.mark.parametrize('ltm,base,arch', [
    ('ltm_vit_s_4xb256_in1k', 'vit_s_4xb256_in1k', 'deit-small'),
    ('ltm_vit_b_16xb64_in1k', 'vit_b_16xb64_in1k', 'deit-base')])
def test_imagenet_configs(ltm, base, arch):
    from mmengine.config import Config
    assert config_diff(_cfg(ltm), _cfg(base)) <= IB_KEYS
    cfg = Config.fromfile(_cfg(ltm))
    assert cfg.model.backbone.compression_ratio == \
        DEFAULT_VIT_COMPRESSION_RATIOS[arch]
    assert Config.fromfile(_cfg(base)).model.backbone \
        .compression_ratio == 1.0


def test_get_model_complexity_info_sees_the_merged_ffn():
    """``mmengine.analysis.get_model_complexity_info`` (what users call)
    reports the FlopAnalyzer total that the FLOP tests check."""
    from mmengine.analysis import get_model_complexity_info
    torch.manual_seed(0)
    full = LTMVisionTransformer(compression_ratio=1.0, **TINY)
    half = LTMVisionTransformer(compression_ratio=0.5, **TINY)
    full.eval()  # (mmpretrain's BaseBackbone.train returns None, so no
    half.eval()  # chaining)
    info = {r: get_model_complexity_info(m, input_shape=(3, 64, 64),
                                         show_table=False, show_arch=False)
            for r, m in ((1.0, full), (0.5, half))}
    assert info[0.5]['flops'] == _gflops(half, 64)[0] * 1e9
    # 3 blocks, 64 -> N' patch tokens through ln2 (the counter's 5 per
    # element) and the FFN (2 * 32 * 64 MACs per token)
    n_merged = math.prod(plan_merge_grid(8, 8, 0.5))
    assert info[1.0]['flops'] - info[0.5]['flops'] == \
        3 * (64 - n_merged) * (2 * 32 * 64 + 5 * 32)
