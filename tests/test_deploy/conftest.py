"""Small LTM backbones of the real classes, for fast deployment tests."""
import pytest
import torch


def small_swin(**kw):
    from mmltm.models.backbones.ltm_swin import LTMSwinTransformer
    return LTMSwinTransformer(embed_dims=32, depths=(2, 2), num_heads=(1, 2),
                              strides=(4, 2), out_indices=(0, 1), **kw)


def small_vit(**kw):
    from mmltm.models.backbones.ltm_vit import LTMVisionTransformer
    return LTMVisionTransformer(
        arch=dict(embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64),
        img_size=64, patch_size=16, out_type='featmap', **kw)


def small_efficientvit(**kw):
    from mmltm.models.backbones.ltm_efficientvit import LTMEfficientViT
    return LTMEfficientViT(arch='b0', **kw)


def small_mobilevit(**kw):
    from mmltm.models.backbones.ltm_mobilevit import LTMMobileViT
    return LTMMobileViT(arch='xx_small', **kw)


BUILDERS = dict(swin=small_swin, vit=small_vit, efficientvit=small_efficientvit,
                mobilevit=small_mobilevit)


@pytest.fixture
def build():
    def make(name, **kw):
        torch.manual_seed(0)
        m = BUILDERS[name](**kw)
        m.eval()
        return m
    return make
