"""Mask-module parameters of every LTM backbone are DDP-safe by
construction: none where the ratio is 1, and a gradient for every trainable
parameter also when a block's grid is too small to merge (the condition
``DistributedDataParallel(find_unused_parameters=False)`` needs; the
2-process run is tests/test_engine/test_ddp_ltm.py)."""
import pytest
import torch

from mmltm.registry import MODELS

SMALL = {
    'LTMSwinTransformer': dict(embed_dims=16, depths=(1, 1, 1, 1), num_heads=(1, 2, 2, 4),
                               drop_path_rate=0.),
    'LTMVisionTransformer': dict(arch=dict(embed_dims=16, num_layers=2, num_heads=2,
                                           feedforward_channels=32),
                                 img_size=32, patch_size=8, out_type='raw'),
    'LTMMobileViT': dict(arch='xx_small'),
    'LTMEfficientViT': dict(arch='b0'),
}
# inputs on which at least one block cannot reduce its grid at ratio 0.7:
# Swin stage 4 is 2x2; ViT's grid 1x2; MobileViT's patch grids are 3x3,
# 2x2, 1x1; EfficientViT's stage 4 2x2
INPUTS = {'LTMSwinTransformer': (64, 64), 'LTMVisionTransformer': (8, 16),
          'LTMMobileViT': (48, 48), 'LTMEfficientViT': (64, 64)}


@pytest.mark.parametrize('type_', list(SMALL))
def test_ratio_one_has_no_mask_parameters(type_):
    model = MODELS.build(dict(type=type_, compression_ratio=1.0, **SMALL[type_]))
    assert model.token_mergers
    assert [n for n, _ in model.named_parameters() if 'token_merger' in n] == []


@pytest.mark.parametrize('type_', list(SMALL))
def test_every_parameter_gets_a_gradient_when_a_block_does_not_merge(type_):
    torch.manual_seed(0)
    model = MODELS.build(dict(type=type_, compression_ratio=0.7, **SMALL[type_]))
    model.train()
    model.record_merge_masks(True)
    outs = model(torch.randn(2, 3, *INPUTS[type_]))
    sum(o.float().square().mean() for o in outs).backward()
    masks = sum(model.last_merge_masks, [])
    assert None in masks, 'the input should leave a block unmerged'
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert missing == []
    # the blocks that did not merge: mask parameters with an exact zero gradient
    idle = [p for m, merger in zip(masks, model.token_mergers) if m is None
            for p in merger.parameters()]
    assert idle and all(not p.grad.any() for p in idle)


def test_without_the_tie_the_idle_mask_parameters_get_no_gradient(monkeypatch):
    """What DDP would trip over: the tie is what gives them a gradient."""
    from mmltm.models.layers import ltm_block
    monkeypatch.setattr(ltm_block, 'tie_unused_parameters', lambda out, module: out)
    torch.manual_seed(0)
    model = MODELS.build(dict(type='LTMSwinTransformer', compression_ratio=0.7,
                              **SMALL['LTMSwinTransformer']))
    model.train()
    sum(o.square().mean() for o in model(torch.randn(2, 3, 64, 64))).backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert missing and all(n.startswith('stages.3.') and '.token_merger.' in n for n in missing)
