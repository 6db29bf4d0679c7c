"""The dense toy-shapes scenes (``coco_shapes`` / ``ade_shapes``): stock
loaders, determinism, and that only the stripe direction says the class."""
import hashlib
import json
import os
import os.path as osp

import numpy as np
import pytest
from mmengine.registry import init_default_scope

from mmltm.datasets import toy
from mmltm.datasets.toy_shapes import SCENE_CLASSES, draw_shapes_scene

# small, non-square (catches H/W swaps)
H, W = 96, 128
PARAMS = dict(num_train=4, num_val=3, size=(H, W), seed=0)
SCENES = ('coco_shapes', 'ade_shapes')


def _digest(root: str) -> dict:
    out = {}
    for d, _, files in os.walk(root):
        for f in files:
            with open(osp.join(d, f), 'rb') as fh:
                out[osp.relpath(osp.join(d, f), root)] = hashlib.sha256(
                    fh.read()).hexdigest()
    return out


@pytest.fixture(scope='module')
def scenes(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('scenes'))
    return toy.make_toy_data(root, which=SCENES, **PARAMS)


def test_names_defaults_and_determinism(scenes, tmp_path):
    # appended: the older sets keep their index (it seeds their generators)
    assert toy.TOY_DATASETS == ('coco', 'ade', 'imagenet', 'shapes',
                                'coco_shapes', 'ade_shapes')
    for name in SCENES:
        assert toy.TOY_DEFAULTS[name] == dict(
            num_train=192, num_val=96, size=(256, 256))
    assert toy.TOY_SCENE_COCO_CLASSES == SCENE_CLASSES
    assert toy.TOY_SCENE_COCO_PALETTE == toy.TOY_SCENE_SEG_PALETTE[1:]

    again = toy.make_toy_data(str(tmp_path / 'again'), which=SCENES, **PARAMS)
    for name in SCENES:
        ref = _digest(scenes[name])
        assert len(ref) > PARAMS['num_train'] + PARAMS['num_val']
        assert _digest(again[name]) == ref
    other = toy.make_toy_data(
        str(tmp_path / 'seed1'), which='ade_shapes', **dict(PARAMS, seed=1))
    assert (_digest(other['ade_shapes'])
            ['images/training/ADE_train_00000000.jpg'] !=
            _digest(scenes['ade_shapes'])
            ['images/training/ADE_train_00000000.jpg'])
    # coco and ade scenes are two generator streams, not the same images
    assert (_digest(scenes['coco_shapes'])['train/000000.jpg'] !=
            _digest(scenes['ade_shapes'])
            ['images/training/ADE_train_00000000.jpg'])


def test_coco_shapes_loads_in_stock_coco_dataset(scenes):
    from mmdet.registry import DATASETS
    from pycocotools import mask as mask_utils
    root = scenes['coco_shapes']
    with open(osp.join(root, 'annotations', 'instances_train.json')) as f:
        raw = json.load(f)
    assert [c['name'] for c in raw['categories']] == list(SCENE_CLASSES)
    assert [c['id'] for c in raw['categories']] == [1, 2, 3, 4]
    for ann in raw['annotations']:  # every mask a compressed RLE, no crowd
        assert ann['iscrowd'] == 0 and isinstance(
            ann['segmentation']['counts'], str)
        rle = dict(ann['segmentation'],
                   counts=ann['segmentation']['counts'].encode())
        assert mask_utils.area(rle) == ann['area'] > 0
        assert ann['bbox'] == [
            round(float(v), 2) for v in mask_utils.toBbox(rle)]

    init_default_scope('mmdet')
    dataset = DATASETS.build(
        dict(type='CocoDataset', data_root=root,
             ann_file='annotations/instances_train.json',
             data_prefix=dict(img='train/'),
             metainfo=dict(classes=toy.TOY_SCENE_COCO_CLASSES,
                           palette=toy.TOY_SCENE_COCO_PALETTE),
             pipeline=[dict(type='LoadImageFromFile'),
                       dict(type='LoadAnnotations', with_bbox=True,
                            with_mask=True),
                       dict(type='PackDetInputs')]))
    assert len(dataset) == PARAMS['num_train']
    labels = set()
    for i in range(len(dataset)):
        inst = dataset[i]['data_samples'].gt_instances
        masks = inst.masks.masks
        assert masks.shape[1:] == (H, W)
        # no occlusion: the masks of one image are disjoint
        assert (masks.sum(0) <= 1).all()
        labels |= set(inst.labels.tolist())
    assert labels <= {0, 1, 2, 3} and len(labels) >= 3


