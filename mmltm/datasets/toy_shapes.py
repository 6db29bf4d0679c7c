"""The toy "shapes" classification set: a harder toy ImageNet.

The 4-class toy ImageNet of :mod:`mmltm.datasets.toy` is solved by colour
alone (every class has its own hue) and saturates at 100 % top-1 for every
model, so it cannot tell a good token merge from a bad one. This set makes
the *shape* the only cue:

* :data:`TOY_SHAPES_CLASSES`: 12 shape classes, several of them close
  (square / rectangle, pentagon / hexagon / circle, ring / crescent /
  circle, cross / star), each near its upright pose (+-15 degrees), of
  random size, near the centre;
* random colours: the shape is light (each channel 130-255, flat or smooth
  noise), the background dark (0-100, flat, striped, checkered, dotted or
  smooth noise), so neither hue nor texture says the class, while the
  outline is easy to find (with a random polarity, too, the toy Swin-T
  stays at chance, 7-10 % top-1, within its toy schedule: measured);
* distractors: up to 2 smaller shapes of other classes (a quarter to 0.4 of
  the target's radius, the second drawn over the target), a clutter line,
  and sensor noise.

The label is the class of the largest shape. Labels go round-robin over
the image index (balanced splits); every image comes from its own random
generator seeded with ``(seed, 'shapes', split, index)``, as in the other
toy sets. Layout (the toy ImageNet's, read by mmpretrain ``ImageNet`` /
``CustomDataset`` with ``metainfo=dict(classes=TOY_SHAPES_CLASSES)``)::

    shapes/{train,val}/<class>/<class>_00000.png
    shapes/meta/{train,val}.txt          # "<class>/<file> <label>" lines

:func:`draw_shapes_scene` gives the same images with the visible mask of
every shape, for the dense ``coco_shapes`` / ``ade_shapes`` sets
(:mod:`mmltm.datasets.toy`): the class of a mask is again its outline.

How hard it is, is set by the module constants below (target and
distractor radii, fill contrast, clutter, noise); they were tuned so that
the toy Swin-T baseline (``configs/toy/swin_t_shapes_toy.py``) ends its
schedule between 60 % and 90 % top-1 (measured figures: the notes of the
change and the README).
"""
from typing import Tuple

import numpy as np

from .toy_classes import TOY_SHAPES_CLASSES  # noqa: F401 (re-exported)


# Difficulty knobs (fractions of the image side unless said otherwise).
_TARGET_RADIUS = (0.32, 0.4)
_DISTRACTOR_SCALE = (0.25, 0.4)  # x the target radius
_NUM_DISTRACTORS = (0, 2)  # inclusive
_MIN_FILL_CONTRAST = 80.0  # L2 distance of the mean RGB of the two fills
_FILL_SPREAD = 40.0  # max per-channel difference of a shape's 2 colours
_BACKGROUND_SPREAD = 30.0  # the same for the background
_NUM_CLUTTER_LINES = (0, 1)  # inclusive
_MAX_ROTATION_DEG = 15.0  # shapes stay near their upright pose
# fills of the shapes: flat or smooth noise; the background may also be
# striped, checkered or dotted (textures 1-3)
_SHAPE_TEXTURES = (0, 4)
_BACKGROUND_TEXTURES = (0, 1, 2, 3, 4)
# colour channels of the shapes are light, of the background dark: the
# hue is random, the polarity is not (so the outline is easy to find)
_SHAPE_VALUES = (130.0, 255.0)
_BACKGROUND_VALUES = (0.0, 100.0)
_TARGET_JITTER = 0.12  # of the side: how far the target strays from centre
_NOISE_STD = 8.0
_SUPERSAMPLE = 4  # shapes are drawn 4x larger, then area-averaged

