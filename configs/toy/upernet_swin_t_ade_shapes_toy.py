# Toy UperNet Swin-T on the toy ADE20K *shapes* set, a dense probe meant to
# see a known-worse merge (issue 12, item 5; measured, 3 seeds: baseline
# 60.8 +- 1.7 mIoU, pool25 trained 59.5 +- 3.4: it does not; pool25 dropped
# into the trained baseline, training-free, 36.1 +- 0.8: it does, README):
# ./upernet_swin_t_toy.py (model, optimizer, runtime) on data/toy/ade_shapes,
# at the shapes set's 64x64.
#
# ade_shapes (mmltm.datasets.toy, drawn by
# mmltm.datasets.toy_shapes.draw_shapes_scene): 768 train / 480 val images of
# the toy shapes classification set (./swin_t_shapes_toy.py), labelled per
# pixel: background, or the class of the large target shape (12 classes that
# only the outline of the whole shape tells apart); the smaller distractor
# shapes are ignored (255). ToyShapesSegDataset generates it on first use.
#
# The toy COCO / ADE sets give the class by colour, so their toy models need
# no deep feature and score the same whatever the merging (also training-free:
# README). Here the class is a property of the whole shape, which only the
# deep stages see. The task probes a pretrained backbone's dense features:
# tools/analysis_tools/compare_merging.py starts each run from the toy shapes
# classification checkpoint of the same variant and seed (``load_from``; only
# the backbone's keys match) and the backbone stays frozen (frozen_stages=4),
# so the heads cannot make up for what a merge lost (fine-tuned, 720
# iterations, seed 0: baseline 62.3 mIoU, uniform pooling at ratio 0.25 63.5:
# the dense fine-tuning hides a worse backbone). Without ``load_from`` (this
# file as it is) the frozen backbone keeps its random initial weights.
#
# Schedule: 20-iteration warm-up then PolyLR, batch 16 of 64x64 crops (15
# passes over the data), heads at 10x the base lr.
# ./upernet_ltm_swin_t_ade_shapes_toy.py differs from this file only in the
# backbone.
_base_ = ['./upernet_swin_t_toy.py']

_classes = ('background', 'arrow', 'circle', 'crescent', 'cross', 'hexagon',
            'lshape', 'pentagon', 'rectangle', 'ring', 'square', 'star',
            'triangle')  # mmltm.datasets.toy.TOY_SCENE_SEG_CLASSES
metainfo = dict(
    classes=_classes,
    palette=[(120, 120, 120), (230, 25, 75), (60, 180, 75), (255, 225, 25),
             (0, 130, 200), (245, 130, 48), (145, 30, 180), (70, 240, 240),
             (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128),
             (170, 110, 40)])  # TOY_SCENE_SEG_PALETTE
_size = (64, 64)


def _dataset(split, pipeline):
    """The ``ade_shapes`` split (in place of the base's toy ADE20K)."""
    return dict(
        _delete_=True,
        type='ToyShapesSegDataset',  # generates data/toy/ade_shapes
        data_root='data/toy/ade_shapes',
        toy_set='ade_shapes',
        metainfo=metainfo,
        data_prefix=dict(
            img_path=f'images/{split}', seg_map_path=f'annotations/{split}'),
        pipeline=pipeline)


train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=False),
    dict(type='RandomResize', scale=_size, ratio_range=(1.0, 1.25),
         keep_ratio=True),
    dict(type='RandomCrop', crop_size=_size),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=_size, keep_ratio=True),
    dict(type='LoadAnnotations', reduce_zero_label=False),
    dict(type='PackSegInputs')
]
train_dataloader = dict(
    batch_size=16, dataset=_dataset('training', train_pipeline))
val_dataloader = dict(
    batch_size=16, dataset=_dataset('validation', test_pipeline))
test_dataloader = val_dataloader

# the backbone is frozen (all 4 stages): the heads probe its features
# (see the top of this file)
model = dict(
    data_preprocessor=dict(size=_size),
    backbone=dict(frozen_stages=4),
    decode_head=dict(num_classes=len(_classes)),
    auxiliary_head=dict(num_classes=len(_classes)))
# the heads start from scratch: they learn at 10x the base lr, as mmseg's
# fine-tuning recipes give new heads a larger lr (e.g. SegFormer's
# lr_mult=10)
optim_wrapper = dict(
    paramwise_cfg=dict(custom_keys=dict(
        decode_head=dict(lr_mult=10.0), auxiliary_head=dict(lr_mult=10.0))))

max_iters = 720
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(checkpoint=dict(interval=max_iters))
param_scheduler = [dict(_base_['param_scheduler'][0]),
                   dict(_base_['param_scheduler'][1], end=max_iters)]
del _classes, _size, _dataset
