"""LTM-MobileViT: equivalence with mmpretrain's MobileViT, shapes, the patch
grid merging works on, FLOPs, gradients, errors and a train step."""
import math

import pytest
import torch
from mmengine.analysis import FlopAnalyzer
from mmpretrain.models.backbones import MobileViT
from test_layers import dense_encoder_layer

from mmltm.models.backbones import LTMMobileViT
from mmltm.models.backbones.ltm_mobilevit import (LTMGlobalRep,
                                                  LTMMobileVitBlock)
from mmltm.models.utils import is_token_merger_key
from mmltm.ops import plan_merge_grid
from mmltm.registry import registered_in


def _pair(ratio, arch='xx_small', **kw):
    torch.manual_seed(0)
    base = MobileViT(arch=arch, **kw)
    base.init_weights()
    ltm = LTMMobileViT(arch=arch, compression_ratio=ratio, **kw)
    result = ltm.load_state_dict(base.state_dict(), strict=False)
    assert not result.unexpected_keys
    assert result.missing_keys and all(map(is_token_merger_key,
                                           result.missing_keys))
    base.eval()
    ltm.eval()
    return base, ltm


def _classifier_gflops(arch, ratio, size=224):
    """Backbone + global pooling + Linear, as the paper's table counts."""
    model = torch.nn.Sequential()
    model.backbone = LTMMobileViT(arch=arch, compression_ratio=ratio)
    channels = {'x_small': 384, 'small': 640}[arch]

    class Classifier(torch.nn.Module):

        def __init__(self):
            super().__init__()
            self.backbone = model.backbone
            self.fc = torch.nn.Linear(channels, 1000)

        def forward(self, x):
            return self.fc(self.backbone(x)[-1].mean((2, 3)))

    clf = Classifier().eval()
    with torch.no_grad():
        analyzer = FlopAnalyzer(clf, (torch.randn(1, 3, size, size), ))
        analyzer.unsupported_ops_warnings(False)
        analyzer.uncalled_modules_warnings(False)
        return analyzer.total() / 1e9, analyzer


def test_registered_in_every_library():
    assert set(registered_in('LTMMobileViT')) == {'mmltm', 'mmpretrain',
                                                  'mmdet', 'mmseg'}


@pytest.mark.parametrize('arch', ['x_small', 'small'])
def test_ratio_one_equals_mmpretrain_mobilevit(arch):
    base, ltm = _pair(1.0, arch=arch, out_indices=(2, 3, 4))
    x = torch.randn(1, 3, 96, 128)
    with torch.no_grad():
        for r, o in zip(base(x), ltm(x)):
            assert r.shape == o.shape
            torch.testing.assert_close(o, r, atol=1e-4, rtol=0)


def test_state_dict_keys_are_base_keys_plus_merger_keys():
    base, ltm = _pair(0.5)
    extra = set(ltm.state_dict()) - set(base.state_dict())
    assert set(base.state_dict()) <= set(ltm.state_dict())
    # xx_small: 2, 4, 3 transformer layers in layers 2, 3, 4
    assert extra == {f'layers.{i}.1.global_rep.{j}.token_merger.log_step'
                     for i, n in ((2, 2), (3, 4), (4, 3)) for j in range(n)}
    assert sum(p.numel() for n, p in ltm.named_parameters()
               if 'token_merger' in n) == 9
    blocks = [m for m in ltm.modules() if isinstance(m, LTMMobileVitBlock)]
    assert len(blocks) == 3
    assert all(isinstance(b.global_rep, LTMGlobalRep) for b in blocks)


