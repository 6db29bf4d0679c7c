"""mmltm.models.layers: the LTM block pieces every backbone shares.

Also home of the dense-G reference of an LTM block that the backbone tests
use: ``out = Z + Ĝ · FFN(LN(Gᵀ Z))`` with ``G = MergeMask.dense()`` and
plain matmuls.
"""
import pytest
import torch
import torch.nn as nn
from mmcv.cnn.bricks.transformer import FFN

from mmltm.models.layers import (NOT_RECORDED, LTMBackboneMixin, LTMBlockMixin,
                                 ffn_residual_branch, match_preset, reclass,
                                 tie_unused_parameters, token_merger_factory)
from mmltm.ops import build_token_merger
from mmltm.ops.tome import ToMeMerger


def _ltm(ratio, **kwargs):
    """The 'ltm' mask module of an 8-channel block."""
    return build_token_merger('ltm', ratio, dims=8, **kwargs)


def dense_merge(z, mask):
    """``Gᵀ Z``: ``(B, N, C)`` -> ``(B, N', C)`` with the dense G."""
    return mask.dense().transpose(1, 2) @ z


def dense_unmerge(delta, mask):
    """``Ĝ D`` with Ĝ the row-normalised G: ``(B, N', C)`` -> ``(B, N, C)``."""
    g = mask.dense()
    return (g / g.sum(-1, keepdim=True)) @ delta


def dense_ltm_reference(z, mask, branch):
    """``Z + Ĝ · branch(Gᵀ Z)``: one LTM block's FFN step by plain matmuls."""
    return z + dense_unmerge(branch(dense_merge(z, mask)), mask)


def dense_encoder_layer(layer, x, hw, prev=None, num_extra=0):
    """mmpretrain ``TransformerEncoderLayer`` as an LTM block, by plain
    matmuls (the extra tokens go through the FFN unmerged)."""
    z = x + layer.attn(layer.ln1(x))
    if layer.token_merger.is_identity(hw):
        return z + layer.ffn.layers(layer.ln2(z)), None
    extra, patches = z[:, :num_extra], z[:, num_extra:]
    mask, _ = layer.token_merger.merge(patches, hw, prev)
    d = layer.ffn.layers(layer.ln2(torch.cat([extra, dense_merge(patches, mask)], 1)))
    return torch.cat([extra + d[:, :num_extra],
                      patches + dense_unmerge(d[:, num_extra:], mask)], 1), mask


def test_ffn_residual_branch_is_the_ffn_without_its_identity():
    torch.manual_seed(0)
    ffn = FFN(embed_dims=8, feedforward_channels=16, layer_scale_init_value=0.5).eval()
    x = torch.randn(2, 5, 8)
    torch.testing.assert_close(ffn_residual_branch(ffn, x), ffn(x) - x, atol=1e-6, rtol=0)

    class IdentityFFN(nn.Module):  # takes an explicit identity (SwiGLU-like)

        def forward(self, x, identity=None):
            return identity + 2 * x

    torch.testing.assert_close(ffn_residual_branch(IdentityFFN(), x), 2 * x)


class _Base(nn.Module):

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(2, 2)


class _LTM(LTMBlockMixin, _Base):
    pass


def test_reclass_keeps_parameters_and_refuses_other_classes():
    base = _Base()
    keys = set(base.state_dict())
    merger = _ltm(0.5)
    block = _LTM.from_block(base, merger)
    assert block is base and type(block) is _LTM and block.token_merger is merger
    assert set(block.state_dict()) == keys | {f'token_merger.{k}' for k in merger.state_dict()}
    with pytest.raises(TypeError, match='cannot turn a _LTM into a _LTM'):
        _LTM.from_block(block, merger)  # twice
    with pytest.raises(TypeError, match='cannot turn a Linear into a _LTM'):
        reclass(nn.Linear(2, 2), _LTM)


def test_tie_unused_parameters_is_an_exact_zero_with_a_zero_gradient():
    merger = _ltm(0.5, init_step=2.0)
    params = list(merger.parameters())
    assert params
    out = torch.randn(3, 4, requires_grad=True)
    tied = tie_unused_parameters(out, merger)
    assert torch.equal(tied, out) and tied is not out
    tied.sum().backward()
    assert all(p.grad is not None and not p.grad.any() for p in params)
    # nothing to tie: eval mode, no grad, frozen or no parameters
    assert tie_unused_parameters(out, merger.eval()) is out
    merger.train()
    with torch.no_grad():
        assert tie_unused_parameters(out, merger) is out
    for p in params:
        p.requires_grad_(False)
    assert tie_unused_parameters(out, merger) is out
    assert tie_unused_parameters(out, _ltm(1.0)) is out  # no parameters at ratio 1
    assert tie_unused_parameters(out, ToMeMerger(0.5)) is out


def test_tie_keeps_the_dtype_under_autocast():
    merger = _ltm(0.5)
    out = torch.randn(2, 3).to(torch.bfloat16)
    assert tie_unused_parameters(out, merger).dtype == torch.bfloat16


def test_block_output_ties_and_records():
    block = _LTM.from_block(_Base(), _ltm(0.5))
    out = torch.ones(2, 2)
    assert block.last_mask is NOT_RECORDED
    y, mask = block.block_output(out, None)
    assert mask is None and torch.equal(y, out) and y.grad_fn is not None
    assert block.last_mask is NOT_RECORDED  # not recording
    block.record_mask = True
    block.block_output(out, None)
    assert block.last_mask is None


