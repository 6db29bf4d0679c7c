"""The early data check of the Checked*/Toy* datasets, and toy data that
generates on first use (mmltm/datasets/checked.py)."""
import json
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
from mmengine.config import Config
from mmengine.registry import init_default_scope
from PIL import Image

from mmltm.datasets import (STAMP_NAME, TOY_COCO_CLASSES, TOY_SEG_CLASSES,
                            TOY_SHAPES_CLASSES, DataCheckError, make_toy_data,
                            read_image_size)

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
H, W = 64, 96  # non-square: catches width/height swaps
SMALL = dict(num_train=3, num_val=2, size=(H, W), seed=0)


def _coco_cfg(root: str, **extra) -> dict:
    return dict(
        type='CheckedCocoDataset',
        data_root=root,
        ann_file='annotations/instances_train.json',
        data_prefix=dict(img='train/'),
        metainfo=dict(classes=TOY_COCO_CLASSES),
        pipeline=[],
        **extra)


def _ade_cfg(root: str, **extra) -> dict:
    return dict(
        type='CheckedADE20KDataset',
        data_root=root,
        data_prefix=dict(
            img_path='images/training', seg_map_path='annotations/training'),
        metainfo=dict(classes=TOY_SEG_CLASSES),
        pipeline=[],
        **extra)


def _build(scope: str, cfg: dict):
    registry = __import__(f'{scope}.registry', fromlist=['DATASETS'])
    init_default_scope(scope)
    return registry.DATASETS.build(cfg)


@pytest.fixture
def toy(tmp_path):
    return make_toy_data(str(tmp_path / 'toy'), which=('coco', 'ade'),
                         **SMALL)


def _write_image(path: str, w: int, h: int) -> None:
    Image.fromarray(np.full((h, w, 3), 128, np.uint8)).save(path)


def test_good_toy_data_passes_and_loads(toy):
    coco = _build('mmdet', _coco_cfg(toy['coco']))
    assert len(coco) == SMALL['num_train']
    ade = _build('mmseg', _ade_cfg(toy['ade']))
    assert len(ade) == SMALL['num_train']


def test_coco_1x1_image_is_named(toy):
    bad = osp.join(toy['coco'], 'train', '000001.jpg')
    _write_image(bad, 1, 1)
    with pytest.raises(DataCheckError) as err:
        _build('mmdet', _coco_cfg(toy['coco']))
    ann = osp.join(toy['coco'], 'annotations/instances_train.json')
    assert str(err.value) == (
        f"CheckedCocoDataset: 1 bad file(s) in '{ann}':\n"
        f'  {bad}: image is 1x1 (width x height), smaller than the 2 px '
        'per side allowed (min_image_size)\n'
        'Fix or remove them (a toy set: delete its folder and it is '
        'regenerated), or pass check_images=False to skip this check.')


def test_coco_size_mismatch_and_unreadable_are_named(toy):
    swapped = osp.join(toy['coco'], 'train', '000000.jpg')
    _write_image(swapped, H, W)  # transposed
    broken = osp.join(toy['coco'], 'train', '000002.jpg')
    with open(broken, 'w') as f:
        f.write('not an image')
    with pytest.raises(DataCheckError) as err:
        _build('mmdet', _coco_cfg(toy['coco']))
    msg = str(err.value)
    assert '2 bad file(s)' in msg
    assert (f'{swapped}: image is {H}x{W} (width x height) but the '
            f'annotation file says {W}x{H}') in msg
    assert f'{broken}: cannot be read as an image' in msg
    # the check can be turned off on purpose
    dataset = _build('mmdet', _coco_cfg(toy['coco'], check_images=False))
    assert len(dataset) == SMALL['num_train']


@pytest.mark.parametrize('content', ['not json {', '\x89PNG\x00\xff'])
def test_coco_annotation_not_json_is_named(toy, content):
    ann = osp.join(toy['coco'], 'annotations/instances_train.json')
    with open(ann, 'w', encoding='latin-1') as f:
        f.write(content)
    with pytest.raises(DataCheckError,
                       match=f"annotation file '{ann}' is not valid JSON"):
        _build('mmdet', _coco_cfg(toy['coco']))


def test_coco_annotation_without_images_is_named(toy):
    ann = osp.join(toy['coco'], 'annotations/instances_train.json')
    with open(ann, 'w') as f:
        json.dump(dict(images=[], annotations=[], categories=[]), f)
    with pytest.raises(DataCheckError,
                       match=f"annotation file '{ann}' lists no images"):
        _build('mmdet', _coco_cfg(toy['coco']))


