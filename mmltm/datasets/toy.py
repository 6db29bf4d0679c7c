"""Deterministic toy datasets in the real COCO / ADE20K / ImageNet formats.

The toy sets let every config, test and demo of mmltm run end to end on a
CPU in minutes, through the *stock* OpenMMLab dataset classes (mmdet
``CocoDataset``, mmseg ``ADE20KDataset``, mmpretrain ``ImageNet`` /
``CustomDataset``) with no custom dataset code. Every image is a plain-ish
background (tinted colour, gradient, Gaussian noise, a few grey scribbles)
with coloured shapes; each shape class has its own base colour (jittered per
shape), so a tiny model learns them in a few hundred iterations.

Layout written under ``out_dir`` (default ``data/toy``)::

    coco/annotations/instances_{train,val}.json
    coco/{train,val}/000000.jpg ...
    ade/images/{training,validation}/ADE_{train,val}_00000000.jpg
    ade/annotations/{training,validation}/ADE_{train,val}_00000000.png
    imagenet/{train,val}/<class>/<class>_00000.png
    imagenet/meta/{train,val}.txt          # "<class>/<file> <label>" lines
    shapes/...                             # as imagenet/, 12 classes
    coco_shapes/...                        # as coco/, the shapes images
    ade_shapes/...                         # as ade/, the shapes images

Each dataset folder holds a stamp file
(:data:`STAMP_NAME`) with the generation parameters, which
:func:`ensure_toy_data` uses to reuse an existing set.

**COCO** (:data:`TOY_COCO_CLASSES`, category ids 1..3): instances not
occluded by another shape carry their exact polygon; partly occluded ones
carry the compressed RLE of their visible pixels (``iscrowd=0``); every 6th
image (index 5, 11, ...) holds a tight cluster of tiny same-class shapes
annotated once as a crowd (``iscrowd=1``, uncompressed RLE, as in COCO).
Every 4th image (index 1, 5, ...) forces a partial occlusion, so RLE
instances always exist. ``bbox`` ([x, y, w, h]) and ``area`` are computed
from the stored segmentation with pycocotools, so evaluating the ground
truth against itself gives AP 1.0.

**ADE20K** (:data:`TOY_SEG_CLASSES`): the stock ``ADE20KDataset`` only
accepts ``metainfo=dict(classes=...)`` whose names are a *subset of the 150
ADE20K class names* (mmseg ``BaseSegDataset.get_label_map`` raises
otherwise), and it maps pixel values through ADE20K's own class ids. The
toy label maps therefore store real ADE20K ids (raw value = ADE20K class
index + 1, :data:`TOY_SEG_LABEL_IDS`) for four ADE20K classes standing for
the toy content: ``wall`` = plain background, ``ball`` = circle, ``box`` =
rectangle, ``tent`` = triangle. Raw value 0 ("other", the grey scribbles)
becomes 255 (ignored) with ``reduce_zero_label=True``. A config then uses::

    dict(type='ADE20KDataset', data_root='data/toy/ade',
         data_prefix=dict(img_path='images/training',
                          seg_map_path='annotations/training'),
         metainfo=dict(classes=TOY_SEG_CLASSES, palette=TOY_SEG_PALETTE))

and the stock label map turns the pixels into 0..3 (``num_classes=4``).
Without ``metainfo`` the same files load as 150-class ADE20K.

**ImageNet** (:data:`TOY_CLS_CLASSES`, sorted, so the labels in
``meta/*.txt`` equal the folder-scan order of ``CustomDataset``): one large
shape per image whose type is the label (circle, cross, rectangle,
triangle), sometimes with a small shape of another class beside it. Labels
go round-robin over the image index, so the splits are balanced. Use
``dict(type='ImageNet', data_root='data/toy/imagenet', split='train',
metainfo=dict(classes=TOY_CLS_CLASSES))``.

**Shapes** (:data:`TOY_SHAPES_CLASSES`, :mod:`mmltm.datasets.toy_shapes`):
the harder classification set, 12 shape classes with random textures,
distractors and clutter, where only the outline says the class; the toy
ImageNet layout, 768 train / 480 val images of 64x64 by default.

**Dense shapes** (``coco_shapes``, ``ade_shapes``;
:func:`mmltm.datasets.toy_shapes.draw_shapes_scene`): the images of the
shapes set (their own generator streams), densely labelled, a dense
benchmark that can see a worse token merge. The toy COCO / ADE scenes above
give the class by colour and a toy Mask R-CNN / UperNet scores the same
with a quarter of the tokens merged away, even training-free. Here the
class of the large target shape (about a third of the image wide) is its
outline, a property of the whole shape; the 0-2 smaller distractor shapes
of other classes are ignored. COCO: one instance per image, category ids
1..12 (:data:`TOY_SCENE_COCO_CLASSES`, round-robin over the image index),
its visible mask a compressed RLE; the distractors are crowds (ignored by
training and evaluation). ADE layout, read by ``ToyShapesSegDataset``:
label PNGs in the order of :data:`TOY_SCENE_SEG_CLASSES` (0 background,
1..12 the target's class, no ADE20K ids) and :data:`TOY_SCENE_SEG_IGNORE`
on the distractors. 768 train / 480 val images of 64x64 by default, as the
shapes set. (Earlier versions drew multi-shape scenes whose class was an
outline, then a stripe direction: the toy UperNet learnt neither within its
schedule; see the notes of the change.)

Each set has its own default size and image counts
(:data:`TOY_DEFAULTS`); ``num_train``, ``num_val`` and ``size`` given to
:func:`make_toy_data` / :func:`ensure_toy_data` apply to every set written.
:func:`ensure_toy_dataset` writes one set at an exact ``data_root``, under a
file lock (what the toy dataset classes of :mod:`mmltm.datasets.checked`
call, so that a toy config works from any OpenMMLab ``tools/train.py``).

Every image is drawn from its own random generator seeded with
``(seed, dataset, split, index)``: the same seed gives byte-identical files,
and image ``i`` does not depend on how many images are generated.
"""
import json
import os
import os.path as osp
import shutil
import uuid
from contextlib import contextmanager
from typing import Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from .toy_classes import (TOY_SCENE_SEG_CLASSES, TOY_SCENE_SEG_PALETTE,
                          TOY_SHAPES_CLASSES)