def test_factory_builds_each_mode_with_its_arguments():
    make = token_merger_factory('ltm', 0.5, options=dict(init_step=2.0),
                                context=dict(window_size=7), probe_dims=8)
    merger = make(8)
    assert type(merger) is type(_ltm(0.5)) and merger.compression_ratio == 0.5
    assert float(merger.log_step) == float(_ltm(0.5, init_step=2.0).log_step)
    assert make(8) is not merger  # one module per block
    tome = token_merger_factory('tome', 0.25, context=dict(window_size=7))(16)
    assert isinstance(tome, ToMeMerger) and tome.window_size == 7
    # merger_cfg overrides the context: global matching in Swin
    tome = token_merger_factory('tome', 0.25, dict(window_size=None),
                                context=dict(window_size=7))(16)
    assert tome.window_size is None
    fixed = token_merger_factory('ltm', 0.5, dict(learnable_step=False), probe_dims=8)(8)
    assert 'log_step' in dict(fixed.named_buffers())


@pytest.mark.parametrize('args,error,match', [
    (dict(merge_mode='fast'), ValueError, r"merge_mode='fast' is not supported; allowed"),
    (dict(compression_ratio=0.0), ValueError, r'compression_ratio=0.0 is not allowed'),
    (dict(merger_cfg=[1]), TypeError, r'merger_cfg=\[1\] must be a dict'),
    (dict(merger_cfg=dict(dims=4)), ValueError, r"may not set \['dims'\]"),
    (dict(merger_cfg=dict(compression_ratio=0.3)), ValueError, r"may not set \['compression_ratio'\]"),
    (dict(merger_cfg=dict(init_step=2.0), options=dict(init_step=3.0)), ValueError,
     r'init_step is given twice'),
    (dict(merge_mode='tome', options=dict(init_step=2.0)), ValueError,
     r"init_step=2.0 does not apply to merge_mode='tome' \(its mask module takes \['window_size'\]\)"),
    (dict(merger_cfg=dict(temperature=1.0)), TypeError,
     r"merge_mode='ltm' with merger_cfg=\{'temperature': 1.0\}: .*temperature"),
    (dict(options=dict(init_step=31.0)), ValueError, r'init_step=31.0 is not allowed'),
])
def test_factory_errors_name_the_value(args, error, match):
    kwargs = {**dict(merge_mode='ltm', compression_ratio=0.5, probe_dims=8), **args}
    with pytest.raises(error, match=match):
        token_merger_factory(**kwargs)


def test_match_preset_compares_sizes_not_names():
    presets = {'t': dict(dims=96, depths=(2, 2)), 'b': dict(dims=128, depths=(2, 18)),
               'b2': dict(dims=128, depths=(2, 18))}
    assert match_preset(dict(dims=128, depths=[2, 18]), presets) == 'b'  # list == tuple
    assert match_preset(dict(dims=128, depths=(2, 18)), presets, prefer='b2') == 'b2'
    assert match_preset(dict(dims=128, depths=(2, 18), extra=1), presets) == 'b'
    assert match_preset(dict(dims=64, depths=(2, 2)), presets) is None
    # the preferred name is reported only if its sizes match
    assert match_preset(dict(dims=96, depths=(2, 2)), presets, prefer='b') == 't'
    # layer lists (MobileViT's arch)
    lists = {'xs': [['a', 1, [2, 3]]], 's': [['a', 2, [2, 3]]]}
    assert match_preset([('a', 2, (2, 3))], lists) == 's'


class _Backbone(LTMBackboneMixin, nn.Module):
    default_compression_ratios = {'big': 0.6}
    fallback_compression_ratio = 0.8

    def __init__(self):
        super().__init__()
        self.blocks = nn.ModuleList(_LTM.from_block(_Base(), _ltm(0.5))
                                    for _ in range(3))

    def ltm_stages(self):
        return [list(self.blocks[:2]), [], [self.blocks[2]]]

    def forward(self, x):
        for i, block in enumerate(self.blocks):
            x, _ = block.block_output(x, None if i else 'mask-0')
        return x


def test_backbone_mixin_masks_per_stage_and_default_ratios():
    model = _Backbone()
    assert model.token_mergers == [b.token_merger for b in model.blocks]
    with pytest.raises(RuntimeError, match='recording is off'):
        model.last_merge_masks
    model.record_merge_masks(True)
    with pytest.raises(RuntimeError, match='no forward since record_merge_masks'):
        model.last_merge_masks
    model(torch.zeros(1))
    assert model.last_merge_masks == [['mask-0', None], [], [None]]
    model.record_merge_masks(False)
    assert all(b.last_mask is NOT_RECORDED for b in model.blocks)
    assert _Backbone.resolve_compression_ratio(None, 'big') == 0.6
    assert _Backbone.resolve_compression_ratio(None, None) == 0.8
    assert _Backbone.resolve_compression_ratio(0.3, 'big') == 0.3
    with pytest.raises(ValueError, match='compression_ratio=2'):
        _Backbone.resolve_compression_ratio(2, 'big')