# Unit outlines (max radius 1, centred on 0) of the polygon classes.
_UNIT_POLYGONS = {
    'triangle': [(np.cos(a), np.sin(a)) for a in np.arange(3) * 2 * np.pi / 3],
    'square': [(np.cos(a), np.sin(a))
               for a in np.pi / 4 + np.arange(4) * np.pi / 2],
    'pentagon': [(np.cos(a), np.sin(a)) for a in np.arange(5) * 2 * np.pi / 5],
    'hexagon': [(np.cos(a), np.sin(a)) for a in np.arange(6) * np.pi / 3],
    'star': [((1.0 if k % 2 == 0 else 0.45) * np.cos(k * np.pi / 5),
              (1.0 if k % 2 == 0 else 0.45) * np.sin(k * np.pi / 5))
             for k in range(10)],
    'cross': [(0.3, 0.3), (0.3, 0.95), (-0.3, 0.95), (-0.3, 0.3),
              (-0.95, 0.3), (-0.95, -0.3), (-0.3, -0.3), (-0.3, -0.95),
              (0.3, -0.95), (0.3, -0.3), (0.95, -0.3), (0.95, 0.3)],
    'arrow': [(-1.0, -0.22), (0.15, -0.22), (0.15, -0.62), (1.0, 0.0),
              (0.15, 0.62), (0.15, 0.22), (-1.0, 0.22)],
    'lshape': [(-0.65, -0.95), (-0.1, -0.95), (-0.1, 0.4), (0.65, 0.4),
               (0.65, 0.95), (-0.65, 0.95)],
}