@pytest.mark.parametrize('hw', [(64, 64), (96, 160), (80, 80)])
def test_shapes_and_patch_grids(hw):
    _, ltm = _pair(0.5, out_indices=(0, 1, 2, 3, 4))
    ltm.record_merge_masks()
    x = torch.randn(2, 3, *hw)
    with torch.no_grad():
        outs = ltm(x)
        base_outs = MobileViT(arch='xx_small', out_indices=(0, 1, 2, 3, 4))(x)
    assert [o.shape for o in outs] == [o.shape for o in base_outs]
    masks = ltm.last_merge_masks  # one list per entry of ``layers``
    assert [len(m) for m in masks] == [0, 0, 2, 4, 3]
    for block_masks, stride in zip(masks[2:], (8, 16, 32)):
        # the map of a MobileViT block is H/stride x W/stride; unfolding in
        # 2x2 patches (after resizing up to an even size) gives the grid
        h = math.ceil(math.ceil(hw[0] / stride) / 2)
        w = math.ceil(math.ceil(hw[1] / stride) / 2)
        for mask in block_masks:
            if (h, w) == plan_merge_grid(h, w, 0.5):
                assert mask is None  # nothing to merge on this grid
                continue
            assert mask.grid == (h, w)
            assert mask.merged_grid == plan_merge_grid(h, w, 0.5)
            # one sequence per batch image and position inside the 2x2 patch
            assert mask.weight.shape == (2 * 4, h * w)


class DenseGlobalRep(torch.nn.Module):
    """A ``global_rep`` whose transformer layers run by plain matmuls
    (:func:`dense_encoder_layer`) on a given patch grid."""

    def __init__(self, ltm_rep, grid):
        super().__init__()
        self.layers, self.norm, self.grid = list(ltm_rep)[:-1], ltm_rep[-1], grid

    def forward(self, x):
        mask = None
        for layer in self.layers:
            x, mask = dense_encoder_layer(layer, x, self.grid, mask)
        return self.norm(x)