def test_ade_1x1_and_mismatched_maps_are_named(toy):
    img_dir = osp.join(toy['ade'], 'images', 'training')
    seg_dir = osp.join(toy['ade'], 'annotations', 'training')
    tiny = osp.join(img_dir, 'ADE_train_00000000.jpg')
    _write_image(tiny, 1, 1)
    Image.fromarray(np.ones((1, 1), np.uint8)).save(
        osp.join(seg_dir, 'ADE_train_00000000.png'))
    other = osp.join(img_dir, 'ADE_train_00000002.jpg')
    other_seg = osp.join(seg_dir, 'ADE_train_00000002.png')
    Image.fromarray(np.ones((H // 2, W), np.uint8)).save(other_seg)
    with pytest.raises(DataCheckError) as err:
        _build('mmseg', _ade_cfg(toy['ade']))
    msg = str(err.value)
    assert msg.startswith(
        f"CheckedADE20KDataset: 2 bad file(s) in '{img_dir}':\n")
    assert (f'  {tiny}: image is 1x1 (width x height), smaller than the 2 '
            'px per side allowed (min_image_size)\n') in msg
    assert (f'  {other}: image is {W}x{H} (width x height) but its '
            f'segmentation map {other_seg} is {W}x{H // 2}\n') in msg


def test_bad_check_arguments(toy):
    with pytest.raises(ValueError, match='min_image_size must be a positive'):
        _build('mmdet', _coco_cfg(toy['coco'], min_image_size=0))
    with pytest.raises(TypeError, match='check_images must be True or False'):
        _build('mmseg', _ade_cfg(toy['ade'], check_images='yes'))


def test_read_image_size_follows_mmcv_decoding(tmp_path):
    """Sizes are compared as mmcv decodes: EXIF orientation applied for
    images (``color``), not for ``unchanged`` reads."""
    import mmcv
    path = str(tmp_path / 'rotated.jpg')
    img = Image.fromarray(np.zeros((H, W, 3), np.uint8))
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90 degrees when displayed
    img.save(path, exif=exif)
    assert read_image_size(path) == (W, H)
    assert read_image_size(path, oriented=False) == (H, W)
    assert mmcv.imread(path).shape[:2] == (W, H)
    assert mmcv.imread(path, flag='unchanged').shape[:2] == (H, W)


# --------------------------------------------------------------------------
# toy data on first use
# --------------------------------------------------------------------------
def test_toy_coco_from_config_generates_data(tmp_path):
    """A toy config's dataset built on an empty data root generates the
    set, as mmdet's own tools/train.py would build it."""
    cfg = Config.fromfile(
        osp.join(REPO, 'configs', 'toy', 'mask_rcnn_swin_t_toy.py'))
    ds_cfg = cfg.train_dataloader.dataset
    root = str(tmp_path / 'data' / 'toy' / 'coco') + '/'
    ds_cfg.update(type='ToyCocoDataset', data_root=root,
                  toy_params=dict(SMALL))
    dataset = _build('mmdet', ds_cfg.to_dict())
    assert len(dataset) == SMALL['num_train']
    with open(osp.join(root, STAMP_NAME)) as f:
        assert json.load(f)['num_train'] == SMALL['num_train']
    sample = dataset[0]  # the toy config's full train pipeline
    assert sample['data_samples'].ori_shape == (H, W)
    # a second build reuses the set (the stamp is not rewritten)
    mtime = osp.getmtime(osp.join(root, STAMP_NAME))
    _build('mmdet', ds_cfg.to_dict())
    assert osp.getmtime(osp.join(root, STAMP_NAME)) == mtime


def test_toy_ade_and_shapes_generate_on_first_use(tmp_path):
    ade = _build(
        'mmseg',
        dict(_ade_cfg(str(tmp_path / 'ade')), type='ToyADE20KDataset',
             toy_params=SMALL))
    assert len(ade) == SMALL['num_train']

    cfg = Config.fromfile(
        osp.join(REPO, 'configs', 'toy', 'swin_t_shapes_toy.py'))
    ds_cfg = cfg.val_dataloader.dataset
    assert (ds_cfg.type, ds_cfg.toy_set) == ('ToyImageNet', 'shapes')
    ds_cfg.update(data_root=str(tmp_path / 'shapes'),
                  toy_params=dict(num_train=12, num_val=24, size=64))
    shapes = _build('mmpretrain', ds_cfg.to_dict())
    labels = [shapes.get_data_info(i)['gt_label'] for i in range(24)]
    assert labels == [i % 12 for i in range(24)]
    assert tuple(shapes.metainfo['classes']) == TOY_SHAPES_CLASSES
    assert tuple(shapes[0]['inputs'].shape) == (3, 56, 56)


def test_toy_dataset_needs_data_root():
    with pytest.raises(ValueError, match='ToyCocoDataset needs data_root'):
        _build('mmdet', dict(type='ToyCocoDataset', pipeline=[]))
    with pytest.raises(TypeError, match='bad toy_params'):
        _build('mmpretrain',
               dict(type='ToyImageNet', data_root='unused',
                    toy_params=dict(num_images=3)))


def test_import_does_not_load_the_generator():
    code = ('import sys, mmltm.datasets as d; '
            "assert 'mmltm.datasets.toy' not in sys.modules; "
            "assert 'ToyCocoDataset' in d.__all__; "
            'd.make_toy_data; '
            "assert 'mmltm.datasets.toy' in sys.modules")
    res = subprocess.run([sys.executable, '-c', code], cwd=REPO,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
