"""Every documented default of the LTM backbones builds, through the
registry exactly as a config would: no arguments, only ``arch``, only the
sizes (the default ratio follows the sizes when they equal a preset's)."""
import pytest
import torch
from mmdet.models.backbones import SwinTransformer
from mmpretrain.models.backbones import MobileViT, VisionTransformer

from mmltm.models.backbones import EfficientViT
from mmltm.registry import MODELS

SWIN_B_SIZES = dict(embed_dims=128, depths=(2, 2, 18, 2), num_heads=(4, 8, 16, 32))
DEIT_B_SIZES = dict(embed_dims=768, num_layers=12, num_heads=12, feedforward_channels=3072)
XXS_LAYERS = [['mobilenetv2', 16, 1, 1, 2], ['mobilenetv2', 24, 2, 3, 2],
              ['mobilevit', 48, 2, 64, 128, 2, 2], ['mobilevit', 64, 2, 80, 160, 4, 2],
              ['mobilevit', 80, 2, 96, 192, 3, 2]]  # xx_small's, as a list
B0_SIZES = dict(widths=(8, 16, 32, 64, 128), depths=(1, 2, 2, 2, 2), head_dim=16)


def _swin(m):
    return dict(embed_dims=m.num_features[0],
                depths=tuple(len(s.blocks) for s in m.stages),
                num_heads=tuple(s.blocks[0].attn.w_msa.num_heads for s in m.stages))


def _vit(m):
    return dict(embed_dims=m.embed_dims, num_layers=m.num_layers,
                num_heads=m.layers[0].attn.num_heads,
                feedforward_channels=m.layers[0].ffn.feedforward_channels)


def _mobilevit(m):
    return dict(transformer_dims=tuple(t.embed_dims for t in sum(m.ltm_stages(), [])),
                layers=tuple(len(s) for s in m.ltm_stages()))


def _efficientvit(m):
    return dict(widths=tuple(m.widths), blocks=tuple(len(s) for s in m.ltm_stages()))


CASES = [
    # (type, kwargs, expected sizes, expected ratio)
    ('LTMSwinTransformer', {}, dict(embed_dims=96, depths=(2, 2, 6, 2),
                                    num_heads=(3, 6, 12, 24)), 0.7),
    ('LTMSwinTransformer', dict(arch='base'), SWIN_B_SIZES, 0.65),
    ('LTMSwinTransformer', dict(embed_dims=96), dict(embed_dims=96, depths=(2, 2, 6, 2),
                                                     num_heads=(3, 6, 12, 24)), 0.7),
    ('LTMSwinTransformer', SWIN_B_SIZES, SWIN_B_SIZES, 0.65),
    ('LTMSwinTransformer', dict(depths=[2, 2, 18, 2], embed_dims=128, num_heads=[4, 8, 16, 32]),
     SWIN_B_SIZES, 0.65),  # lists as a config gives them
    ('LTMSwinTransformer', dict(arch='tiny', embed_dims=128, num_heads=(4, 8, 16, 32)),
     dict(embed_dims=128, depths=(2, 2, 6, 2), num_heads=(4, 8, 16, 32)), 0.7),  # no preset
    ('LTMVisionTransformer', {}, dict(embed_dims=384, num_layers=12, num_heads=6,
                                      feedforward_channels=1536), 0.78),
    ('LTMVisionTransformer', dict(arch='deit-base'), DEIT_B_SIZES, 0.6),
    ('LTMVisionTransformer', dict(arch=DEIT_B_SIZES), DEIT_B_SIZES, 0.6),
    ('LTMVisionTransformer', dict(arch=dict(embed_dims=64, num_layers=2, num_heads=2,
                                            feedforward_channels=128)),
     dict(embed_dims=64, num_layers=2, num_heads=2, feedforward_channels=128), 0.8),
    ('LTMVisionTransformer', dict(arch=dict(embed_dims=64, num_layers=2, num_heads=2,
                                            feedforward_channels=128, compression_ratio=0.4)),
     dict(embed_dims=64, num_layers=2, num_heads=2, feedforward_channels=128), 0.4),
    ('LTMMobileViT', {}, dict(transformer_dims=(144, ) * 2 + (192, ) * 4 + (240, ) * 3,
                              layers=(0, 0, 2, 4, 3)), 0.5),
    ('LTMMobileViT', dict(arch='xx_small'),
     dict(transformer_dims=(64, ) * 2 + (80, ) * 4 + (96, ) * 3, layers=(0, 0, 2, 4, 3)), 0.5),
    ('LTMMobileViT', dict(arch=XXS_LAYERS),
     dict(transformer_dims=(64, ) * 2 + (80, ) * 4 + (96, ) * 3, layers=(0, 0, 2, 4, 3)), 0.5),
    ('LTMEfficientViT', {}, dict(widths=(16, 32, 64, 128, 256), blocks=(0, 0, 0, 3, 4)), 0.55),
    ('LTMEfficientViT', dict(arch='b0'), dict(widths=B0_SIZES['widths'],
                                              blocks=(0, 0, 0, 2, 2)), 0.55),
    ('LTMEfficientViT', dict(arch=B0_SIZES), dict(widths=B0_SIZES['widths'],
                                                  blocks=(0, 0, 0, 2, 2)), 0.55),
    ('LTMEfficientViT', dict(arch={**B0_SIZES, 'compression_ratio': 0.3}),
     dict(widths=B0_SIZES['widths'], blocks=(0, 0, 0, 2, 2)), 0.3),
]
SIZES = {'LTMSwinTransformer': _swin, 'LTMVisionTransformer': _vit,
         'LTMMobileViT': _mobilevit, 'LTMEfficientViT': _efficientvit}


