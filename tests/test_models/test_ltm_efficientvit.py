"""EfficientViT and LTM-EfficientViT: the published B0-B3 sizes, linear
attention, equivalence at ratio 1, MBConv on the merged map, FLOPs,
gradients, errors and a train step."""
import math

import pytest
import torch
import torch.nn.functional as F
from mmengine.analysis import FlopAnalyzer
from mmpretrain.models.necks import LinearNeck
from test_layers import dense_merge, dense_unmerge

from mmltm.models.backbones import EfficientViT, LTMEfficientViT
from mmltm.models.backbones.efficientvit import LiteMLA
from mmltm.models.backbones.ltm_efficientvit import (LTMEfficientViTBlock,
                                                     map_to_tokens,
                                                     tokens_to_map)
from mmltm.models.utils import is_token_merger_key
from mmltm.ops import plan_merge_grid
from mmltm.registry import registered_in

ALL = (0, 1, 2, 3, 4)


def _pair(ratio, arch='b0', **kw):
    torch.manual_seed(0)
    base = EfficientViT(arch=arch, **kw)  # PyTorch's default init: quicker
    ltm = LTMEfficientViT(arch=arch, compression_ratio=ratio, **kw)
    result = ltm.load_state_dict(base.state_dict(), strict=False)
    assert not result.unexpected_keys
    assert result.missing_keys and all(map(is_token_merger_key,
                                           result.missing_keys))
    base.eval()
    ltm.eval()
    return base, ltm


class _Classifier(torch.nn.Module):
    """Cai et al.'s classifier: backbone (+1x1 conv), pooled Linear + LN +
    Hardswish, Linear (the layout of the ImageNet configs)."""

    def __init__(self, arch, ratio, widths=(1536, 1600)):
        super().__init__()
        self.backbone = LTMEfficientViT(arch=arch, compression_ratio=ratio,
                                        head_channels=widths[0])
        self.neck = LinearNeck(widths[0], widths[1], gap_dim=2,
                               norm_cfg=dict(type='LN'),
                               act_cfg=dict(type='HSwish'))
        self.fc = torch.nn.Linear(widths[1], 1000)

    def forward(self, x):
        return self.fc(self.neck(self.backbone(x))[0])


def _count(model, size):
    model.eval()
    with torch.no_grad():
        analyzer = FlopAnalyzer(model, (torch.randn(1, 3, size, size), ))
        analyzer.unsupported_ops_warnings(False)
        analyzer.uncalled_modules_warnings(False)
        flops = analyzer.total() / 1e9
    params = sum(p.numel() for p in model.parameters()) / 1e6
    return params, flops, analyzer


def test_registered_in_every_library():
    for name in ('EfficientViT', 'LTMEfficientViT'):
        assert set(registered_in(name)) == {'mmltm', 'mmpretrain', 'mmdet',
                                            'mmseg'}


