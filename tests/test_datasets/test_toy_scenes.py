"""The dense toy-shapes sets (``coco_shapes`` / ``ade_shapes``): the shapes
classification images densely labelled, read by the toy dataset classes."""
import hashlib
import json
import os
import os.path as osp

import numpy as np
import pytest
from mmengine.registry import init_default_scope

from mmltm.datasets import toy
from mmltm.datasets.toy_shapes import (TOY_SHAPES_CLASSES, draw_shapes_image,
                                       draw_shapes_layers, draw_shapes_scene)

# small, non-square (catches H/W swaps)
H, W = 48, 64
PARAMS = dict(num_train=14, num_val=3, size=(H, W), seed=0)
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
    for name in SCENES:  # the shapes set's counts and size
        assert toy.TOY_DEFAULTS[name] == toy.TOY_DEFAULTS['shapes'] == dict(
            num_train=768, num_val=480, size=(64, 64))
    assert toy.TOY_SCENE_COCO_CLASSES == TOY_SHAPES_CLASSES
    assert toy.TOY_SCENE_SEG_CLASSES == ('background', ) + TOY_SHAPES_CLASSES
    assert toy.TOY_SCENE_COCO_PALETTE == toy.TOY_SCENE_SEG_PALETTE[1:]
    assert len(set(toy.TOY_SCENE_SEG_PALETTE)) == 13

    again = toy.make_toy_data(str(tmp_path / 'again'), which=SCENES, **PARAMS)
    for name in SCENES:
        ref = _digest(scenes[name])
        assert len(ref) > PARAMS['num_train'] + PARAMS['num_val']
        assert _digest(again[name]) == ref
    # coco and ade are two generator streams, not the same images
    assert (_digest(scenes['coco_shapes'])['train/000000.jpg'] !=
            _digest(scenes['ade_shapes'])
            ['images/training/ADE_train_00000000.jpg'])


def test_the_classification_set_did_not_change(tmp_path):
    """Drawing the masks too left the shapes set byte-identical: this digest
    of its first 24 / 12 images was taken with the generator before (the
    trained toy checkpoints of the README's tables are on these images)."""
    root = toy.make_toy_shapes(str(tmp_path), num_train=24, num_val=12)
    digest = hashlib.sha256()
    for d, _, files in sorted(os.walk(root)):
        for f in sorted(files):
            if f.endswith('.png'):
                with open(osp.join(d, f), 'rb') as fh:
                    digest.update(fh.read())
    assert digest.hexdigest() == (
        '5f5a8b49426d0aadf41153971cd982cf7d3d047cd47d60452f78d5b1db82dbc0')


def test_the_dense_images_are_the_classification_images():
    """Same generator, same image: the scene adds masks and draws nothing
    else; the masks are the shapes' visible pixels, the target's the
    largest, and they do not overlap."""
    for i in range(12):
        label = i % 12
        img = draw_shapes_image(np.random.default_rng([3, i]), H, W, label)
        scene = draw_shapes_scene(np.random.default_rng([3, i]), H, W, label)
        layers = draw_shapes_layers(np.random.default_rng([3, i]), H, W,
                                    label)['layers']
        np.testing.assert_array_equal(scene['img'], img)
        (target, ) = scene['instances']
        assert target['label'] == label
        assert sum(layer['target'] for layer in layers) == 1
        masks = [target['mask']] + [d['mask'] for d in scene['distractors']]
        assert (np.sum(masks, 0) <= 1).all()
        assert all(target['mask'].sum() > m.sum() for m in masks[1:])
        assert target['mask'].mean() > 0.1  # a third of the image wide
        # a shape covered by a later one loses those pixels
        order = [layer['target'] for layer in layers]
        if order[-1] is False and True in order:
            front = layers[-1]['alpha'] >= 0.5
            assert not (target['mask'] & front).any()


def test_coco_shapes_one_instance_per_image_distractors_ignored(scenes):
    from pycocotools import mask as mask_utils
    from mmdet.registry import DATASETS
    root = scenes['coco_shapes']
    with open(osp.join(root, 'annotations', 'instances_train.json')) as f:
        raw = json.load(f)
    assert [c['name'] for c in raw['categories']] == list(TOY_SHAPES_CLASSES)
    assert [c['id'] for c in raw['categories']] == list(range(1, 13))
    targets = [a for a in raw['annotations'] if not a['iscrowd']]
    # one target per image, its class round-robin over the image index
    assert [(a['image_id'], a['category_id']) for a in targets] == [
        (i + 1, i % 12 + 1) for i in range(PARAMS['num_train'])]
    crowds = [a for a in raw['annotations'] if a['iscrowd']]
    assert crowds  # the distractors
    for ann in raw['annotations']:
        seg = ann['segmentation']
        rle = (mask_utils.frPyObjects(seg, H, W) if ann['iscrowd'] else
               dict(seg, counts=seg['counts'].encode()))
        assert mask_utils.area(rle) == ann['area'] > 0

    init_default_scope('mmdet')
    dataset = DATASETS.build(
        dict(type='ToyCocoDataset', data_root=root, toy_set='coco_shapes',
             toy_params=PARAMS, ann_file='annotations/instances_train.json',
             data_prefix=dict(img='train/'),
             metainfo=dict(classes=toy.TOY_SCENE_COCO_CLASSES,
                           palette=toy.TOY_SCENE_COCO_PALETTE),
             pipeline=[dict(type='LoadImageFromFile'),
                       dict(type='LoadAnnotations', with_bbox=True,
                            with_mask=True),
                       dict(type='PackDetInputs')]))
    ignored = 0
    for i in range(len(dataset)):
        sample = dataset[i]['data_samples']
        assert sample.gt_instances.labels.tolist() == [i % 12]
        assert sample.gt_instances.masks.masks.shape == (1, H, W)
        ignored += len(sample.ignored_instances)
    assert ignored == len(crowds)


def test_ade_shapes_labels_the_target_and_ignores_distractors(scenes):
    import mmcv
    from mmseg.registry import DATASETS
    init_default_scope('mmseg')
    dataset = DATASETS.build(
        dict(type='ToyShapesSegDataset', data_root=scenes['ade_shapes'],
             toy_set='ade_shapes', toy_params=PARAMS,
             data_prefix=dict(img_path='images/training',
                              seg_map_path='annotations/training'),
             pipeline=[dict(type='LoadAnnotations',
                            reduce_zero_label=False)]))
    # its own classes (no ADE20K ids), from the generator's constants
    assert dataset.metainfo['classes'] == toy.TOY_SCENE_SEG_CLASSES
    assert [tuple(c) for c in dataset.metainfo['palette']] == \
        toy.TOY_SCENE_SEG_PALETTE
    assert len(dataset) == PARAMS['num_train']
    ignored = 0
    for i in range(len(dataset)):
        out = dataset[i]
        raw = mmcv.imread(out['seg_map_path'], flag='unchanged')
        assert raw.shape == (H, W)
        values = set(np.unique(raw).tolist())
        assert {0, i % 12 + 1} <= values <= {0, i % 12 + 1, 255}
        np.testing.assert_array_equal(out['gt_seg_map'], raw)
        ignored += int(255 in values)
    assert ignored > 0
