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

:func:`draw_shapes_scene` draws the dense scenes of the ``coco_shapes`` /
``ade_shapes`` sets (:mod:`mmltm.datasets.toy`) from the same helpers:
several shapes of random outline on a background as here, the labelled ones
filled with fine stripes whose direction is the class
(:data:`SCENE_CLASSES`), the distractors with the fills of this set.

How hard it is, is set by the module constants below (target and
distractor radii, fill contrast, clutter, noise); they were tuned so that
the toy Swin-T baseline (``configs/toy/swin_t_shapes_toy.py``) ends its
schedule between 60 % and 90 % top-1 (measured figures: the notes of the
change and the README).
"""
from typing import Tuple

import numpy as np

#: the 12 classes, sorted (= folder-scan order of ``CustomDataset``)
TOY_SHAPES_CLASSES = ('arrow', 'circle', 'crescent', 'cross', 'hexagon',
                      'lshape', 'pentagon', 'rectangle', 'ring', 'square',
                      'star', 'triangle')

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


def draw_shapes_image(rng: np.random.Generator, h: int, w: int,
                      label: int) -> np.ndarray:
    """Draw one image of class ``TOY_SHAPES_CLASSES[label]`` (uint8 RGB).

    Args:
        rng (np.random.Generator): The image's own generator.
        h (int): Image height.
        w (int): Image width.
        label (int): Index into :data:`TOY_SHAPES_CLASSES`.

    Returns:
        np.ndarray: (h, w, 3) uint8 RGB image.
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
    layers = []
    for k in range(n_distractors):
        other = others[int(rng.integers(len(others)))]
        rd = r * rng.uniform(*_DISTRACTOR_SCALE)
        dx, dy = _place(rng, rd, h, w)
        layers.append((other, dx, dy, rd))
    order = layers[:-1] + [(kind, cx, cy, r)] + layers[-1:] if in_front \
        else layers + [(kind, cx, cy, r)]
    for name, x, y, rad in order:
        alpha = _shape_alpha(name, x, y, rad, rng, h, w)[..., None]
        fill = _contrasting_fills(rng, h, w, bg_mean)
        img = img * (1 - alpha) + fill * alpha

    # clutter lines of random colours over everything
    img = _clutter_lines(rng, img, _NUM_CLUTTER_LINES)
    img = img + rng.normal(0, _NOISE_STD, img.shape)
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------
# dense scenes (the ``coco_shapes`` / ``ade_shapes`` sets of toy.py)
# --------------------------------------------------------------------------
#: the labelled classes of the dense scenes (COCO category ids 1..4, ADE
#: label order 1..4 after the background): a light shape of any outline
#: filled with fine stripes across the direction 0, 45, 90 or 135 degrees
SCENE_CLASSES = ('stripes0', 'stripes45', 'stripes90', 'stripes135')
_SCENE_ANGLES_DEG = (0.0, 45.0, 90.0, 135.0)

# Scene knobs (fractions of the short side unless said otherwise).
_SCENE_RADIUS = (0.08, 0.13)  # 20-33 px radius at 256 x 256
_SCENE_NUM_OBJECTS = (5, 9)  # labelled shapes per image, inclusive
_SCENE_NUM_DISTRACTORS = (1, 2)  # unlabelled shapes per image, inclusive
_SCENE_NUM_CLUTTER_LINES = (1, 3)  # background lines, inclusive
_SCENE_GAP = 2.0  # px between the discs of two shapes (no occlusion)
_STRIPE_PERIOD = (5.0, 9.0)  # px: about two 4-px patch tokens
_STRIPE_ANGLE_JITTER_DEG = 10.0
_STRIPE_MEAN = (160.0, 225.0)  # per channel: the mean of the distractors'
_STRIPE_CONTRAST = (50.0, 70.0)  # light minus dark stripe, every channel