def test_litemla_is_relu_linear_attention():
    """Against a direct (quadratic) evaluation of one head."""
    torch.manual_seed(0)
    att = LiteMLA(32, 32, head_dim=16, scales=()).eval()
    x = torch.randn(2, 32, 5, 7)
    qkv = att.qkv(x).reshape(2, 2, 48, 35)  # 2 heads of q, k, v
    q, k, v = F.relu(qkv[:, :, :16]), F.relu(qkv[:, :, 16:32]), qkv[:, :, 32:]
    weights = torch.einsum('bhdi,bhdj->bhij', q, k)  # (query i, key j)
    ref = torch.einsum('bhij,bhdj->bhdi', weights, v) / (
        weights.sum(-1).unsqueeze(2) + att.eps)
    ref = att.proj(ref.reshape(2, 32, 5, 7))
    with torch.no_grad():
        torch.testing.assert_close(att(x), ref, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize('arch,paper_params,paper_gmacs', [
    ('b0', 3.4, 0.1), ('b1', 9.1, 0.52), ('b2', 24.0, 1.6)
])
def test_published_sizes(arch, paper_params, paper_gmacs):
    """Cai et al.'s r224 classifiers: params and MACs within 5% (B0's 0.1 G
    is rounded, so within 10%). B3 (49 M, 3.9 G; we count 48.6 M, 3.99 G)
    is left out for time."""
    widths = {'b0': (1024, 1280), 'b1': (1536, 1600), 'b2': (2304, 2560),
              'b3': (2304, 2560)}[arch]
    params, gmacs, _ = _count(_Classifier(arch, 1.0, widths), 224)
    assert abs(params / paper_params - 1) < 0.05, params
    assert abs(gmacs / paper_gmacs - 1) < (0.1 if arch == 'b0' else 0.05), gmacs


def test_stage_shapes_and_errors():
    model = EfficientViT(arch='b1', out_indices=ALL).eval()
    with torch.no_grad():
        outs = model(torch.randn(1, 3, 96, 160))
    assert [tuple(o.shape) for o in outs] == [
        (1, 16, 48, 80), (1, 32, 24, 40), (1, 64, 12, 20), (1, 128, 6, 10),
        (1, 256, 3, 5)]
    with pytest.raises(ValueError, match='arch'):
        EfficientViT(arch='b9')
    with pytest.raises(ValueError, match='out_indices'):
        EfficientViT(out_indices=(5, ))


def test_ratio_one_equals_efficientvit():
    base, ltm = _pair(1.0, arch='b1', out_indices=ALL)
    x = torch.randn(2, 3, 96, 128)
    with torch.no_grad():
        for r, o in zip(base(x), ltm(x)):
            torch.testing.assert_close(o, r, atol=1e-4, rtol=0)


def test_state_dict_keys_are_base_keys_plus_merger_keys():
    base, ltm = _pair(0.5, arch='b1')
    extra = set(ltm.state_dict()) - set(base.state_dict())
    assert set(base.state_dict()) <= set(ltm.state_dict())
    # B1: 3 and 4 EfficientViT blocks after the stride-2 MBConv of stages 3/4
    assert extra == ({f'stages.3.{j}.token_merger.log_step'
                      for j in (1, 2, 3)} |
                     {f'stages.4.{j}.token_merger.log_step'
                      for j in (1, 2, 3, 4)})
    assert sum(p.numel() for n, p in ltm.named_parameters()
               if 'token_merger' in n) == 7


def dense_block(block, x, prev):
    """One LTM-EfficientViT block by plain matmuls: attention at full size,
    the MBConv on the merged map ``Gᵀ Z`` (h' x w'), unmerged by Ĝ."""
    z = x + block.attn(x)
    hw = tuple(z.shape[2:])
    tokens = map_to_tokens(z)
    mask, _ = block.token_merger.merge(tokens, hw, prev)
    merged = tokens_to_map(dense_merge(tokens, mask), mask.merged_grid)
    delta = map_to_tokens(block.ffn(merged))
    return z + tokens_to_map(dense_unmerge(delta, mask), hw), mask


def test_mbconv_runs_on_the_merged_map():
    """The blocks of stage 3 equal the dense reference, masks chained."""
    _, ltm = _pair(0.5, arch='b0')
    blocks = list(ltm.stages[3])[1:]
    assert all(isinstance(b, LTMEfficientViTBlock) for b in blocks)
    x = torch.randn(2, 64, 8, 6)
    out, ref, mask, ref_mask = x, x, None, None
    with torch.no_grad():
        for block in blocks:
            out, mask = block(out, mask)
            ref, ref_mask = dense_block(block, ref, ref_mask)
            torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    hh, ww = plan_merge_grid(8, 6, 0.5)
    assert mask.merged_grid == (hh, ww) and hh * ww < 48
    # columns of G sum to 1: every merged position is a convex combination
    torch.testing.assert_close(mask.dense().sum(1), torch.ones(2, hh * ww))


def test_merging_shapes_and_masks():
    _, ltm = _pair(0.5, arch='b1', out_indices=ALL)
    ltm.record_merge_masks()
    x = torch.randn(2, 3, 128, 96)
    with torch.no_grad():
        outs = ltm(x)
    assert [o.shape[-2:] for o in outs] == [(64, 48), (32, 24), (16, 12),
                                            (8, 6), (4, 3)]
    masks = ltm.last_merge_masks
    assert [len(m) for m in masks] == [0, 0, 0, 3, 4]
    assert all(m.grid == (8, 6) for m in masks[3])
    assert all(m.grid == (4, 3) for m in masks[4])


@pytest.mark.parametrize('bad', [0, -0.1, 1.2, float('nan'), True, [0.5]])
def test_bad_compression_ratio_raises(bad):
    with pytest.raises(ValueError, match='compression_ratio'):
        LTMEfficientViT(arch='b0', compression_ratio=bad)


def test_default_ratio():
    assert LTMEfficientViT(arch='b1').compression_ratio == 0.55
    assert LTMEfficientViT.arch_zoo['b1']['compression_ratio'] == 0.55


def test_gradients_reach_every_log_step():
    _, ltm = _pair(0.5, arch='b0')
    ltm.train()
    out = ltm(torch.randn(2, 3, 128, 128))[0]
    (out ** 2).mean().backward()
    for i, merger in enumerate(ltm.token_mergers):
        assert merger.log_step.grad is not None and merger.log_step.grad != 0, i


@pytest.mark.parametrize('size,ratio,paper,paper_ltm', [
    (224, None, 0.52, 0.44), (288, 0.45, 0.86, 0.70)])
def test_b1_flops(size, ratio, paper, paper_ltm):
    """Baseline within 5% of the paper; the r224 default (0.55) and the r288
    configs' 0.45 within 0.015 of the paper's LTM/baseline FLOP ratio."""
    _, base, _ = _count(_Classifier('b1', 1.0), size)
    clf = _Classifier('b1', ratio)
    _, ltm, analyzer = _count(clf, size)
    assert abs(base / paper - 1) < 0.05, base
    assert abs(ltm / base - paper_ltm / paper) < 0.015, (ltm, base)
    # the counter sees the MBConv of a stage-4 block on the h' x w' map
    s = size // 32
    hh, ww = plan_merge_grid(s, s, clf.backbone.compression_ratio)
    key = 'backbone.stages.4.1.ffn.point_conv.conv'
    assert analyzer.by_module()[key] == hh * ww * 1024 * 256


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
            backbone=dict(type='LTMEfficientViT', arch='b0',
                          compression_ratio=0.5, head_channels=64),
            neck=dict(type='LinearNeck', in_channels=64, out_channels=32,
                      gap_dim=2, norm_cfg=dict(type='LN'),
                      act_cfg=dict(type='HSwish')),
            head=dict(type='LinearClsHead', num_classes=4, in_channels=32)))
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