def _shape_alpha(kind: str, cx: float, cy: float, r: float,
                 rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Anti-aliased coverage (H, W) in [0, 1] of one ``kind`` shape."""
    import cv2
    ss = _SUPERSAMPLE
    canvas = np.zeros((h * ss, w * ss), np.uint8)
    theta = np.deg2rad(rng.uniform(-_MAX_ROTATION_DEG, _MAX_ROTATION_DEG))
    c = np.array([cx, cy]) * ss
    rs = r * ss

    def disc(center, radius, value):
        cv2.circle(canvas, tuple(int(round(v)) for v in center),
                   max(1, int(round(radius))), value, -1, cv2.LINE_AA)

    if kind == 'circle':
        disc(c, rs, 255)
    elif kind == 'ring':
        disc(c, rs, 255)
        disc(c, rs * rng.uniform(0.45, 0.62), 0)
    elif kind == 'crescent':
        disc(c, rs, 255)
        shift = rs * rng.uniform(0.38, 0.55)
        disc(c + shift * np.array([np.cos(theta), np.sin(theta)]),
             rs * rng.uniform(0.8, 0.92), 0)
    else:
        if kind == 'rectangle':
            aspect = rng.uniform(1.7, 2.4)
            pts = np.array([(-1, -1), (1, -1), (1, 1), (-1, 1)], np.float64)
            pts *= np.array([1.0, 1.0 / aspect])
            pts /= np.linalg.norm(pts[0])
        else:
            pts = np.array(_UNIT_POLYGONS[kind], dtype=np.float64)
        rot = np.array([[np.cos(theta), -np.sin(theta)],
                        [np.sin(theta), np.cos(theta)]])
        poly = pts @ rot.T * rs + c
        cv2.fillPoly(canvas, [np.round(poly).astype(np.int32)], 255,
                     cv2.LINE_AA)
    small = cv2.resize(canvas, (w, h), interpolation=cv2.INTER_AREA)
    return small.astype(np.float32) / 255.0


def _stripes(xs: np.ndarray, ys: np.ndarray, angle: float,
             period: float) -> np.ndarray:
    """Binary stripes (0 / 1) across direction ``angle`` (radians) with
    ``period`` px, on the pixel grid ``xs``, ``ys``."""
    proj = xs * np.cos(angle) + ys * np.sin(angle)
    return (np.sin(2 * np.pi * proj / period) > 0).astype(np.float32)


def _texture(rng: np.random.Generator, h: int, w: int, spread: float,
             kinds: Tuple[int, ...],
             value_range: Tuple[float, float]) -> Tuple[np.ndarray,
                                                        np.ndarray]:
    """A random fill (H, W, 3): a colour drawn per channel in
    ``value_range`` and one at most ``spread`` from it, mixed by a texture
    among ``kinds``; and its mean colour."""
    import cv2
    c1 = rng.uniform(*value_range, 3)
    c2 = np.clip(c1 + rng.uniform(-spread, spread, 3), 0, 255)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    kind = kinds[int(rng.integers(len(kinds)))]
    if kind == 0:  # flat
        t = np.zeros((h, w), np.float32)
    elif kind == 1:  # stripes
        ang = rng.uniform(0, np.pi)
        t = _stripes(xs, ys, ang, rng.uniform(3, 9))
    elif kind == 2:  # checker
        cell = rng.uniform(3, 8)
        t = ((np.floor(xs / cell) + np.floor(ys / cell)) % 2).astype(
            np.float32)
    elif kind == 3:  # dots
        cell = rng.uniform(4, 9)
        dx = (xs % cell) - cell / 2
        dy = (ys % cell) - cell / 2
        t = (dx * dx + dy * dy < (cell * 0.3)**2).astype(np.float32)
    else:  # smooth noise
        coarse = rng.uniform(0, 1, (max(2, h // 8), max(2, w // 8)))
        t = cv2.resize(coarse.astype(np.float32), (w, h),
                       interpolation=cv2.INTER_CUBIC)
        t = np.clip(t, 0, 1)
    fill = c1[None, None] * (1 - t[..., None]) + c2[None, None] * t[..., None]
    return fill.astype(np.float32), fill.reshape(-1, 3).mean(0)


def _contrasting_fills(rng: np.random.Generator, h: int, w: int,
                       ref_mean: np.ndarray) -> np.ndarray:
    """A fill whose mean colour differs from ``ref_mean`` enough to see."""
    for _ in range(50):
        fill, mean = _texture(rng, h, w, _FILL_SPREAD, _SHAPE_TEXTURES,
                              _SHAPE_VALUES)
        if np.linalg.norm(mean - ref_mean) >= _MIN_FILL_CONTRAST:
            return fill
    return fill  # practically unreachable; keeps the draw deterministic


def _place(rng: np.random.Generator, r: float, h: int,
           w: int) -> Tuple[float, float]:
    """A centre keeping most of a radius-``r`` shape inside the image."""
    m = 0.8 * r + 1
    return rng.uniform(m, w - m), rng.uniform(m, h - m)


def _clutter_lines(rng: np.random.Generator, img: np.ndarray,
                   count: Tuple[int, int]) -> np.ndarray:
    """``img`` (H, W, 3) with ``count`` (inclusive range) anti-aliased
    lines of random colours, 1-2 px wide, drawn over it."""
    import cv2
    h, w = img.shape[:2]
    for _ in range(int(rng.integers(count[0], count[1] + 1))):
        p0 = (int(rng.integers(w)), int(rng.integers(h)))
        p1 = (int(rng.integers(w)), int(rng.integers(h)))
        line = np.zeros((h, w), np.uint8)
        cv2.line(line, p0, p1, 255, int(rng.integers(1, 3)), cv2.LINE_AA)
        a = (line.astype(np.float32) / 255.0)[..., None]
        img = img * (1 - a) + rng.uniform(0, 255, 3)[None, None] * a
    return img


def draw_shapes_layers(rng: np.random.Generator, h: int, w: int,
                       label: int) -> dict:
    """Draw one image of class ``TOY_SHAPES_CLASSES[label]`` and say where
    each shape is.

    The target (the largest shape, whose class is the label) near the
    centre, up to :data:`_NUM_DISTRACTORS` smaller shapes of other classes
    (the second one over the target), clutter lines over everything and
    sensor noise.

    Args:
        rng (np.random.Generator): The image's own generator.
        h (int): Image height.
        w (int): Image width.
        label (int): Index into :data:`TOY_SHAPES_CLASSES`.

    Returns:
        dict: ``img``, the (h, w, 3) uint8 RGB image; ``layers``, the
        shapes in drawing order (later ones cover earlier ones), each
        ``dict(label=<index into TOY_SHAPES_CLASSES>, target=<bool>,
        alpha=<(h, w) float32 coverage in [0, 1]>)``.
    """
    s = min(h, w)
    kind = TOY_SHAPES_CLASSES[label]
    background, bg_mean = _texture(rng, h, w, _BACKGROUND_SPREAD,
                                   _BACKGROUND_TEXTURES, _BACKGROUND_VALUES)
    img = background.copy()

    r = s * rng.uniform(*_TARGET_RADIUS)
    cx = w / 2 + s * rng.uniform(-_TARGET_JITTER, _TARGET_JITTER)
    cy = h / 2 + s * rng.uniform(-_TARGET_JITTER, _TARGET_JITTER)
    others = [c for c in TOY_SHAPES_CLASSES if c != kind]
    n_distractors = int(rng.integers(_NUM_DISTRACTORS[0],
                                     _NUM_DISTRACTORS[1] + 1))
    # distractors drawn before the target sit behind it, the last one
    # (when there are two or more) in front of it
    in_front = n_distractors >= 2
    shapes = []
    for k in range(n_distractors):
        other = others[int(rng.integers(len(others)))]
        rd = r * rng.uniform(*_DISTRACTOR_SCALE)
        dx, dy = _place(rng, rd, h, w)
        shapes.append((other, dx, dy, rd, False))
    target = (kind, cx, cy, r, True)
    order = shapes[:-1] + [target] + shapes[-1:] if in_front \
        else shapes + [target]
    layers = []
    for name, x, y, rad, is_target in order:
        alpha = _shape_alpha(name, x, y, rad, rng, h, w)
        fill = _contrasting_fills(rng, h, w, bg_mean)
        img = img * (1 - alpha[..., None]) + fill * alpha[..., None]
        layers.append(dict(label=TOY_SHAPES_CLASSES.index(name),
                           target=is_target, alpha=alpha))

    # clutter lines of random colours over everything
    img = _clutter_lines(rng, img, _NUM_CLUTTER_LINES)
    img = img + rng.normal(0, _NOISE_STD, img.shape)
    return dict(img=np.clip(np.round(img), 0, 255).astype(np.uint8),
                layers=layers)


def draw_shapes_image(rng: np.random.Generator, h: int, w: int,
                      label: int) -> np.ndarray:
    """The image of :func:`draw_shapes_layers` alone ((h, w, 3) uint8 RGB):
    one image of the shapes classification set."""
    return draw_shapes_layers(rng, h, w, label)['img']


# --------------------------------------------------------------------------
# dense labels (the ``coco_shapes`` / ``ade_shapes`` sets of toy.py)
# --------------------------------------------------------------------------
def draw_shapes_scene(rng: np.random.Generator, h: int, w: int,
                      label: int) -> dict:
    """One image of the shapes set with the visible mask of every shape.

    The dense sets are the classification images densely labelled, so that
    the class of a mask is again said by its outline alone, a property of
    the whole shape (a third of the image wide) that only the deep stages
    see whole.

    Args:
        rng (np.random.Generator): The image's own generator.
        h (int): Image height.
        w (int): Image width.
        label (int): The target's class, an index into
            :data:`TOY_SHAPES_CLASSES`.

    Returns:
        dict: ``img`` ((h, w, 3) uint8 RGB); ``instances``, the target,
        ``[dict(label=label, mask=<(h, w) bool>)]``; and ``distractors``,
        the smaller shapes, each ``dict(label=..., mask=...)``. A mask holds
        the pixels the shape covers by at least half and no later shape
        covers by half (empty masks are left out).
    """
    drawn = draw_shapes_layers(rng, h, w, label)
    covered = np.zeros((h, w), bool)
    instances, distractors = [], []
    for layer in reversed(drawn['layers']):  # the front shape first
        inside = layer['alpha'] >= 0.5
        mask = inside & ~covered
        covered |= inside
        if mask.any():
            (instances if layer['target'] else distractors).insert(
                0, dict(label=layer['label'], mask=mask))
    return dict(img=drawn['img'], instances=instances,
                distractors=distractors)