from .toy_shapes import draw_shapes_image, draw_shapes_scene

__all__ = [
    'TOY_COCO_CLASSES', 'TOY_COCO_PALETTE', 'TOY_SEG_CLASSES',
    'TOY_SEG_LABEL_IDS', 'TOY_SEG_PALETTE', 'TOY_CLS_CLASSES',
    'TOY_DATASETS', 'DEFAULT_TOY_ROOT', 'STAMP_NAME', 'GENERATOR_VERSION',
    'TOY_SHAPES_CLASSES', 'TOY_SCENE_COCO_CLASSES', 'TOY_SCENE_SEG_CLASSES',
    'TOY_SCENE_SEG_IGNORE', 'TOY_SCENE_SEG_PALETTE',
    'TOY_SCENE_COCO_PALETTE', 'TOY_DEFAULTS', 'make_toy_data',
    'ensure_toy_data', 'ensure_toy_dataset', 'make_toy_coco', 'make_toy_ade',
    'make_toy_imagenet', 'make_toy_shapes', 'make_toy_coco_shapes',
    'make_toy_ade_shapes'
]

#: bump when the drawing changes, so stale stamped sets are regenerated
GENERATOR_VERSION = 3  # 3: the shapes sets densely labelled (coco/ade_shapes)
#: the root the configs, tests and demos use (relative to the repo root)
DEFAULT_TOY_ROOT = 'data/toy'
#: the dataset names accepted by ``which`` (append only: the index seeds
#: each image's generator)
TOY_DATASETS = ('coco', 'ade', 'imagenet', 'shapes', 'coco_shapes',
                'ade_shapes')
#: default image counts and size (H, W) of each set
TOY_DEFAULTS = dict(
    coco=dict(num_train=48, num_val=48, size=(256, 256)),
    ade=dict(num_train=48, num_val=48, size=(256, 256)),
    imagenet=dict(num_train=48, num_val=16, size=(256, 256)),
    shapes=dict(num_train=768, num_val=480, size=(64, 64)),
    coco_shapes=dict(num_train=768, num_val=480, size=(64, 64)),
    ade_shapes=dict(num_train=768, num_val=480, size=(64, 64)))
#: name of the parameter stamp written in each dataset folder
STAMP_NAME = '.toy_stamp.json'

#: COCO categories, ids 1, 2, 3 in this order
TOY_COCO_CLASSES = ('circle', 'rectangle', 'triangle')
#: classification classes (sorted, see the module docstring)
TOY_CLS_CLASSES = ('circle', 'cross', 'rectangle', 'triangle')
#: ADE20K class names used for the segmentation set, in label order 0..3:
#: background, circle, rectangle, triangle
TOY_SEG_CLASSES = ('wall', 'ball', 'box', 'tent')
#: raw values in the ADE label PNGs for :data:`TOY_SEG_CLASSES`
#: (ADE20K class index + 1); 0 is "other" and becomes ignore (255)
TOY_SEG_LABEL_IDS = (1, 120, 42, 115)
#: COCO categories of the ``coco_shapes`` set, ids 1..12 in this order
TOY_SCENE_COCO_CLASSES = TOY_SHAPES_CLASSES
#: palette of TOY_SCENE_COCO_CLASSES (the same colours per class)
TOY_SCENE_COCO_PALETTE = TOY_SCENE_SEG_PALETTE[1:]
#: the ``ade_shapes`` label of a distractor's pixels (mmseg's ignore index)
TOY_SCENE_SEG_IGNORE = 255

# Base RGB colour of each shape type; each shape jitters it by up to
# +-_COLOR_JITTER per channel. Classes differ mainly in hue, so colour alone
# nearly separates them and the toy runs learn fast.
_SHAPE_COLORS = {
    'circle': (215, 45, 45),
    'rectangle': (40, 170, 60),
    'triangle': (45, 75, 215),
    'cross': (225, 190, 30),
}
_COLOR_JITTER = 25
# Radius factor per scene shape so that the three classes of the COCO / ADE
# scenes cover the same expected area: from the same disc of radius r a
# circle covers pi r^2 = 3.14 r^2, a rectangle (half-diagonal r, 25-65 deg)
# 1.84 r^2 and a triangle (vertices at 0.85-1 r) 1.1 r^2. With one radius
# for all (generator version 1) the triangles held 1.9 % of the ADE train
# pixels against 5.1 % for circles, and the class ``tent`` was learnt in
# some seeds only (IoU 0.0 in the others), the main source of the ~10 mIoU
# seed spread; equal areas (at the rectangle's) remove that imbalance.
_EQUAL_AREA_RADIUS = {'circle': 0.766, 'rectangle': 1.0, 'triangle': 1.29}
_SEG_SHAPES = ('circle', 'rectangle', 'triangle')  # TOY_SEG_CLASSES[1:]
#: the raw ADE label value of each scene shape
_SEG_SHAPE_IDS = dict(zip(_SEG_SHAPES, TOY_SEG_LABEL_IDS[1:]))