def _striped_fill(rng: np.random.Generator, h: int, w: int,
                  label: int) -> np.ndarray:
    """The fill (H, W, 3) of a labelled scene shape: two random light
    colours ``_STRIPE_CONTRAST`` apart in stripes across the class's
    direction (+- jitter), of random period."""
    mean = rng.uniform(*_STRIPE_MEAN, 3)
    half = rng.uniform(*_STRIPE_CONTRAST) / 2
    angle = np.deg2rad(_SCENE_ANGLES_DEG[label] + rng.uniform(
        -_STRIPE_ANGLE_JITTER_DEG, _STRIPE_ANGLE_JITTER_DEG))
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    t = _stripes(xs, ys, angle, rng.uniform(*_STRIPE_PERIOD))[..., None]
    light, dark = np.clip(mean + half, 0, 255), np.clip(mean - half, 0, 255)
    return (dark[None, None] * (1 - t) + light[None, None] * t).astype(
        np.float32)


def draw_shapes_scene(rng: np.random.Generator, h: int, w: int) -> dict:
    """Draw one dense scene of the toy-shapes recipe.

    Shapes of random outline (any of :data:`TOY_SHAPES_CLASSES`) at random
    places (their discs do not overlap, so every mask is whole) on a random
    dark textured background with clutter lines (as
    :func:`draw_shapes_image`). A labelled shape is filled with fine light
    stripes whose direction is its class (:data:`SCENE_CLASSES`,
    :func:`_striped_fill`); a distractor with a flat or smooth-noise light
    fill (:func:`_contrasting_fills`, as the shapes images). Hue, mean
    brightness, size and outline are independent of the class: only the
    direction of the stripes says it, a cue a few pixels fine (a 2x2
    average of 4-px patch tokens blurs it away).

    Args:
        rng (np.random.Generator): The image's own generator.
        h (int): Image height.
        w (int): Image width.

    Returns:
        dict: ``img`` ((h, w, 3) uint8 RGB); ``instances``, the labelled
        shapes in drawing order, each ``dict(label=<index into
        SCENE_CLASSES>, mask=<(h, w) bool, coverage >= 0.5>)``; and
        ``distractors``, the masks of the unlabelled shapes.
    """
    s = min(h, w)
    img, bg_mean = _texture(rng, h, w, _BACKGROUND_SPREAD,
                            _BACKGROUND_TEXTURES, _BACKGROUND_VALUES)
    img = _clutter_lines(rng, img, _SCENE_NUM_CLUTTER_LINES)

    n_objects = int(rng.integers(_SCENE_NUM_OBJECTS[0],
                                 _SCENE_NUM_OBJECTS[1] + 1))
    n_distractors = int(rng.integers(_SCENE_NUM_DISTRACTORS[0],
                                     _SCENE_NUM_DISTRACTORS[1] + 1))
    labels = [int(rng.integers(len(SCENE_CLASSES))) for _ in range(n_objects)]
    labels += [None] * n_distractors
    discs, instances, distractors = [], [], []
    for k in rng.permutation(len(labels)):
        label = labels[k]
        for _ in range(50):  # a free place, else the shape is left out
            r = s * rng.uniform(*_SCENE_RADIUS)
            x, y = rng.uniform(r + 1, w - r - 1), rng.uniform(r + 1, h - r - 1)
            if all(np.hypot(x - dx, y - dy) >= r + dr + _SCENE_GAP
                   for dx, dy, dr in discs):
                break
        else:
            continue
        discs.append((x, y, r))
        outline = TOY_SHAPES_CLASSES[int(rng.integers(len(TOY_SHAPES_CLASSES)))]
        alpha = _shape_alpha(outline, x, y, r, rng, h, w)
        fill = (_contrasting_fills(rng, h, w, bg_mean) if label is None else
                _striped_fill(rng, h, w, label))
        img = img * (1 - alpha[..., None]) + fill * alpha[..., None]
        mask = alpha >= 0.5
        if not mask.any():
            continue
        if label is None:
            distractors.append(mask)
        else:
            instances.append(dict(label=label, mask=mask))
    img = img + rng.normal(0, _NOISE_STD, img.shape)
    return dict(img=np.clip(np.round(img), 0, 255).astype(np.uint8),
                instances=instances, distractors=distractors)
