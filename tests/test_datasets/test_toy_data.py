"""Tests of the toy datasets: determinism, stock OpenMMLab loaders, CLI."""
import copy
import hashlib
import json
import os
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
from mmengine.config import Config
from mmengine.registry import init_default_scope

from mmltm.datasets import (STAMP_NAME, TOY_CLS_CLASSES, TOY_COCO_CLASSES,
                            TOY_COCO_PALETTE, TOY_SEG_CLASSES,
                            TOY_SEG_LABEL_IDS, TOY_SEG_PALETTE,
                            ensure_toy_data, make_toy_data)

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CLI = osp.join(REPO, 'tools', 'misc', 'make_toy_data.py')
# small but non-square (catches H/W swaps) and with >= 6 images per split,
# so the crowd (image 5) and forced-occlusion (image 1) cases are present
H, W = 96, 128
PARAMS = dict(num_train=6, num_val=6, size=(H, W), seed=0)


def _stock_cfg(package: str, rel: str) -> Config:
    """A base dataset config shipped inside an installed OpenMMLab lib."""
    mod = __import__(package)
    return Config.fromfile(
        osp.join(osp.dirname(mod.__file__), '.mim', 'configs', '_base_',
                 'datasets', rel))


def _digest(root: str) -> dict:
    out = {}
    for d, _, files in os.walk(root):
        for f in files:
            p = osp.join(d, f)
            with open(p, 'rb') as fh:
                out[osp.relpath(p, root)] = hashlib.sha256(
                    fh.read()).hexdigest()
    return out


@pytest.fixture(scope='module')
def toy(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('toy'))
    return make_toy_data(root, **PARAMS)


def test_layout_and_determinism(toy, tmp_path):
    assert set(toy) == {'coco', 'ade', 'imagenet', 'shapes', 'coco_shapes',
                        'ade_shapes'}
    for rel in ('coco/annotations/instances_train.json',
                'coco/annotations/instances_val.json',
                'coco/train/000000.jpg', 'coco/val/000005.jpg',
                'ade/images/training/ADE_train_00000000.jpg',
                'ade/annotations/validation/ADE_val_00000005.png',
                'imagenet/meta/train.txt', 'imagenet/meta/val.txt',
                'imagenet/train/circle/circle_00000.png',
                'imagenet/val/triangle/triangle_00003.png',
                'shapes/meta/val.txt', 'shapes/train/arrow/arrow_00000.png',
                'shapes/val/crescent/crescent_00002.png',
                'coco_shapes/annotations/instances_val.json',
                'coco_shapes/train/000005.jpg',
                'ade_shapes/images/validation/ADE_val_00000005.jpg',
                'ade_shapes/annotations/training/ADE_train_00000005.png'):
        assert osp.isfile(osp.join(osp.dirname(toy['coco']), rel)), rel

    again = make_toy_data(str(tmp_path / 'a'), **PARAMS)
    root = osp.dirname(toy['coco'])
    ref = _digest(root)
    assert len(ref) > 50
    assert _digest(osp.dirname(again['coco'])) == ref

    # another seed changes the pixels and the annotations
    other = make_toy_data(
        str(tmp_path / 'b'), **dict(PARAMS, seed=1), which='coco')
    new = _digest(other['coco'])
    base = _digest(toy['coco'])
    assert new['train/000000.jpg'] != base['train/000000.jpg']
    assert (new['annotations/instances_train.json'] !=
            base['annotations/instances_train.json'])

    # image i does not depend on how many images are drawn
    fewer = make_toy_data(
        str(tmp_path / 'c'), **dict(PARAMS, num_train=2), which='imagenet')
    assert (_digest(fewer['imagenet'])['train/cross/cross_00001.png'] ==
            _digest(toy['imagenet'])['train/cross/cross_00001.png'])


