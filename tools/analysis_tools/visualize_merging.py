"""Show where an LTM block merges: the paper's merging-weight figure.

For one block (``--stage``, ``--block``) of an LTM backbone it runs IMAGE
through the backbone with ``record_merge_masks(True)``, takes the block's
merging mask G (N x N', ``MergeMask.dense()``) and draws three panels:

1. the image with ``--targets`` merged tokens marked (numbered at the
   G-weighted centre of their members) and, as a heat map, their columns of
   G (each scaled to its maximum), upsampled from the token grid to the image
   (nearest: one token is one patch of ``stride x stride`` pixels);
2. every token's weight relative to a uniform average, ``w[n] * |cell(n)|``
   (1 = uniform; > 1: the token counts more in its merged token);
3. the partition: which merged token every token joins (random colours),
   with the borders of the fixed grid cells: the learned LTM mask lets
   tokens join a neighbouring cell's merged token; the tool prints how many.

Targets are picked spread over the image (the merged tokens whose centres
are nearest to a ``sqrt(K) x sqrt(K)`` lattice) unless ``--target-ids``
names them. The drawing is :mod:`mmltm.analysis.visualization`; this file is its
command line. CHECKPOINT may be ``none`` (random weights). The image is
resized to ``--size`` and pre-processed by the config's data preprocessor.

Example::

    python tools/analysis_tools/visualize_merging.py configs/ltm_swin_t_8xb128_in1k.py \\
        work_dirs/ltm_swin_t_8xb128_in1k/epoch_300.pth demo.jpg \\
        --stage 2 --block 1 --targets 4 --out merging.png
"""
import argparse
import math
import os
from typing import Dict

import numpy as np
import torch

from mmltm.analysis.models import build_model, load_config, make_batch, parse_size
from mmltm.analysis.visualization import (check_records_masks, merging_figure, pick_targets,
                                         recorded_merge_masks)


def run(args) -> Dict:
    import mmcv
    cfg = load_config(args.config, args.cfg_options)
    model = build_model(cfg, args.device)
    if args.checkpoint.lower() != 'none':
        from mmengine.runner import load_checkpoint
        from mmltm.engine import install_checkpoint_fix
        install_checkpoint_fix()  # mmengine's loader under torch >= 2.6
        load_checkpoint(model, args.checkpoint, map_location='cpu')
    backbone = model.backbone
    check_records_masks(backbone)
    H, W = parse_size(args.size)
    img_bgr = mmcv.imread(args.image)
    if img_bgr is None:
        raise FileNotFoundError(f'cannot read image {args.image!r}')
    img_bgr = mmcv.imresize(img_bgr, (W, H))
    data = make_batch(model, (H, W), 1, images=[torch.from_numpy(
        np.ascontiguousarray(img_bgr.transpose(2, 0, 1)))])
    masks = recorded_merge_masks(backbone, data['inputs'])
    if not 0 <= args.stage < len(masks):
        raise ValueError(f'--stage {args.stage}: allowed 0..{len(masks) - 1}')
    if not 0 <= args.block < len(masks[args.stage]):
        raise ValueError(f'--block {args.block}: stage {args.stage} has blocks '
                         f'0..{len(masks[args.stage]) - 1}')
    mask = masks[args.stage][args.block]
    if mask is None:
        raise ValueError(f'stage {args.stage} block {args.block} merges nothing at {H}x{W} '
                         f'(its merged grid is its grid); pick another block or size')
    G = mask.dense()[0].float().cpu().numpy()
    h, w = mask.grid
    pad_h, pad_w = data['inputs'].shape[-2:]
    stride = int(math.ceil(max(pad_h / h, pad_w / w)))
    targets = list(args.target_ids) if args.target_ids else pick_targets(G, (h, w), args.targets)
    bad = [t for t in targets if not 0 <= t < G.shape[1]]
    if bad:
        raise ValueError(f'--target-ids {bad}: allowed 0..{G.shape[1] - 1}')
    title = (f'{os.path.basename(args.config)}, stage {args.stage} block {args.block}, '
             f'checkpoint {os.path.basename(args.checkpoint)}, mode '
             f"{getattr(backbone, 'merge_mode', 'ltm')}")
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    fixed_cell = None if mask.plan is None else mask.plan.cell.cpu().numpy()
    drawn = merging_figure(mmcv.bgr2rgb(img_bgr), G, (h, w), stride, targets, args.out, title,
                           fixed_cell=fixed_cell)
    crossed = '' if drawn['crossed'] is None else (
        f"; {int(drawn['crossed'].sum())} of {h * w} tokens "
        f"({drawn['crossed'].mean():.1%}) joined a merged token across the fixed-cell borders")
    print(f'stage {args.stage} block {args.block}: grid {h}x{w} -> {mask.num_merged} merged '
          f'tokens, stride {stride}px; targets {targets}{crossed}; wrote {args.out}')
    return dict(targets=targets, grid=(h, w), num_merged=mask.num_merged, stride=stride,
                G=G, **drawn)


def parse_args(argv=None):
    from mmengine.config import DictAction
    p = argparse.ArgumentParser(description='Visualise the merging weights of an LTM block')
    p.add_argument('config')
    p.add_argument('checkpoint', help="checkpoint file, or 'none' for random weights")
    p.add_argument('image')
    p.add_argument('--stage', type=int, default=2)
    p.add_argument('--block', type=int, default=0)
    p.add_argument('--targets', type=int, default=4, help='number of target tokens')
    p.add_argument('--target-ids', type=int, nargs='+', help='merged-token indices to show')
    p.add_argument('--size', default='224', help='image size fed to the model, S or HxW')
    p.add_argument('--out', default='merging.png')
    p.add_argument('--device', default='cpu')
    p.add_argument('--cfg-options', nargs='+', action=DictAction)
    args = p.parse_args(argv)
    if args.targets < 1:
        p.error(f'--targets {args.targets} must be >= 1')
    return args


def main(argv=None) -> Dict:
    return run(parse_args(argv))


if __name__ == '__main__':
    main()