@pytest.mark.parametrize('type_,kwargs,sizes,ratio', CASES,
                         ids=[f'{c[0]}-{"-".join(map(str, c[1])) or "default"}-{i}'
                              for i, c in enumerate(CASES)])
def test_documented_defaults_build(type_, kwargs, sizes, ratio):
    torch.manual_seed(0)
    model = MODELS.build(dict(type=type_, **kwargs))
    assert SIZES[type_](model) == sizes
    assert model.compression_ratio == ratio
    assert model.token_mergers and \
        all(m.compression_ratio == ratio for m in model.token_mergers)


def test_swin_arch_records_the_preset_the_sizes_equal():
    assert MODELS.build(dict(type='LTMSwinTransformer', **SWIN_B_SIZES)).arch == 'base'
    assert MODELS.build(dict(type='LTMSwinTransformer', arch='t', embed_dims=64)).arch is None


BASES = {'LTMSwinTransformer': SwinTransformer, 'LTMVisionTransformer': VisionTransformer,
         'LTMMobileViT': MobileViT, 'LTMEfficientViT': EfficientViT}


@pytest.mark.parametrize('type_', list(BASES))
@pytest.mark.parametrize('kwargs,error,match', [
    (dict(merge_mode='fast'), ValueError, r"merge_mode='fast' is not supported"),
    (dict(compression_ratio=0.0), ValueError, r'compression_ratio=0.0 is not allowed'),
    (dict(merger_cfg=dict(bogus=1)), TypeError, r"merger_cfg=\{'bogus': 1\}"),
    (dict(merger_cfg=dict(dims=8)), ValueError, r"merger_cfg=.* may not set \['dims'\]"),
    (dict(arch='colossal'), ValueError, r"arch='colossal' is not supported; allowed"),
])
def test_bad_arguments_raise_before_the_base_backbone_is_built(monkeypatch, type_, kwargs,
                                                               error, match):
    def refuse(self, *args, **kw):
        raise AssertionError(f'{BASES[type_].__name__}.__init__ ran')

    monkeypatch.setattr(BASES[type_], '__init__', refuse)
    with pytest.raises(error, match=match):
        MODELS.build(dict(type=type_, **kwargs))
