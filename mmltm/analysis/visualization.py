"""The paper's merging-weight figure for one LTM block (what
``tools/analysis_tools/visualize_merging.py`` draws): the merging mask G
(N x N', ``MergeMask.dense()``) of a block, recorded through the backbone's
``record_merge_masks`` / ``last_merge_masks``, drawn as three panels:

1. the image with target merged tokens marked (numbered at the G-weighted
   centre of their members) and, as a heat map, their columns of G (each
   scaled to its maximum), upsampled from the token grid to the image
   (nearest: one token is one patch of ``stride x stride`` pixels);
2. every token's weight relative to a uniform average, ``w[n] * |cell(n)|``
   (1 = uniform; > 1: the token counts more in its merged token);
3. the partition: which merged token every token joins (random colours),
   over the borders of the fixed grid cells (white lines) when those are
   given; tokens that joined a merged token across them are dotted.
"""
import math
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
import torch.nn as nn


def check_records_masks(backbone: nn.Module) -> None:
    """A ``ValueError`` unless ``backbone`` can record its merging masks."""
    if not hasattr(backbone, 'record_merge_masks'):
        raise ValueError(f'{type(backbone).__name__} does not record merging masks; '
                         f'use an LTM backbone (e.g. LTMSwinTransformer)')


def recorded_merge_masks(backbone: nn.Module, inputs: torch.Tensor) -> List[list]:
    """``backbone.last_merge_masks`` after one forward on ``inputs`` with
    ``record_merge_masks(True)`` (recording is switched off again after).

    Args:
        backbone: an LTM backbone.
        inputs: a pre-processed batch ``(B, 3, H, W)``.
    """
    check_records_masks(backbone)
    backbone.record_merge_masks(True)
    try:
        with torch.no_grad():
            backbone(inputs)
        return backbone.last_merge_masks
    finally:
        backbone.record_merge_masks(False)


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


def crossed_cell_borders(G: np.ndarray, fixed_cell: np.ndarray) -> np.ndarray:
    """Which tokens joined a merged token other than their fixed grid cell
    (merged token k sits on cell k): a bool ``(N,)``."""
    return G.argmax(1) != np.asarray(fixed_cell)


def merging_figure(image_rgb: np.ndarray, G: np.ndarray, grid: Sequence[int], stride: int,
                   targets: Sequence[int], out: str, title: str = '',
                   fixed_cell: Optional[np.ndarray] = None) -> Dict:
    """Draw the three panels (module docstring) to ``out``; returns what was
    drawn (target centres in pixels, heat map, the tokens that crossed the
    fixed-cell borders when ``fixed_cell`` (N,) is given) for checking."""
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
    part_title = f'partition: {h}x{w} = {h * w} tokens -> {G.shape[1]} merged'
    crossed = None
    if fixed_cell is not None:
        fixed = np.asarray(fixed_cell).reshape(h, w)
        for j in np.flatnonzero(fixed[0, 1:] != fixed[0, :-1]):
            ax.axvline((j + 1) * stride - 0.5, color='white', lw=0.5, alpha=0.8)
        for i in np.flatnonzero(fixed[1:, 0] != fixed[:-1, 0]):
            ax.axhline((i + 1) * stride - 0.5, color='white', lw=0.5, alpha=0.8)
        crossed = crossed_cell_borders(G, fixed_cell)
        ys, xs = np.divmod(np.flatnonzero(crossed), w)
        ax.plot((xs + 0.5) * stride, (ys + 0.5) * stride, 'k.', ms=3)
        part_title += f'\n{int(crossed.sum())} tokens ({crossed.mean():.0%}) cross the fixed cells'
    ax.set_title(part_title, fontsize=9)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return dict(centres=centres, heat=heat_img, relative_weight=rel, crossed=crossed)