def test_coco_annotations_and_self_eval(toy):
    from pycocotools import mask as mask_utils
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with open(osp.join(toy['coco'], 'annotations/instances_train.json')) as f:
        raw = json.load(f)
    assert [c['name'] for c in raw['categories']] == list(TOY_COCO_CLASSES)
    assert all(im['height'] == H and im['width'] == W for im in raw['images'])
    anns = raw['annotations']
    kinds = {'polygon': 0, 'rle': 0, 'crowd': 0}
    for ann in anns:
        assert 'iscrowd' in ann and ann['area'] > 0
        x, y, w, h = ann['bbox']
        assert 0 <= x and 0 <= y and x + w <= W and y + h <= H
        seg = ann['segmentation']
        if ann['iscrowd']:
            kinds['crowd'] += 1
            # crowds use uncompressed RLE covering every pixel once
            assert isinstance(seg['counts'], list)
            assert sum(seg['counts']) == H * W
            assert seg['size'] == [H, W]
        elif isinstance(seg, list):
            kinds['polygon'] += 1
        else:
            kinds['rle'] += 1
            assert isinstance(seg['counts'], str)
            assert mask_utils.area(
                dict(seg, counts=seg['counts'].encode())) == ann['area']
    assert all(kinds.values()), kinds
    assert kinds['crowd'] < kinds['polygon']

    # ground truth scored against itself: AP 1.0 for boxes and masks
    gt = COCO(osp.join(toy['coco'], 'annotations/instances_val.json'))
    dets = []
    for ann in gt.loadAnns(gt.getAnnIds(iscrowd=False)):
        rle = gt.annToRLE(ann)
        dets.append(
            dict(image_id=ann['image_id'], category_id=ann['category_id'],
                 bbox=ann['bbox'], score=1.0, segmentation=rle))
    for iou_type in ('bbox', 'segm'):
        dt = gt.loadRes(copy.deepcopy(dets))
        ev = COCOeval(gt, dt, iou_type)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
        assert ev.stats[0] == pytest.approx(1.0), iou_type


def test_coco_stock_dataset_mask_rcnn_pipeline(toy):
    from mmdet.registry import DATASETS
    init_default_scope('mmdet')
    cfg = _stock_cfg('mmdet', 'coco_instance.py')
    ds_cfg = cfg.train_dataloader.dataset
    ds_cfg.update(
        data_root=toy['coco'],
        ann_file='annotations/instances_train.json',
        data_prefix=dict(img='train/'),
        metainfo=dict(classes=TOY_COCO_CLASSES, palette=TOY_COCO_PALETTE))
    # the Mask R-CNN pipeline, with a smaller scale to keep the test fast
    ds_cfg.pipeline[2].scale = (256, 192)
    assert [t['type'] for t in ds_cfg.pipeline] == [
        'LoadImageFromFile', 'LoadAnnotations', 'Resize', 'RandomFlip',
        'PackDetInputs'
    ]
    dataset = DATASETS.build(ds_cfg)
    assert len(dataset) == PARAMS['num_train']
    assert dataset.metainfo['classes'] == TOY_COCO_CLASSES

    for idx in (1, 5):  # forced occlusion; crowd
        out = dataset[idx]
        sample = out['data_samples']
        inst = sample.gt_instances
        assert out['inputs'].shape[0] == 3
        assert sample.ori_shape == (H, W)
        assert len(inst) > 0
        assert inst.masks.masks.shape == (len(inst), *sample.img_shape)
        assert inst.bboxes.shape == (len(inst), 4)
        assert set(inst.labels.tolist()) <= {0, 1, 2}
        # every box contains its mask
        for box, mask in zip(inst.bboxes.numpy(), inst.masks.masks):
            ys, xs = np.nonzero(mask)
            assert xs.min() >= box[0] - 1 and xs.max() <= box[2] + 1
            assert ys.min() >= box[1] - 1 and ys.max() <= box[3] + 1
    # image 5 holds the crowd: it lands in the ignored instances
    assert len(sample.ignored_instances) == 1


def test_ade_stock_dataset(toy):
    from mmseg.datasets import ADE20KDataset
    from mmseg.registry import DATASETS

    # the label values are real ADE20K ids of the chosen ADE20K classes
    for name, raw in zip(TOY_SEG_CLASSES, TOY_SEG_LABEL_IDS):
        assert ADE20KDataset.METAINFO['classes'][raw - 1] == name

    init_default_scope('mmseg')
    cfg = _stock_cfg('mmseg', 'ade20k.py')
    ds_cfg = cfg.train_dataloader.dataset
    ds_cfg.update(
        data_root=toy['ade'],
        data_prefix=dict(
            img_path='images/training', seg_map_path='annotations/training'),
        metainfo=dict(classes=TOY_SEG_CLASSES, palette=TOY_SEG_PALETTE))
    dataset = DATASETS.build(ds_cfg)
    assert len(dataset) == PARAMS['num_train']
    assert dataset.reduce_zero_label
    for i in range(2):
        out = dataset[i]  # the full stock ade20k train pipeline
        seg = out['data_samples'].gt_sem_seg.data
        assert out['inputs'].shape[-2:] == seg.shape[-2:]
        assert set(seg.unique().tolist()) <= {0, 1, 2, 3, 255}

    # without augmentation: labels are exactly raw ADE id -> class index,
    # and 0 ("other") -> 255 (ignored)
    import mmcv
    val_cfg = copy.deepcopy(ds_cfg)
    val_cfg.update(
        data_prefix=dict(
            img_path='images/validation',
            seg_map_path='annotations/validation'),
        pipeline=[dict(type='LoadAnnotations', reduce_zero_label=True)])
    val = DATASETS.build(val_cfg)
    lut = np.full(256, 255, np.uint8)
    lut[list(TOY_SEG_LABEL_IDS)] = np.arange(len(TOY_SEG_CLASSES))
    seen = set()
    for i in range(len(val)):
        out = val[i]
        raw = mmcv.imread(out['seg_map_path'], flag='unchanged')
        assert raw.shape == (H, W)
        assert set(np.unique(raw).tolist()) <= {0, *TOY_SEG_LABEL_IDS}
        np.testing.assert_array_equal(out['gt_seg_map'], lut[raw])
        seen |= set(np.unique(out['gt_seg_map']).tolist())
    assert {0, 1} <= seen and len(seen & {1, 2, 3}) >= 2


