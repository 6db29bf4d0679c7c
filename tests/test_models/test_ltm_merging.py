"""The learned mask module inside every LTM backbone at its defaults
(issue 12): which merged token a token joins depends on the image, already
with random initial weights, and the mask parameters learn from the loss."""
import pytest
import torch
import torch.nn.functional as F

import mmltm  # noqa: F401  (registers the backbones)
from mmltm.analysis.merging_stats import calibrate_batch_norm
from mmltm.registry import MODELS

#: the share of tokens whose largest G entry must point to a different merged
#: token for two different images, in every merging block (issue 12)
MIN_DIFFERENT = 0.10


def smooth_images(n: int, size: int) -> torch.Tensor:
    """Random images with structure at every scale (a random 8 x 8 layout
    upsampled, plus smoothed pixel noise), as natural images have: tokens
    differ from their neighbours at every stage, so similarity means
    something down to the last stage's small map."""
    layout = F.interpolate(torch.randn(n, 3, 8, 8), size=(size, size), mode='bilinear',
                           align_corners=False)
    detail = F.avg_pool2d(torch.randn(n, 3, size + 8, size + 8), 9, 1)
    return layout + detail


def different_assignment(mask) -> float:
    """Share of tokens that join different merged tokens in image 0 and 1
    (MobileViT's masks hold P sequences per image, image-major)."""
    a = mask.assign.reshape(2, -1)
    return (a[0] != a[1]).float().mean().item()


def merging_masks(model, images):
    model.record_merge_masks(True)
    with torch.no_grad():
        model(images)
    return [m for stage in model.last_merge_masks for m in stage if m is not None]


@pytest.mark.parametrize('backbone,size', [('LTMSwinTransformer', 224),
                                           ('LTMVisionTransformer', 224),
                                           ('LTMMobileViT', 256),
                                           ('LTMEfficientViT', 224)])
def test_assignment_depends_on_the_image_in_every_merging_block(backbone, size):
    torch.manual_seed(0)
    model = MODELS.build(dict(type=backbone))  # the documented defaults
    assert model.merge_mode == 'ltm'
    assert model.eval() is model and model.train() is model  # chaining works
    images = smooth_images(2, size)
    # random weights with the BatchNorm statistics of the data (MobileViT,
    # EfficientViT), as after the first steps of training: the initial
    # statistics wash the image out of late stages (see the next test)
    calibrate_batch_norm(model, images)
    model.eval()
    masks = merging_masks(model, images)
    assert len(masks) >= 7  # every transformer block of these archs merges
    shares = [different_assignment(m) for m in masks]
    assert min(shares) >= MIN_DIFFERENT, shares
    # the fixed grid never changes its cells
    model = MODELS.build(dict(type=backbone, merge_mode='grid')).eval()
    masks = merging_masks(model, smooth_images(2, size))
    assert all(m.assign.dim() == 1 for m in masks)


def test_initial_batch_norm_statistics_hide_the_image_from_mobilevit_last_stage():
    """Why the test above calibrates BatchNorm: with its initial running
    statistics (mean 0, variance 1) random-weight MobileViT's last stage
    (2x2-patch sequences of a 4x4 token grid, merged to 2x4) sees nearly the
    same tokens for any image, so no similarity-driven mask can tell the
    images apart there; the data's statistics alone (no weight changed)
    bring the image back."""
    from mmpretrain.models.backbones.mobilevit import MobileVitBlock
    torch.manual_seed(0)
    model = MODELS.build(dict(type='LTMMobileViT')).eval()
    images = smooth_images(2, 256)
    weights = {k: v.clone() for k, v in model.state_dict().items() if 'running' not in k}
    # the input map of the last MobileVitBlock, image 1 against image 0
    last_block = [m for m in model.modules() if isinstance(m, MobileVitBlock)][-1]
    inputs = []
    hook = last_block.register_forward_pre_hook(lambda mod, args: inputs.append(args[0]))

    def image_difference() -> float:
        x = inputs.pop()
        return ((x[1] - x[0]).norm() / x[0].norm()).item()

    raw = [different_assignment(m) for m in merging_masks(model, images)]
    assert image_difference() < 0.01  # the image is (nearly) gone
    assert calibrate_batch_norm(model, images) > 0
    inputs.clear()
    assert not model.training  # the mode is restored
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in weights.items()
               if 'num_batches_tracked' not in k)
    masks = merging_masks(model, images)
    calibrated = [different_assignment(m) for m in masks]
    assert image_difference() > 0.5
    hook.remove()
    last = [i for i, m in enumerate(masks) if tuple(m.grid) == (4, 4)]
    assert len(last) == 3  # the last MobileVitBlock's three transformer layers
    assert max(raw[i] for i in last) < MIN_DIFFERENT, raw
    assert min(calibrated[i] for i in last) >= 2 * MIN_DIFFERENT, calibrated


def test_mask_parameters_learn_from_the_task_loss_and_stay_small():
    torch.manual_seed(0)
    model = MODELS.build(dict(type='LTMSwinTransformer', embed_dims=32, depths=(2, 2),
                              num_heads=(2, 4), out_indices=(1, ), strides=(4, 2)))
    x = smooth_images(2, 64)
    target = torch.tensor([0, 1])
    logits = model(x)[0].mean((2, 3))[:, :2]
    F.cross_entropy(logits, target).backward()
    for name, p in model.named_parameters():
        if 'token_merger' in name:
            assert p.grad is not None and p.grad.abs().sum() > 0, name
    # Swin-T and Swin-B at their defaults: <= 0.1 M mask parameters, > 1 per block
    for arch in ('tiny', 'base'):
        m = MODELS.build(dict(type='LTMSwinTransformer', arch=arch))
        counts = [sum(p.numel() for p in t.parameters()) for t in m.token_mergers]
        assert min(counts) > 1 and sum(counts) <= 100_000, (arch, sum(counts))
