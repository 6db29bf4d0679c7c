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
3. the partition: which merged token every token joins (random colours).

Targets are picked spread over the image (the merged tokens whose centres
are nearest to a ``sqrt(K) x sqrt(K)`` lattice) unless ``--target-ids``
names them. CHECKPOINT may be ``none`` (random weights). The image is
resized to ``--size`` and pre-processed by the config's data preprocessor.

Example::

    python tools/analysis_tools/visualize_merging.py configs/ltm_swin_t_8xb128_in1k.py \\
        work_dirs/ltm_swin_t_8xb128_in1k/epoch_300.pth demo.jpg \\
        --stage 2 --block 1 --targets 4 --out merging.png
"""
import argparse
import math
import os
import sys
from typing import Dict, List, Sequence

import numpy as np
import torch



def _load_benchmark():
    """``tools/analysis_tools/benchmark.py`` (the shared build/measure
    helpers), imported by path under a name no other package uses."""
    import importlib.util
    name = 'mmltm_tools_benchmark'
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            name, os.path.join(os.path.dirname(os.path.abspath(__file__)), 'benchmark.py'))
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


bm = _load_benchmark()


def upsample(grid_map: np.ndarray, stride: int, out_hw: Sequence[int]) -> np.ndarray:
    """Nearest upsampling of an ``(h, w)`` token map to pixels, cropped to
    ``out_hw`` (the backbone pads the image to whole patches)."""
    big = np.kron(grid_map, np.ones((stride, stride), dtype=grid_map.dtype))
    return big[:out_hw[0], :out_hw[1]]


def pick_targets(G: np.ndarray, grid: Sequence[int], k: int) -> List[int]:
    """``k`` distinct merged tokens whose G-weighted centres are nearest to a
    lattice spread over the grid; tokens that merged two or more input
    tokens are preferred (a singleton's column is a single 1)."""
    h, w = grid
    n_merged = G.shape[1]
    k = min(k, n_merged)
    members = (G > 0).sum(0)
    eligible = members > 1
    if eligible.sum() < k:
        eligible = np.ones(n_merged, dtype=bool)
    rows, cols = np.divmod(np.arange(h * w), w)
    mass = G.sum(0) + 1e-12
    cy, cx = (G * rows[:, None]).sum(0) / mass, (G * cols[:, None]).sum(0) / mass
    n_r = max(1, int(math.floor(math.sqrt(k))))
    n_c = int(math.ceil(k / n_r))
    points = [((i + 0.5) / n_r * h - 0.5, (j + 0.5) / n_c * w - 0.5)
              for i in range(n_r) for j in range(n_c)][:k]
    chosen: List[int] = []
    for py, px in points:
        d = (cy - py) ** 2 + (cx - px) ** 2
        d[~eligible] = np.inf
        d[chosen] = np.inf
        chosen.append(int(np.argmin(d)))
    return chosen


def merging_figure(image_rgb: np.ndarray, G: np.ndarray, grid: Sequence[int], stride: int,
                   targets: Sequence[int], out: str, title: str = '') -> Dict:
    """Draw the three panels (module docstring) to ``out``; returns what was
    drawn (target centres in pixels, heat map) for checking."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    h, w = grid
    H, W = image_rgb.shape[:2]
    rows, cols = np.divmod(np.arange(h * w), w)
    assign = G.argmax(1)
    weight = G.max(1)
    sizes = np.bincount(assign, minlength=G.shape[1])
    heat = np.zeros(h * w)
    centres = []
    for t in targets:
        col = G[:, t]
        heat = np.maximum(heat, col / max(col.max(), 1e-12))
        m = col.sum() + 1e-12
        centres.append((((col * cols).sum() / m + 0.5) * stride,
                        ((col * rows).sum() / m + 0.5) * stride))
    heat_img = upsample(heat.reshape(h, w), stride, (H, W))
    rel = upsample((weight * sizes[assign]).reshape(h, w), stride, (H, W))
    rng = np.random.default_rng(0)
    palette = rng.uniform(0.15, 1.0, size=(G.shape[1], 3))
    part_rgb = np.stack([upsample(palette[assign, c].reshape(h, w), stride, (H, W))
                         for c in range(3)], -1)

    fig, axes = plt.subplots(1, 3, figsize=(13.5, 4.8), dpi=110)
    ax = axes[0]
    ax.imshow(image_rgb)
    ax.imshow(np.ma.masked_less_equal(heat_img, 0), cmap='jet', alpha=0.55, vmin=0, vmax=1)
    for i, (x, y) in enumerate(centres):
        ax.plot(x, y, marker='o', ms=9, mfc='none', mec='white', mew=2)
        ax.text(x + stride * 0.6, y - stride * 0.6, str(i + 1), color='white', fontsize=10,
                weight='bold', ha='left', va='bottom',
                bbox=dict(facecolor='black', alpha=0.5, pad=1, lw=0))
    ax.set_title('targets and their merging weights (G columns)', fontsize=9)
    ax = axes[1]
    ax.imshow(image_rgb, alpha=0.35)
    vmax = max(float(rel.max()), 1.0 + 1e-3)
    im = ax.imshow(rel, cmap='coolwarm', alpha=0.75,
                   norm=matplotlib.colors.TwoSlopeNorm(vcenter=1.0, vmin=0.0, vmax=vmax))
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02)
    ax.set_title('w[n] * |cell|  (1 = uniform average)', fontsize=9)
    ax = axes[2]
    ax.imshow(image_rgb)
    ax.imshow(part_rgb, alpha=0.6)
    ax.set_title(f'partition: {h}x{w} = {h * w} tokens -> {G.shape[1]} merged', fontsize=9)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return dict(centres=centres, heat=heat_img, relative_weight=rel)


def run(args) -> Dict:
    import mmcv
    cfg = bm.load_config(args.config, args.cfg_options)
    model = bm.build_model(cfg, args.device)
    if args.checkpoint.lower() != 'none':
        from mmengine.runner import load_checkpoint
        load_checkpoint(model, args.checkpoint, map_location='cpu')
    backbone = model.backbone
    if not hasattr(backbone, 'record_merge_masks'):
        raise ValueError(f'{type(backbone).__name__} does not record merging masks; '
                         f'use an LTM backbone (e.g. LTMSwinTransformer)')
    H, W = bm.parse_size(args.size)
    img_bgr = mmcv.imread(args.image)
    if img_bgr is None:
        raise FileNotFoundError(f'cannot read image {args.image!r}')
    img_bgr = mmcv.imresize(img_bgr, (W, H))
    data = bm.make_batch(model, (H, W), 1, images=[torch.from_numpy(
        np.ascontiguousarray(img_bgr.transpose(2, 0, 1)))])
    backbone.record_merge_masks(True)
    with torch.no_grad():
        backbone(data['inputs'])
    masks = backbone.last_merge_masks
    backbone.record_merge_masks(False)
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
    drawn = merging_figure(mmcv.bgr2rgb(img_bgr), G, (h, w), stride, targets, args.out, title)
    print(f'stage {args.stage} block {args.block}: grid {h}x{w} -> {mask.num_merged} merged '
          f'tokens, stride {stride}px; targets {targets}; wrote {args.out}')
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