@pytest.mark.parametrize('merge_mode', ['ltm', 'tome'])
def test_equals_mobilevit_with_dense_reference_layers(merge_mode):
    """mmpretrain's MobileViT (its unfold / fold) with each ``global_rep``
    replaced by the dense reference of the LTM layers gives LTM-MobileViT's
    outputs; before the first MobileViT block nothing changes."""
    base, ltm = _pair(0.5, out_indices=(1, 2, 3, 4))
    if merge_mode == 'tome':
        ltm = LTMMobileViT(arch='xx_small', compression_ratio=0.5, merge_mode='tome',
                           out_indices=(1, 2, 3, 4))
        ltm.load_state_dict(base.state_dict(), strict=False)
        ltm.eval()
    x = torch.randn(1, 3, 64, 64)  # maps 8, 4, 2 -> patch grids 4, 2, 1
    grids = ((2, (4, 4)), (3, (2, 2)), (4, (1, 1)))
    with torch.no_grad():
        ref = base(x)
        for i, grid in grids:
            base.layers[i][1].global_rep = DenseGlobalRep(ltm.layers[i][1].global_rep, grid)
        dense, out = base(x), ltm(x)
    # layers 2 and 3 merge, layer 4's 1x1 grid cannot
    assert [ltm.layers[i][1].global_rep[0].token_merger.is_identity(g)
            for i, g in grids] == [False, False, True]
    torch.testing.assert_close(out[0], ref[0], atol=0, rtol=0)  # layer 1: no transformer
    for o, d in zip(out, dense):
        torch.testing.assert_close(o, d, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(out[1], ref[1], atol=1e-3)


def test_global_rep_needs_its_block():
    _, ltm = _pair(0.5)
    rep = ltm.layers[2][1].global_rep
    with pytest.raises(RuntimeError, match='patch grid'):
        rep(torch.randn(4, 16, 64))


@pytest.mark.parametrize('bad', [0, -1, 1.5, float('inf'), False, 'x'])
def test_bad_compression_ratio_raises(bad):
    with pytest.raises(ValueError, match='compression_ratio'):
        LTMMobileViT(arch='xx_small', compression_ratio=bad)


def test_default_ratio():
    assert LTMMobileViT(arch='x_small').compression_ratio == 0.5
    assert LTMMobileViT(arch='small').compression_ratio == 0.5


def test_gradients_reach_every_log_step():
    _, ltm = _pair(0.5)
    ltm.train()
    out = ltm(torch.randn(2, 3, 96, 96))[0]  # patch grids 6x6, 3x3, 2x2
    (out ** 2).mean().backward()
    for i, merger in enumerate(ltm.token_mergers):
        assert merger.log_step.grad is not None and merger.log_step.grad != 0, i


def test_frozen_stages_freeze_token_mergers():
    ltm = LTMMobileViT(arch='xx_small', compression_ratio=0.5,
                       frozen_stages=3)
    ltm.train()  # MobileViT freezes layers[0:frozen_stages] in train()

    def log_steps(i):
        return [layer.token_merger.log_step
                for layer in list(ltm.layers[i][1].global_rep)[:-1]]

    assert not any(p.requires_grad for p in log_steps(2))
    assert all(p.requires_grad for p in log_steps(4))


@pytest.mark.parametrize('arch,paper,paper_ltm', [('x_small', 0.7, 0.52),
                                                   ('small', 1.4, 1.17)])
def test_flops(arch, paper, paper_ltm):
    """At 224x224 the baseline is within 5% of the paper; the default ratio
    reduces FLOPs through the FFNs only (measured ~0.90-0.92x; the paper's
    0.74x / 0.84x are out of reach with FFN-only merging, see the module
    docstring)."""
    base, _ = _classifier_gflops(arch, 1.0)
    ltm, analyzer = _classifier_gflops(arch, None)
    assert abs(base / paper - 1) < 0.05, base
    assert 0.88 < ltm / base < 0.93, (ltm, base)
    assert ltm / base > paper_ltm / paper  # honest: not the paper's ratio
    # the counter sees the FFN of the first transformer layer on N' tokens
    # per sequence: 28x28 map -> 14x14 patch grid, 4 sequences per image
    dim, ffn_dim = {'x_small': (96, 192), 'small': (144, 288)}[arch]
    hh, ww = plan_merge_grid(14, 14, 0.5)
    key = 'backbone.layers.2.1.global_rep.0.ffn'
    assert analyzer.by_module()[key] == 4 * hh * ww * 2 * dim * ffn_dim


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
            backbone=dict(type='LTMMobileViT', arch='xx_small',
                          compression_ratio=0.5),
            neck=dict(type='GlobalAveragePooling'),
            head=dict(type='LinearClsHead', num_classes=4, in_channels=320)))
    model.init_weights()
    optim = build_optim_wrapper(model, dict(optimizer=dict(type='AdamW',
                                                           lr=1e-3)))
    data = dict(
        inputs=[torch.randint(0, 255, (3, 96, 96), dtype=torch.uint8)
                for _ in range(2)],
        data_samples=[DataSample().set_gt_label(i) for i in range(2)])
    before = [m.log_step.item() for m in model.backbone.token_mergers]
    losses = model.train_step(data, optim)
    assert math.isfinite(losses['loss'].item())
    after = [m.log_step.item() for m in model.backbone.token_mergers]
    assert all(b != a for b, a in zip(before, after)), after


def test_tome_merge_mode():
    torch.manual_seed(0)
    tome = LTMMobileViT(arch='xx_small', compression_ratio=0.5,
                        merge_mode='tome')
    tome.eval()
    with torch.no_grad():
        out = tome(torch.randn(1, 3, 96, 96))[0]
    assert out.shape == (1, 320, 3, 3)
    assert not any('token_merger' in n for n, _ in tome.named_parameters())
    with pytest.raises(ValueError, match='merge_mode'):
        LTMMobileViT(arch='xx_small', merge_mode='none')


def test_imagenet_configs():
    from mmengine.config import Config
    from test_ltm_vit import IB_KEYS, _cfg, config_diff
    for arch, name in (('small', 'mobilevit_s'), ('x_small', 'mobilevit_xs')):
        ltm, base = f'ltm_{name}_4xb64_in1k', f'{name}_4xb64_in1k'
        assert config_diff(_cfg(ltm), _cfg(base)) <= IB_KEYS
        cfg = Config.fromfile(_cfg(ltm))
        assert cfg.model.backbone.arch == arch
        assert cfg.model.backbone.compression_ratio == 0.5
        assert cfg.train_cfg.max_epochs == 300  # the LTM README recipe
        assert cfg.optim_wrapper.optimizer.lr == 2e-4