def test_imagenet_stock_dataset(toy):
    from mmpretrain.registry import DATASETS
    init_default_scope('mmpretrain')
    cfg = _stock_cfg('mmpretrain', 'imagenet_bs32.py')
    for split, loader in (('train', cfg.train_dataloader),
                          ('val', cfg.val_dataloader)):
        ds_cfg = loader.dataset
        ds_cfg.update(
            data_root=toy['imagenet'],
            metainfo=dict(classes=TOY_CLS_CLASSES))
        assert ds_cfg.split == split
        dataset = DATASETS.build(ds_cfg)
        n = PARAMS[f'num_{split}']
        assert len(dataset) == n
        labels = [dataset.get_data_info(i)['gt_label'] for i in range(n)]
        assert labels == [i % len(TOY_CLS_CLASSES) for i in range(n)]
        for i in range(2):
            out = dataset[i]
            assert tuple(out['inputs'].shape) == (3, 224, 224)
            assert out['data_samples'].gt_label.item() == labels[i]
            # the folder holding the image names the class
            path = dataset.get_data_info(i)['img_path']
            assert osp.basename(osp.dirname(path)) == TOY_CLS_CLASSES[
                labels[i]]

    # a folder scan (no ann_file) finds the same classes and labels
    scan = DATASETS.build(
        dict(type='CustomDataset', data_root=toy['imagenet'],
             data_prefix='val', with_label=True))
    assert tuple(scan.metainfo['classes']) == TOY_CLS_CLASSES
    infos = [scan.get_data_info(i) for i in range(len(scan))]
    by_path = {osp.relpath(d['img_path'], toy['imagenet']): d['gt_label']
               for d in infos}
    assert len(by_path) == PARAMS['num_val']
    with open(osp.join(toy['imagenet'], 'meta', 'val.txt')) as f:
        for line in f:
            rel, label = line.split()
            assert by_path[osp.join('val', rel)] == int(label)


def test_ensure_reuses_and_guards(tmp_path):
    root = str(tmp_path / 'toy')
    small = dict(num_train=1, num_val=1, size=32, which='imagenet')
    paths = ensure_toy_data(root, **small)
    stamp = osp.join(paths['imagenet'], STAMP_NAME)
    mtime = os.stat(stamp).st_mtime_ns
    assert ensure_toy_data(root, **small) == paths
    assert os.stat(stamp).st_mtime_ns == mtime  # reused, not rewritten
    with open(stamp) as f:
        assert json.load(f)['size'] == [32, 32]

    # other parameters regenerate; only temp-free final folders remain
    ensure_toy_data(root, **dict(small, num_train=2))
    with open(stamp) as f:
        assert json.load(f)['num_train'] == 2
    # (the lock file beside the set stays, see toy._lock)
    assert sorted(os.listdir(root)) == ['.imagenet.lock', 'imagenet']

    # make_toy_data refuses a non-empty out_dir without overwrite
    with pytest.raises(ValueError, match='not empty'):
        make_toy_data(root, **small)
    make_toy_data(root, overwrite=True, **small)

    # a dataset folder not written by us is never deleted
    foreign = tmp_path / 'toy' / 'coco'
    foreign.mkdir()
    (foreign / 'precious.json').write_text('{}')
    for call in (lambda: ensure_toy_data(root, **dict(small, which='coco')),
                 lambda: make_toy_data(
                     root, overwrite=True, **dict(small, which='coco'))):
        with pytest.raises(ValueError, match='not written by make_toy_data'):
            call()
    assert (foreign / 'precious.json').read_text() == '{}'