#: palette for visualisation, one colour per entry of TOY_COCO_CLASSES
TOY_COCO_PALETTE = [_SHAPE_COLORS[c] for c in TOY_COCO_CLASSES]
#: palette for visualisation, one colour per entry of TOY_SEG_CLASSES
TOY_SEG_PALETTE = [(120, 120, 120)] + [_SHAPE_COLORS[c] for c in _SEG_SHAPES]

_MIN_SIZE = 32  # smaller images leave no room for the shapes
_DATASET_IDS = {name: i for i, name in enumerate(TOY_DATASETS)}
_SPLITS = ('train', 'val')
_ADE_SPLITS = {'train': 'training', 'val': 'validation'}

Size = Union[int, Sequence[int]]


# --------------------------------------------------------------------------
# argument checking
# --------------------------------------------------------------------------
def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(
        value, bool)


def _check_count(name: str, value) -> int:
    if not _is_int(value) or value <= 0:
        raise ValueError(f'{name} must be a positive integer, got {value!r}')
    return int(value)


def _check_size(size: Size) -> Tuple[int, int]:
    """Normalise ``size`` to ``(H, W)``; an int means a square image."""
    hw = (size, size) if _is_int(size) else size
    try:
        hw = tuple(hw)
    except TypeError:
        hw = (size, )
    if len(hw) != 2 or not all(_is_int(v) and v >= _MIN_SIZE for v in hw):
        raise ValueError(f'size must be two integers (H, W), each >= '
                         f'{_MIN_SIZE}, got {size!r}')
    return int(hw[0]), int(hw[1])


def _check_seed(seed) -> int:
    if not _is_int(seed) or seed < 0:
        raise ValueError(f'seed must be a non-negative integer, got {seed!r}')
    return int(seed)


def _check_which(which: Union[str, Sequence[str]]) -> Tuple[str, ...]:
    names = (which, ) if isinstance(which, str) else tuple(which)
    bad = [n for n in names if n not in TOY_DATASETS]
    if not names or bad:
        raise ValueError(f'which must name one or more of {TOY_DATASETS}, '
                         f'got {which!r}')
    # keep the canonical order, drop duplicates
    return tuple(n for n in TOY_DATASETS if n in names)


def _check_params(num_train, num_val, size, seed) -> dict:
    return dict(
        num_train=_check_count('num_train', num_train),
        num_val=_check_count('num_val', num_val),
        size=list(_check_size(size)),
        seed=_check_seed(seed))


def _params_for(name: str, num_train, num_val, size, seed) -> dict:
    """The checked parameters of set ``name``; None means its default."""
    default = TOY_DEFAULTS[name]
    return _check_params(
        default['num_train'] if num_train is None else num_train,
        default['num_val'] if num_val is None else num_val,
        default['size'] if size is None else size, seed)


# --------------------------------------------------------------------------
# drawing
# --------------------------------------------------------------------------
def _rng(seed: int, dataset: str, split: str,
         index: int) -> np.random.Generator:
    """One independent generator per image (see the module docstring)."""
    return np.random.default_rng(
        [seed, _DATASET_IDS[dataset], _SPLITS.index(split), index])


def _rasterize(poly: np.ndarray, h: int, w: int) -> np.ndarray:
    """Rasterise a polygon with pycocotools, exactly as COCO tools read it."""
    from pycocotools import mask as mask_utils
    rles = mask_utils.frPyObjects([poly.ravel().tolist()], h, w)
    return mask_utils.decode(rles)[..., 0].astype(bool)


def _shape_polygon(kind: str, cx: float, cy: float, r: float,
                   rng: np.random.Generator) -> np.ndarray:
    """Vertices (K, 2) of a ``kind`` shape inside the disc (cx, cy, r)."""
    theta = rng.uniform(0, 2 * np.pi)
    if kind == 'circle':
        t = np.linspace(0, 2 * np.pi, 40, endpoint=False)
        pts = np.stack([np.cos(t), np.sin(t)], 1) * r
    elif kind == 'rectangle':
        # half-diagonal r, aspect between ~1:2.1 and 2.1:1, mild tilt so
        # the shapes stay box-like
        phi = rng.uniform(np.deg2rad(25), np.deg2rad(65))
        hw, hh = r * np.cos(phi), r * np.sin(phi)
        pts = np.array([[-hw, -hh], [hw, -hh], [hw, hh], [-hw, hh]])
        theta = rng.uniform(-np.deg2rad(20), np.deg2rad(20))
    elif kind == 'triangle':
        t = theta + np.array([0, 2, 4]) * np.pi / 3 + rng.uniform(
            -0.25, 0.25, 3)
        rad = r * rng.uniform(0.85, 1.0, 3)
        return np.stack([cx + rad * np.cos(t), cy + rad * np.sin(t)], 1)
    elif kind == 'cross':
        a = rng.uniform(0.28, 0.4)  # half arm width, relative to arm length
        q = [(a, a), (a, 1), (-a, 1), (-a, a), (-1, a), (-1, -a), (-a, -a),
             (-a, -1), (a, -1), (a, -a), (1, -a), (1, a)]
        pts = np.array(q) * r / np.sqrt(1 + a * a)
    else:  # internal use only
        raise ValueError(f'unknown shape {kind!r}')
    rot = np.array([[np.cos(theta), -np.sin(theta)],
                    [np.sin(theta), np.cos(theta)]])
    return pts @ rot.T + np.array([cx, cy])


def _jittered_color(kind: str, rng: np.random.Generator) -> np.ndarray:
    base = np.array(_SHAPE_COLORS[kind], dtype=np.float32)
    return np.clip(base + rng.uniform(-_COLOR_JITTER, _COLOR_JITTER, 3), 0,
                   255)


