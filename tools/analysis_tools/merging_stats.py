"""How much an LTM backbone's merging depends on the image, per block.

Runs two images through the backbone of CONFIG (with CHECKPOINT, or random
weights for ``none``) and prints, for every block that merges, the share of
tokens whose merged token differs between the two images and the share that
joined a merged token across the fixed grid cells
(:mod:`mmltm.analysis.merging_stats`). A fixed-grid mask gives 0 % for
both; issue 12 asks for >= 10 % changed in every merging block.
With random weights (``none``) and a backbone with BatchNorm (MobileViT,
EfficientViT), pass ``--calibrate-bn``: the initial running statistics
wash the image out of the late stages (see
:func:`~mmltm.analysis.merging_stats.calibrate_batch_norm`).

Example::

    python tools/analysis_tools/merging_stats.py configs/toy/ltm_swin_t_shapes_toy.py \\
        work_dirs/compare_merging/cls/ltm/seed0/epoch_8.pth \\
        data/toy/shapes/val/arrow/arrow_00000.png data/toy/shapes/val/circle/circle_00001.png \\
        --size 224
"""
import argparse
from typing import Dict, List

import numpy as np
import torch

from mmltm.analysis.merging_stats import (assignment_stats, batch_norm_layers,
                                          calibrate_batch_norm, format_assignment_stats)
from mmltm.analysis.models import build_model, load_config, make_batch, parse_size
from mmltm.analysis.visualization import check_records_masks


def run(args: argparse.Namespace) -> List[Dict]:
    import mmcv
    random_weights = args.checkpoint.lower() == 'none'
    if args.calibrate_bn and not random_weights:
        raise ValueError(f'--calibrate-bn with checkpoint {args.checkpoint!r}: it is for '
                         f"CHECKPOINT=none only (a checkpoint has its BatchNorm statistics)")
    cfg = load_config(args.config, args.cfg_options)
    torch.manual_seed(args.seed)  # the random weights of CHECKPOINT=none
    model = build_model(cfg, 'cpu')
    if not random_weights:
        from mmengine.runner import load_checkpoint
        from mmltm.engine import install_checkpoint_fix
        install_checkpoint_fix()  # mmengine's loader under torch >= 2.6
        load_checkpoint(model, args.checkpoint, map_location='cpu')
    check_records_masks(model.backbone)
    H, W = parse_size(args.size)
    images = []
    for path in args.images:
        img = mmcv.imread(path)
        if img is None:
            raise FileNotFoundError(f'cannot read image {path!r}')
        img = mmcv.imresize(img, (W, H))
        images.append(torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))))
    data = make_batch(model, (H, W), 2, images=images)
    note = ''
    if args.calibrate_bn:
        layers = calibrate_batch_norm(model.backbone, data['inputs'])
        note = f', BatchNorm statistics of the two images ({layers} layers)'
    elif random_weights and batch_norm_layers(model.backbone):
        note = (', initial BatchNorm statistics (they wash the image out of late stages; '
                'see --calibrate-bn)')
    rows = assignment_stats(model.backbone, data['inputs'])
    print(f'{args.config}, checkpoint {args.checkpoint}, {H}x{W}, '
          f'{args.images[0]} vs {args.images[1]}{note}')
    print(format_assignment_stats(rows) if rows else 'no block merges at this size')
    return rows


def parse_args(argv=None) -> argparse.Namespace:
    from mmengine.config import DictAction
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('config')
    p.add_argument('checkpoint', help="checkpoint file, or 'none' for random weights")
    p.add_argument('images', nargs=2, help='the two images compared')
    p.add_argument('--size', default='224', help='image size fed to the model, S or HxW')
    p.add_argument('--seed', type=int, default=0,
                   help='seed of the random weights (what a checkpoint does not set)')
    p.add_argument('--calibrate-bn', action='store_true',
                   help="with CHECKPOINT=none: estimate the backbone's BatchNorm running "
                        'statistics from the two images first')
    p.add_argument('--cfg-options', nargs='+', action=DictAction)
    return p.parse_args(argv)


def main(argv=None) -> List[Dict]:
    return run(parse_args(argv))


if __name__ == '__main__':
    main()