@pytest.mark.parametrize(
    'kwargs, match',
    [(dict(num_train=0), 'num_train must be a positive integer'),
     (dict(num_val=-3), 'num_val must be a positive integer'),
     (dict(num_train=2.5), 'num_train must be a positive integer'),
     (dict(size=(0, 64)), 'size must be two integers'),
     (dict(size=(64, 64, 3)), 'size must be two integers'),
     (dict(seed=-1), 'seed must be a non-negative integer'),
     (dict(which=('coco', 'voc')), 'which must name')])
def test_bad_arguments(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_toy_data(str(tmp_path / 'x'), **kwargs)
    assert not (tmp_path / 'x').exists()


def _run_cli(*args):
    env = dict(os.environ)
    # run from a checkout even when mmltm is not pip-installed
    env['PYTHONPATH'] = os.pathsep.join(
        [REPO] + [p for p in [env.get('PYTHONPATH')] if p])
    return subprocess.run([sys.executable, CLI, *args], capture_output=True,
                          text=True, env=env, timeout=300)


def test_cli(tmp_path):
    out = str(tmp_path / 'toy')
    ok = _run_cli('--out', out, '--num-train', '1', '--num-val', '1',
                  '--size', '32', '48', '--which', 'imagenet', 'coco')
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.splitlines() == [
        f'coco: {osp.join(out, "coco")}',
        f'imagenet: {osp.join(out, "imagenet")}'
    ]
    with open(osp.join(out, 'coco', 'annotations',
                       'instances_val.json')) as f:
        assert json.load(f)['images'][0]['height'] == 32

    # --if-missing reuses matching sets (as `make toy-data` calls it)
    stamp = osp.join(out, 'coco', STAMP_NAME)
    mtime = os.stat(stamp).st_mtime_ns
    again = _run_cli('--out', out, '--num-train', '1', '--num-val', '1',
                     '--size', '32', '48', '--which', 'coco', '--if-missing')
    assert again.returncode == 0, again.stderr
    assert os.stat(stamp).st_mtime_ns == mtime

    for args, reason in (
        (['--num-train', '0'], 'num_train must be a positive integer'),
        (['--size', '0', '64'], 'size must be two integers'),
        ([], 'exists and is not empty'),
    ):
        res = _run_cli('--out', out, *args)
        assert res.returncode != 0
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and reason in lines[0], res.stderr
        assert 'Traceback' not in res.stderr


def test_shapes_set_defaults_and_content(tmp_path):
    """The shapes set: its own defaults, 12 balanced classes, and images in
    which neither the colour nor the texture gives the class away."""
    from mmltm.datasets import TOY_DEFAULTS, TOY_SHAPES_CLASSES
    from mmltm.datasets.toy_shapes import draw_shapes_image
    assert TOY_SHAPES_CLASSES == tuple(sorted(TOY_SHAPES_CLASSES))
    assert len(TOY_SHAPES_CLASSES) == 12
    assert TOY_DEFAULTS['shapes'] == dict(
        num_train=768, num_val=480, size=(64, 64))
    # the documented defaults of the other sets
    assert TOY_DEFAULTS['imagenet'] == dict(
        num_train=48, num_val=16, size=(256, 256))
    assert all(TOY_DEFAULTS[n] == dict(num_train=48, num_val=48,
                                       size=(256, 256))
               for n in ('coco', 'ade'))
    # each maker's own defaults are the documented ones
    import inspect

    from mmltm.datasets import toy as toy_module
    for name, default in TOY_DEFAULTS.items():
        params = inspect.signature(
            getattr(toy_module, f'make_toy_{name}')).parameters
        assert {k: params[k].default for k in default} == default, name

    paths = make_toy_data(str(tmp_path / 'toy'), which='shapes',
                          num_train=24, num_val=12)
    with open(osp.join(paths['shapes'], STAMP_NAME)) as f:
        assert json.load(f)['size'] == [64, 64]  # the set's default size
    with open(osp.join(paths['shapes'], 'meta', 'train.txt')) as f:
        lines = [line.split() for line in f]
    assert [int(label) for _, label in lines] == [i % 12 for i in range(24)]
    assert all(rel.split('/')[0] == TOY_SHAPES_CLASSES[int(label)]
               for rel, label in lines)

    # mean colour per class: the spread between classes is no larger than
    # within a class (colour is random), unlike the toy ImageNet's hues
    rng = np.random.default_rng
    means = np.array([[
        draw_shapes_image(rng([1, k, i]), 64, 64, k).reshape(-1, 3).mean(0)
        for i in range(16)
    ] for k in range(12)])  # (class, image, rgb)
    within = means.std(axis=1).mean()
    between = means.mean(axis=1).std(axis=0).mean()
    assert between < within