def test_ade_shapes_loads_in_stock_ade20k_dataset(scenes):
    import mmcv
    from mmseg.datasets import ADE20KDataset
    from mmseg.registry import DATASETS
    # the label values are real ADE20K ids of the chosen ADE20K classes
    for name, raw_id in zip(toy.TOY_SCENE_SEG_CLASSES,
                            toy.TOY_SCENE_SEG_LABEL_IDS):
        assert ADE20KDataset.METAINFO['classes'][raw_id - 1] == name
        assert tuple(ADE20KDataset.METAINFO['palette'][raw_id - 1]) == \
            toy.TOY_SCENE_SEG_PALETTE[toy.TOY_SCENE_SEG_CLASSES.index(name)]

    init_default_scope('mmseg')
    dataset = DATASETS.build(
        dict(type='ADE20KDataset', data_root=scenes['ade_shapes'],
             data_prefix=dict(img_path='images/validation',
                              seg_map_path='annotations/validation'),
             metainfo=dict(classes=toy.TOY_SCENE_SEG_CLASSES,
                           palette=toy.TOY_SCENE_SEG_PALETTE),
             pipeline=[dict(type='LoadAnnotations',
                            reduce_zero_label=True)]))
    assert len(dataset) == PARAMS['num_val']
    lut = np.full(256, 255, np.uint8)
    lut[list(toy.TOY_SCENE_SEG_LABEL_IDS)] = np.arange(5)
    seen = set()
    for i in range(len(dataset)):
        out = dataset[i]
        raw = mmcv.imread(out['seg_map_path'], flag='unchanged')
        assert raw.shape == (H, W)
        # no "other" pixels: every pixel is background or a labelled shape
        assert set(np.unique(raw).tolist()) <= set(
            toy.TOY_SCENE_SEG_LABEL_IDS)
        np.testing.assert_array_equal(out['gt_seg_map'], lut[raw])
        seen |= set(np.unique(out['gt_seg_map']).tolist())
    assert 0 in seen and len(seen & {1, 2, 3, 4}) >= 3


def _orientation(grey: np.ndarray, mask: np.ndarray):
    """Dominant gradient direction (degrees, mod 180) inside ``mask`` and
    its coherence (0: none, 1: one direction), from the structure tensor."""
    gy, gx = np.gradient(grey)
    jxx, jyy, jxy = ((gx * gx)[mask].sum(), (gy * gy)[mask].sum(),
                     (gx * gy)[mask].sum())
    angle = np.rad2deg(0.5 * np.arctan2(2 * jxy, jxx - jyy)) % 180
    coherence = np.hypot(jxx - jyy, 2 * jxy) / (jxx + jyy)
    return angle, coherence


def test_only_the_stripe_direction_says_the_class():
    """Labelled shapes of every class, and the unlabelled distractors, have
    the same mean colour (random light fills), far from the background's;
    the colours spread widely within a class; the stripes inside a labelled
    shape run across its class's direction, distractors have none."""
    from scipy.ndimage import binary_erosion
    colours = {k: [] for k in range(len(SCENE_CLASSES))}
    distractor, background, counts, errors, flat = [], [], [], [], []
    for i in range(24):
        scene = draw_shapes_scene(np.random.default_rng([7, i]), 128, 128)
        img = scene['img'].astype(np.float64)
        grey = img.mean(-1)
        shapes = np.zeros((128, 128), bool)
        for inst in scene['instances']:
            colours[inst['label']].append(img[inst['mask']].mean(0))
            shapes |= inst['mask']
            inner = binary_erosion(inst['mask'], iterations=2)
            angle, _ = _orientation(grey, inner)
            target = 45.0 * inst['label']
            errors.append(abs((angle - target + 90) % 180 - 90))
        for mask in scene['distractors']:
            distractor.append(img[mask].mean(0))
            shapes |= mask
            flat.append(_orientation(grey, binary_erosion(mask, iterations=2))[1])
        background.append(img[~shapes].mean(0))
        counts.append((len(scene['instances']), len(scene['distractors'])))
    means = np.array([np.mean(colours[k], 0) for k in colours])  # (4, rgb)
    spread = np.mean([np.std(colours[k], 0).mean() for k in colours])
    assert min(len(v) for v in colours.values()) >= 15
    assert spread > 15  # the fill colour is random within a class
    # class means agree within a few grey levels per channel
    assert np.abs(means - means.mean(0)).max() < 12
    assert np.abs(np.mean(distractor, 0) - means.mean(0)).max() < 12
    # shapes are light, the background dark
    assert (means.mean(0) - np.mean(background, 0)).min() > 80
    # the class is the stripes' direction (jitter +-10 degrees)
    assert np.median(errors) < 10 and np.mean(np.array(errors) < 20) > 0.9
    assert np.median(flat) < 0.5
    # every scene has several labelled shapes and at least one distractor
    assert all(n >= 3 and d >= 1 for n, d in counts), counts
