"""How image-dependent a backbone's merging is: figures per merging block.

For a batch of two images, :func:`assignment_stats` runs an LTM backbone
with its masks recorded and reports, for every block that merged:

* ``changed``: the share of tokens whose merged token (their largest entry
  in G) differs between image 0 and image 1: 0 for any image-independent
  mask (the fixed grid), the figure issue 12 asks to be >= 10 %;
* ``crossed``: the share of tokens (both images) that joined a merged token
  other than their fixed grid cell's, i.e. the tokens a learned mask moved
  across the old cell borders (0 for ``merge_mode='grid'``; None for masks
  without a grid plan, e.g. ToMe's).

MobileViT's masks hold P patch sequences per image, image-major; the shares
are over all of them.

Random weights need one more step where the backbone has BatchNorm
(MobileViT, EfficientViT): at initialisation its running statistics are
mean 0 / variance 1, not the data's, and in eval mode the convolution stack
then washes the image out of the late stages: for LTM-MobileViT-S at
256x256 the input maps of its last MobileViT block differ between two
images by under 1 % of their norm, so its masks cannot tell the images
apart (tested in ``tests/test_models/test_ltm_merging.py``; the toy XS
config with ``merging_stats.py ... none``: 0.0 / 0.0 / 3.1 % of the last
stage's assignments differ, with ``--calibrate-bn`` 34-41 % in all nine
blocks, README). :func:`calibrate_batch_norm` gives a randomly initialised
model the statistics of the images it is shown, as the first steps of any
training would.
"""
from typing import Dict, List, Optional

import torch
import torch.nn as nn

from .visualization import recorded_merge_masks

__all__ = ['assignment_stats', 'batch_norm_layers', 'calibrate_batch_norm',
           'format_assignment_stats']


def _share(flags: torch.Tensor) -> float:
    return flags.float().mean().item()


def batch_norm_layers(module: nn.Module) -> List[nn.Module]:
    """The BatchNorm layers of ``module`` (any dimension, SyncBN too)."""
    return [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def calibrate_batch_norm(module: nn.Module, inputs: torch.Tensor, passes: int = 1) -> int:
    """Re-estimate the running statistics of every BatchNorm layer of
    ``module`` from ``inputs`` (no weight changes); returns how many layers
    that was (0: nothing to do).

    The statistics are reset and replaced by their average over ``passes``
    train-mode forward passes of ``inputs`` without gradients; each layer's
    momentum and the module's train / eval mode are restored afterwards.
    """
    if isinstance(passes, bool) or not isinstance(passes, int) or passes < 1:
        raise ValueError(f'passes={passes!r} is not allowed: a positive int')
    norms = batch_norm_layers(module)
    if not norms:
        return 0
    momenta = [m.momentum for m in norms]
    was_training = module.training
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average over the passes
    module.train()
    try:
        with torch.no_grad():
            for _ in range(passes):
                module(inputs)
    finally:
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
        module.train(was_training)
    return len(norms)


def assignment_stats(backbone: nn.Module, inputs: torch.Tensor) -> List[Dict]:
    """Per merging block of ``backbone``: ``stage``, ``block``, ``grid``,
    ``merged_grid``, ``changed`` and ``crossed`` (see the module docstring).

    Args:
        backbone: an LTM backbone (it is put in eval mode).
        inputs: a pre-processed batch of exactly two images ``(2, 3, H, W)``.

    Raises:
        ValueError: when ``inputs`` does not hold two images.
    """
    if inputs.dim() != 4 or inputs.shape[0] != 2:
        raise ValueError(f'inputs of shape {tuple(inputs.shape)}: expected two images '
                         f'(2, 3, H, W), the pair whose assignments are compared')
    backbone.eval()
    rows = []
    for stage, masks in enumerate(recorded_merge_masks(backbone, inputs)):
        for block, mask in enumerate(masks):
            if mask is None:
                continue
            assign = mask.batched_assign()
            pair = assign.reshape(2, -1)
            crossed: Optional[float] = None
            if mask.plan is not None:
                crossed = _share(assign != mask.plan.cell.to(assign.device))
            rows.append(dict(stage=stage, block=block, grid=tuple(mask.grid),
                             merged_grid=tuple(mask.merged_grid),
                             changed=_share(pair[0] != pair[1]), crossed=crossed))
    return rows


def format_assignment_stats(rows: List[Dict]) -> str:
    """A markdown table of :func:`assignment_stats`' rows."""
    lines = ['| stage | block | grid -> merged | changed between the images | '
             'crossed the fixed cells |', '|---|---|---|---|---|']
    for r in rows:
        crossed = '-' if r['crossed'] is None else f"{r['crossed']:.1%}"
        lines.append(f"| {r['stage']} | {r['block']} | {r['grid'][0]}x{r['grid'][1]} -> "
                     f"{r['merged_grid'][0]}x{r['merged_grid'][1]} | {r['changed']:.1%} | "
                     f'{crossed} |')
    return '\n'.join(lines)