def test_tome_is_refused_with_a_reason():
    with pytest.raises(ValueError, match="merge_mode='tome'.*2-D grid"):
        LTMEfficientViT(arch='b0', merge_mode='tome')


def test_configs():
    from mmengine.config import Config
    from test_ltm_vit import (DENSE_LTM_KEYS, IB_KEYS, TOY_LTM_KEYS, _cfg,
                              config_diff)
    for ltm, base, ratio in (
            ('ltm_efficientvit_b1_4xb64_in1k', 'efficientvit_b1_4xb64_in1k',
             0.55),
            ('ltm_efficientvit_b1_r288_4xb64_in1k',
             'efficientvit_b1_r288_4xb64_in1k', 0.45)):
        assert config_diff(_cfg(ltm), _cfg(base)) <= IB_KEYS
        assert Config.fromfile(_cfg(ltm)).model.backbone.compression_ratio \
            == ratio
    assert config_diff(_cfg('segformerhead_ltm_efficientvit_b1_ade20k'),
                       _cfg('segformerhead_efficientvit_b1_ade20k')) == \
        DENSE_LTM_KEYS
    assert config_diff(_cfg('toy/segformerhead_ltm_efficientvit_b1_toy'),
                       _cfg('toy/segformerhead_efficientvit_b1_toy')) == \
        TOY_LTM_KEYS