def _background(rng: np.random.Generator, h: int,
                w: int) -> Tuple[np.ndarray, np.ndarray]:
    """Light tinted background with a gradient and grey scribbles.

    Returns the float RGB image and the boolean mask of the scribbles (the
    "other" pixels of the segmentation set).
    """
    import cv2
    base = rng.uniform(165, 225) + rng.uniform(-12, 12, 3)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    grad = (rng.uniform(-18, 18) * (xs / max(w - 1, 1) - 0.5) * 2 +
            rng.uniform(-18, 18) * (ys / max(h - 1, 1) - 0.5) * 2)
    img = base[None, None, :].astype(np.float32) + grad[..., None]
    clutter = np.zeros((h, w), np.uint8)
    for _ in range(int(rng.integers(0, 3))):
        pts = np.stack([rng.uniform(0, w, 4), rng.uniform(0, h, 4)], 1)
        thick = max(1, int(round(min(h, w) * rng.uniform(0.006, 0.012))))
        cv2.polylines(clutter, [np.round(pts).astype(np.int32)], False, 1,
                      thick)
    clutter = clutter.astype(bool)
    img[clutter] = rng.uniform(95, 150)
    return img, clutter


def _finish(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Add sensor-like noise and quantise to uint8 RGB."""
    img = img + rng.normal(0, 6, img.shape)
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def _round_poly(poly: np.ndarray) -> np.ndarray:
    # the stored (rounded) polygon is the one rasterised and painted, so
    # the image, the mask and the annotation agree exactly
    return np.round(poly, 2)


def _draw_scene(rng: np.random.Generator, h: int, w: int,
                force_occlusion: bool, crowd: bool) -> dict:
    """Draw a multi-shape scene for the COCO and ADE sets.

    Returns:
        dict: ``img`` (uint8 RGB), ``clutter`` (bool mask) and
        ``instances``, each a dict with ``kind``, ``poly`` (None for a
        crowd), ``full`` and ``visible`` (bool masks) and ``crowd``.
    """
    s = min(h, w)
    min_area = max(20, int(0.0006 * h * w))
    img, clutter = _background(rng, h, w)
    instances: List[dict] = []

    for k in range(int(rng.integers(2, 6))):
        kind = _SEG_SHAPES[int(rng.integers(len(_SEG_SHAPES)))]
        for attempt in range(40):
            r = s * rng.uniform(0.08, 0.18) * _EQUAL_AREA_RADIUS[kind]
            near = force_occlusion and k == 1 and attempt < 20
            if near:
                # overlap the first shape so its visible part is not its
                # polygon any more (an RLE instance)
                first = instances[0]
                d = (first['r'] + r) * rng.uniform(0.45, 0.7)
                ang = rng.uniform(0, 2 * np.pi)
                cx = first['cx'] + d * np.cos(ang)
                cy = first['cy'] + d * np.sin(ang)
                cx = float(np.clip(cx, r + 1, w - r - 1))
                cy = float(np.clip(cy, r + 1, h - r - 1))
            else:
                cx = rng.uniform(r + 1, w - r - 1)
                cy = rng.uniform(r + 1, h - r - 1)
            poly = _round_poly(_shape_polygon(kind, cx, cy, r, rng))
            full = _rasterize(poly, h, w)
            if full.sum() < min_area:
                continue
            # every earlier shape keeps at least 45% of itself visible
            if any((inst['visible'] & ~full).sum() <
                   max(min_area, 0.45 * inst['full'].sum())
                   for inst in instances):
                continue
            for inst in instances:
                inst['visible'] &= ~full
            instances.append(
                dict(kind=kind, poly=poly, full=full, visible=full.copy(),
                     crowd=False, cx=cx, cy=cy, r=r))
            break

    if crowd:
        # a tight cluster of tiny same-class shapes on free ground,
        # annotated once with iscrowd=1 as COCO does for groups
        kind = _SEG_SHAPES[int(rng.integers(len(_SEG_SHAPES)))]
        taken = np.zeros((h, w), bool)
        for inst in instances:
            taken |= inst['full']
        for _ in range(30):
            rs = max(3.0, s * rng.uniform(0.025, 0.04))
            spread = rs * 3
            ccx = rng.uniform(spread + rs + 1, w - spread - rs - 1)
            ccy = rng.uniform(spread + rs + 1, h - spread - rs - 1)
            union = np.zeros((h, w), bool)
            polys = []
            for _ in range(int(rng.integers(4, 8))):
                p = _round_poly(
                    _shape_polygon(kind, ccx + rng.uniform(-spread, spread),
                                   ccy + rng.uniform(-spread, spread), rs,
                                   rng))
                polys.append(p)
                union |= _rasterize(p, h, w)
            if not (union & taken).any() and union.sum() >= min_area:
                instances.append(
                    dict(kind=kind, poly=None, polys=polys, full=union,
                         visible=union.copy(), crowd=True))
                break

    for inst in instances:
        if inst['crowd']:
            # each small shape of the group gets its own colour jitter
            for p in inst['polys']:
                img[_rasterize(p, h, w)] = _jittered_color(inst['kind'], rng)
        else:
            img[inst['full']] = _jittered_color(inst['kind'], rng)
    return dict(img=_finish(img, rng), clutter=clutter, instances=instances)


def _draw_cls_image(rng: np.random.Generator, h: int, w: int,
                    label: int) -> np.ndarray:
    """One large shape of class ``label``, sometimes a small other one."""
    s = min(h, w)
    img, _ = _background(rng, h, w)
    kind = TOY_CLS_CLASSES[label]
    r = s * rng.uniform(0.22, 0.38)
    cx, cy = rng.uniform(r + 1, w - r - 1), rng.uniform(r + 1, h - r - 1)
    main = _rasterize(_round_poly(_shape_polygon(kind, cx, cy, r, rng)), h, w)
    img[main] = _jittered_color(kind, rng)
    if rng.uniform() < 0.3:
        # a distractor of another class, at most ~1/6 of the main area
        others = [c for c in TOY_CLS_CLASSES if c != kind]
        other = others[int(rng.integers(len(others)))]
        for _ in range(20):
            rd = s * rng.uniform(0.08, 0.13)
            dx, dy = rng.uniform(rd + 1, w - rd - 1), rng.uniform(
                rd + 1, h - rd - 1)
            m = _rasterize(
                _round_poly(_shape_polygon(other, dx, dy, rd, rng)), h, w)
            if not (m & main).any():
                img[m] = _jittered_color(other, rng)
                break
    return _finish(img, rng)


# --------------------------------------------------------------------------
# writing
# --------------------------------------------------------------------------
def _imwrite(path: str, rgb: np.ndarray) -> None:
    import cv2
    ext = osp.splitext(path)[1].lower()
    params = [cv2.IMWRITE_JPEG_QUALITY, 95] if ext == '.jpg' else []
    img = rgb[..., ::-1] if rgb.ndim == 3 else rgb  # cv2 writes BGR
    ok, buf = cv2.imencode(ext, np.ascontiguousarray(img), params)
    if not ok:
        raise OSError(f'could not encode {path}')
    with open(path, 'wb') as f:
        f.write(buf.tobytes())


def _uncompressed_rle(mask: np.ndarray) -> dict:
    """COCO uncompressed RLE: column-major run lengths, zeros first."""
    flat = mask.ravel(order='F').astype(bool)
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    runs = np.diff(np.concatenate([[0], change, [flat.size]])).tolist()
    if flat[0]:
        runs = [0] + runs
    return dict(size=[int(mask.shape[0]), int(mask.shape[1])], counts=runs)


def _coco_annotation(inst: dict, h: int, w: int, category_id: int) -> dict:
    """The COCO annotation of ``inst``: its polygon when it is whole and
    has one, else the compressed RLE of its visible pixels (a crowd:
    uncompressed RLE)."""
    from pycocotools import mask as mask_utils
    if inst['crowd']:
        seg = _uncompressed_rle(inst['visible'])
        rle = mask_utils.frPyObjects(seg, h, w)
    elif inst['poly'] is not None and (inst['visible'] ==
                                       inst['full']).all():
        seg = [inst['poly'].ravel().tolist()]
        rle = mask_utils.merge(mask_utils.frPyObjects(seg, h, w))
    else:
        rle = mask_utils.encode(
            np.asfortranarray(inst['visible'].astype(np.uint8)))
        seg = dict(size=[h, w], counts=rle['counts'].decode('ascii'))
    bbox = [round(float(v), 2) for v in mask_utils.toBbox(rle)]
    return dict(
        segmentation=seg,
        area=float(mask_utils.area(rle)),
        bbox=bbox,
        iscrowd=int(inst['crowd']),
        category_id=category_id)


def _write_json(path: str, obj) -> None:
    with open(path, 'w') as f:
        json.dump(obj, f, separators=(',', ':'))


def _coco_scene(rng: np.random.Generator, h: int, w: int,
                index: int) -> Tuple[np.ndarray, list]:
    """Image ``index`` of the toy COCO set and its ``(category_id, inst)``
    pairs (every 4th image forces an occlusion, every 6th has a crowd)."""
    scene = _draw_scene(
        rng, h, w, force_occlusion=index % 4 == 1, crowd=index % 6 == 5)
    return scene['img'], [(TOY_COCO_CLASSES.index(inst['kind']) + 1, inst)
                          for inst in scene['instances']]


def _coco_shapes_scene(rng: np.random.Generator, h: int, w: int,
                       index: int) -> Tuple[np.ndarray, list]:
    """Image ``index`` of the ``coco_shapes`` set: the target an instance
    (its mask a compressed RLE), each distractor a crowd (an ignored
    region, uncompressed RLE); classes go round-robin over the index."""
    scene = draw_shapes_scene(rng, h, w, index % len(TOY_SHAPES_CLASSES))
    return scene['img'], [
        (shape['label'] + 1, dict(poly=None, full=shape['mask'],
                                  visible=shape['mask'], crowd=crowd))
        for shapes, crowd in ((scene['instances'], False),
                              (scene['distractors'], True))
        for shape in shapes
    ]


def _write_coco_set(data_root: str, p: dict, dataset: str,
                    classes: Sequence[str], draw) -> str:
    """Write a COCO-layout set; ``draw(rng, h, w, index)`` gives an image
    and its ``(category_id, instance)`` pairs."""
    h, w = p['size']
    os.makedirs(osp.join(data_root, 'annotations'), exist_ok=True)
    categories = [
        dict(id=i + 1, name=name, supercategory='shape')
        for i, name in enumerate(classes)
    ]
    for split, num in (('train', p['num_train']), ('val', p['num_val'])):
        os.makedirs(osp.join(data_root, split), exist_ok=True)
        images, annotations = [], []
        for i in range(num):
            img, instances = draw(_rng(p['seed'], dataset, split, i), h, w, i)
            file_name = f'{i:06d}.jpg'
            _imwrite(osp.join(data_root, split, file_name), img)
            images.append(
                dict(id=i + 1, file_name=file_name, height=h, width=w))
            for category_id, inst in instances:
                ann = _coco_annotation(inst, h, w, category_id)
                ann.update(id=len(annotations) + 1, image_id=i + 1)
                annotations.append(ann)
        _write_json(
            osp.join(data_root, 'annotations', f'instances_{split}.json'),
            dict(
                info=dict(
                    description=f'mmltm toy COCO{_DESCRIPTIONS[dataset]} '
                    '(mmltm.datasets.toy)',
                    version=str(GENERATOR_VERSION)),
                licenses=[],
                images=images,
                annotations=annotations,
                categories=categories))
    return data_root


# what the COCO json's ``info.description`` adds after "mmltm toy COCO"
_DESCRIPTIONS = dict(coco='', coco_shapes=' shapes')


def make_toy_coco(data_root: str,
                  num_train: int = 48,
                  num_val: int = 48,
                  size: Size = (256, 256),
                  seed: int = 0) -> str:
    """Write the toy COCO instance-segmentation set into ``data_root``.

    Args:
        data_root (str): Folder to write (``annotations/``, ``train/``,
            ``val/``); created if missing, existing files are overwritten.
        num_train (int): Number of training images. Defaults to 48.
        num_val (int): Number of validation images. Defaults to 48.
        size (int | tuple[int, int]): Image size (H, W). Defaults to
            (256, 256).
        seed (int): Random seed. Defaults to 0.

    Returns:
        str: ``data_root``.
    """
    p = _check_params(num_train, num_val, size, seed)
    return _write_coco_set(data_root, p, 'coco', TOY_COCO_CLASSES,
                           _coco_scene)


def make_toy_coco_shapes(data_root: str,
                         num_train: int = 768,
                         num_val: int = 480,
                         size: Size = (64, 64),
                         seed: int = 0) -> str:
    """Write the ``coco_shapes`` instance-segmentation set (COCO layout).

    Images of the shapes classification set
    (:func:`mmltm.datasets.toy_shapes.draw_shapes_scene`, their own
    generator stream), one instance each: the target, category
    :data:`TOY_SCENE_COCO_CLASSES` (ids 1..12, round-robin over the image
    index), its visible mask as compressed RLE; the distractor shapes are
    crowds (ignored). Arguments and return value as :func:`make_toy_coco`
    (other defaults: 768 / 480 images of 64x64).
    """
    p = _check_params(num_train, num_val, size, seed)
    return _write_coco_set(data_root, p, 'coco_shapes', TOY_SCENE_COCO_CLASSES,
                           _coco_shapes_scene)


def _write_ade_set(data_root: str, p: dict, dataset: str, draw) -> str:
    """Write an ADE20K-layout set; ``draw(rng, h, w, index)`` gives an image
    and its label map."""
    h, w = p['size']
    for split, num in (('train', p['num_train']), ('val', p['num_val'])):
        img_dir = osp.join(data_root, 'images', _ADE_SPLITS[split])
        ann_dir = osp.join(data_root, 'annotations', _ADE_SPLITS[split])
        os.makedirs(img_dir, exist_ok=True)
        os.makedirs(ann_dir, exist_ok=True)
        for i in range(num):
            img, label = draw(_rng(p['seed'], dataset, split, i), h, w, i)
            stem = f'ADE_{split}_{i:08d}'
            _imwrite(osp.join(img_dir, stem + '.jpg'), img)
            _imwrite(osp.join(ann_dir, stem + '.png'), label)
    return data_root


def _ade_label_scene(rng: np.random.Generator, h: int, w: int,
                     index: int) -> Tuple[np.ndarray, np.ndarray]:
    """Image ``index`` of the toy ADE20K set and its label map (ADE20K
    ids, 0 = the scribbles)."""
    scene = _draw_scene(
        rng, h, w, force_occlusion=index % 4 == 1, crowd=index % 6 == 5)
    label = np.full((h, w), TOY_SEG_LABEL_IDS[0], np.uint8)
    label[scene['clutter']] = 0
    for inst in scene['instances']:  # painting order = visibility
        label[inst['full']] = _SEG_SHAPE_IDS[inst['kind']]
    return scene['img'], label


def _ade_shapes_scene(rng: np.random.Generator, h: int, w: int,
                      index: int) -> Tuple[np.ndarray, np.ndarray]:
    """Image ``index`` of the ``ade_shapes`` set and its label map (label
    order of :data:`TOY_SCENE_SEG_CLASSES`; distractors ignored)."""
    scene = draw_shapes_scene(rng, h, w, index % len(TOY_SHAPES_CLASSES))
    label = np.zeros((h, w), np.uint8)
    for shape in scene['instances']:
        label[shape['mask']] = shape['label'] + 1
    for shape in scene['distractors']:
        label[shape['mask']] = TOY_SCENE_SEG_IGNORE
    return scene['img'], label


def make_toy_ade(data_root: str,
                 num_train: int = 48,
                 num_val: int = 48,
                 size: Size = (256, 256),
                 seed: int = 0) -> str:
    """Write the toy ADE20K-format semantic-segmentation set.

    Label PNGs hold ADE20K ids (:data:`TOY_SEG_LABEL_IDS`; 0 = other), see
    the module docstring. Arguments and return value as
    :func:`make_toy_coco`.
    """
    p = _check_params(num_train, num_val, size, seed)
    return _write_ade_set(data_root, p, 'ade', _ade_label_scene)


def make_toy_ade_shapes(data_root: str,
                        num_train: int = 768,
                        num_val: int = 480,
                        size: Size = (64, 64),
                        seed: int = 0) -> str:
    """Write the ``ade_shapes`` semantic-segmentation set (ADE20K layout).

    The images of :func:`make_toy_coco_shapes` (another generator stream);
    label PNGs hold the label order of :data:`TOY_SCENE_SEG_CLASSES`
    (0 = background, 1..12 = the target's class) and
    :data:`TOY_SCENE_SEG_IGNORE` on the distractors; read them with
    ``ToyShapesSegDataset`` (``reduce_zero_label=False``). Arguments and
    return value as :func:`make_toy_coco_shapes`.
    """
    p = _check_params(num_train, num_val, size, seed)
    return _write_ade_set(data_root, p, 'ade_shapes', _ade_shapes_scene)


def _write_cls_set(data_root: str, p: dict, dataset: str,
                   classes: Sequence[str], draw) -> str:
    """Write an ImageNet-layout set; labels round-robin over ``classes``."""
    h, w = p['size']
    os.makedirs(osp.join(data_root, 'meta'), exist_ok=True)
    for split, num in (('train', p['num_train']), ('val', p['num_val'])):
        for name in classes:
            # every class folder exists even when empty, so a folder scan
            # (CustomDataset without ann_file) finds the same classes
            os.makedirs(osp.join(data_root, split, name), exist_ok=True)
        lines = []
        for i in range(num):
            label = i % len(classes)
            name = classes[label]
            rel = f'{name}/{name}_{i:05d}.png'
            img = draw(_rng(p['seed'], dataset, split, i), h, w, label)
            _imwrite(osp.join(data_root, split, rel), img)
            lines.append(f'{rel} {label}\n')
        with open(osp.join(data_root, 'meta', f'{split}.txt'), 'w') as f:
            f.writelines(lines)
    return data_root


def make_toy_imagenet(data_root: str,
                      num_train: int = 48,
                      num_val: int = 16,
                      size: Size = (256, 256),
                      seed: int = 0) -> str:
    """Write the toy ImageNet-format classification set.

    Labels go round-robin over :data:`TOY_CLS_CLASSES`. Arguments and
    return value as :func:`make_toy_coco`.
    """
    p = _check_params(num_train, num_val, size, seed)
    return _write_cls_set(data_root, p, 'imagenet', TOY_CLS_CLASSES,
                          _draw_cls_image)


def make_toy_shapes(data_root: str,
                    num_train: int = 768,
                    num_val: int = 480,
                    size: Size = (64, 64),
                    seed: int = 0) -> str:
    """Write the toy shapes classification set (ImageNet layout).

    12 classes (:data:`TOY_SHAPES_CLASSES`), labels round-robin; see
    :mod:`mmltm.datasets.toy_shapes`. Arguments and return value as
    :func:`make_toy_coco` (other defaults: 768 / 480 images of 64x64).
    """
    p = _check_params(num_train, num_val, size, seed)
    return _write_cls_set(data_root, p, 'shapes', TOY_SHAPES_CLASSES,
                          draw_shapes_image)


_MAKERS = dict(coco=make_toy_coco, ade=make_toy_ade,
               imagenet=make_toy_imagenet, shapes=make_toy_shapes,
               coco_shapes=make_toy_coco_shapes,
               ade_shapes=make_toy_ade_shapes)


# --------------------------------------------------------------------------
# stamps, publishing, public entry points
# --------------------------------------------------------------------------
def _stamp(name: str, params: dict) -> dict:
    return dict(generator_version=GENERATOR_VERSION, dataset=name, **params)


def _read_stamp(path: str) -> Optional[dict]:
    try:
        with open(osp.join(path, STAMP_NAME)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _is_empty_dir(path: str) -> bool:
    return osp.isdir(path) and not os.listdir(path)


def _check_replaceable(path: str) -> None:
    """Refuse to delete a folder this module did not write."""
    if osp.lexists(path) and not (_is_empty_dir(path)
                                  or _read_stamp(path) is not None):
        raise ValueError(f"'{path}' exists and was not written by "
                         'make_toy_data; refusing to replace it (move it '
                         'away or choose another out_dir)')


def _generate(final: str, name: str, params: dict) -> str:
    """Generate set ``name`` beside its final place ``final``, then swap it
    in.

    Writing into a temporary sibling and renaming it keeps a reader (another
    test process using the same ``data/toy``) from ever seeing a half
    written set: a folder with a stamp is always complete.
    """
    parent = osp.dirname(osp.abspath(final))
    base = osp.basename(osp.abspath(final))
    tmp = osp.join(parent, f'.{base}.tmp-{os.getpid()}-{uuid.uuid4().hex}')
    try:
        _MAKERS[name](tmp, params['num_train'], params['num_val'],
                      tuple(params['size']), params['seed'])
        _write_json(osp.join(tmp, STAMP_NAME), _stamp(name, params))
        for _ in range(3):
            try:
                os.rename(tmp, final)
                return final
            except OSError:
                if not osp.lexists(final):
                    raise
            if _read_stamp(final) == _stamp(name, params):
                return final  # someone else just wrote the same set
            _check_replaceable(final)
            trash = osp.join(parent,
                             f'.{base}.old-{os.getpid()}-{uuid.uuid4().hex}')
            try:
                os.rename(final, trash)
            except OSError:
                continue  # raced with another writer; look again
            shutil.rmtree(trash, ignore_errors=True)
        raise OSError(f'could not move the generated {name} set to {final}')
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextmanager
def _lock(path: str) -> Iterator[None]:
    """An exclusive inter-process lock on ``.<basename>.lock`` beside
    ``path``.

    The ranks of a ``torchrun`` job, or dataloader workers, or parallel test
    processes may all find a toy set missing at once: one generates it, the
    others wait and then reuse it (the rename in :func:`_generate` already
    keeps readers safe; the lock only saves the duplicate work).
    """
    from filelock import FileLock  # a dependency of torch
    path = osp.abspath(path).rstrip(os.sep)
    parent = osp.dirname(path)
    os.makedirs(parent, exist_ok=True)
    # the lock file stays (deleting it would race with a waiting process)
    with FileLock(osp.join(parent, f'.{osp.basename(path)}.lock')):
        yield


def _check_out_dir(out_dir: str) -> str:
    out_dir = os.fspath(out_dir)
    if osp.lexists(out_dir) and not osp.isdir(out_dir):
        raise ValueError(f"out_dir '{out_dir}' exists and is not a directory")
    return out_dir


def make_toy_data(out_dir: str = DEFAULT_TOY_ROOT,
                  num_train: Optional[int] = None,
                  num_val: Optional[int] = None,
                  size: Optional[Size] = None,
                  seed: int = 0,
                  overwrite: bool = False,
                  which: Union[str, Sequence[str]] = TOY_DATASETS
                  ) -> Dict[str, str]:
    """Generate the toy datasets under ``out_dir``.

    Args:
        out_dir (str): Root folder; receives one folder per set (``coco/``,
            ``ade/``, ``imagenet/``, ``shapes/``, ``coco_shapes/``,
            ``ade_shapes/``). Defaults to ``'data/toy'``.
        num_train (int, optional): Training images per dataset. Defaults to
            None: each set's own default (:data:`TOY_DEFAULTS`: 48, 768 for
            shapes, 192 for the shapes scenes).
        num_val (int, optional): Validation images per dataset. Defaults to
            None: each set's default (48 for coco and ade, 16 for
            imagenet, 480 for shapes, 96 for the shapes scenes).
        size (int | tuple[int, int], optional): Image size (H, W), each
            >= 32. Defaults to None: each set's default ((256, 256);
            (64, 64) for shapes).
        seed (int): Non-negative random seed. Defaults to 0.
        overwrite (bool): Allow a non-empty ``out_dir``. Only the dataset
            folders named in ``which`` are replaced, and only if they were
            written by this module (they hold a stamp) or are empty; other
            content of ``out_dir`` is left alone. Defaults to False.
        which (str | Sequence[str]): Datasets to write, among
            :data:`TOY_DATASETS`. Defaults to all of them.

    Returns:
        dict[str, str]: Dataset name -> its data root, e.g.
        ``{'coco': 'data/toy/coco', ...}`` (for ``data_root`` in configs).

    Raises:
        ValueError: On a non-positive count, a bad size/seed/which, or an
            ``out_dir`` that exists and is not empty without ``overwrite``.
    """
    names = _check_which(which)
    params = {n: _params_for(n, num_train, num_val, size, seed) for n in names}
    out_dir = _check_out_dir(out_dir)
    if not overwrite and osp.isdir(out_dir) and os.listdir(out_dir):
        raise ValueError(f"out_dir '{out_dir}' exists and is not empty; "
                         'pass overwrite=True (--overwrite) to replace the '
                         'toy datasets in it')
    for name in names:
        _check_replaceable(osp.join(out_dir, name))
    os.makedirs(out_dir, exist_ok=True)
    return {
        name: _generate(osp.join(out_dir, name), name, params[name])
        for name in names
    }


def ensure_toy_dataset(name: str,
                       data_root: str,
                       num_train: Optional[int] = None,
                       num_val: Optional[int] = None,
                       size: Optional[Size] = None,
                       seed: int = 0) -> str:
    """Return ``data_root`` holding toy set ``name``, generating it if needed.

    The folder is reused when its stamp matches the requested parameters
    (and generator version); otherwise it is (re)generated, under an
    inter-process file lock (a ``.<folder>.lock`` file beside
    ``data_root``). A folder without a stamp (not written by this module)
    is never deleted: a ValueError is raised instead.

    Args:
        name (str): One of :data:`TOY_DATASETS`.
        data_root (str): The folder of the set, e.g. ``'data/toy/coco'``.
        num_train, num_val, size, seed: As :func:`make_toy_data` (None: the
            set's default).

    Returns:
        str: ``data_root``.
    """
    if name not in TOY_DATASETS:
        raise ValueError(f'name must be one of {TOY_DATASETS}, got {name!r}')
    params = _params_for(name, num_train, num_val, size, seed)
    data_root = os.fspath(data_root)
    final = data_root.rstrip('/' + os.sep) or data_root
    if _read_stamp(final) == _stamp(name, params):
        return data_root
    with _lock(final):
        if _read_stamp(final) != _stamp(name, params):  # not made meanwhile
            _check_replaceable(final)
            _generate(final, name, params)
    return data_root


def ensure_toy_data(out_dir: str = DEFAULT_TOY_ROOT,
                    num_train: Optional[int] = None,
                    num_val: Optional[int] = None,
                    size: Optional[Size] = None,
                    seed: int = 0,
                    which: Union[str, Sequence[str]] = TOY_DATASETS
                    ) -> Dict[str, str]:
    """Return the toy datasets under ``out_dir``, generating what is missing.

    A dataset folder is reused when its stamp matches the requested
    parameters (and generator version); otherwise it is regenerated (see
    :func:`ensure_toy_dataset`, also for the file lock). Unlike
    :func:`make_toy_data`, other content in ``out_dir`` is fine, but a
    dataset folder without a stamp (not written by this module) is never
    deleted: a ValueError is raised instead.

    Args and returns: as :func:`make_toy_data` (without ``overwrite``).
    """
    names = _check_which(which)
    params = {n: _params_for(n, num_train, num_val, size, seed) for n in names}
    out_dir = _check_out_dir(out_dir)
    return {
        name: ensure_toy_dataset(name, osp.join(out_dir, name),
                                 **dict(params[name],
                                        size=tuple(params[name]['size'])))
        for name in names
    }
