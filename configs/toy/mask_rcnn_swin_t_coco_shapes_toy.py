# Toy Mask R-CNN Swin-T on the toy COCO *shapes* set, a dense probe meant to
# see a known-worse merge (issue 12, item 5; measured, 3 seeds: baseline
# 0.552 +- 0.013 bbox mAP, pool25 trained 0.553 +- 0.017: it does not;
# pool25 dropped into the trained baseline, training-free, 0.435 +- 0.057:
# it does, README):
# ./mask_rcnn_swin_t_toy.py (model, optimizer, runtime) on
# data/toy/coco_shapes, at the shapes set's 64x64.
#
# coco_shapes (mmltm.datasets.toy, drawn by
# mmltm.datasets.toy_shapes.draw_shapes_scene): 768 train / 480 val images of
# the toy shapes classification set (./swin_t_shapes_toy.py), one instance
# each: the large target shape, of 12 categories that only the outline of the
# whole shape tells apart (its visible mask an RLE); the smaller distractor
# shapes are crowds (ignored in training and evaluation).
# ToyCocoDataset(toy_set='coco_shapes') generates it on first use.
#
# As ./upernet_swin_t_ade_shapes_toy.py: the class is a property of the whole
# shape, which only the deep stages see, and the task probes a pretrained
# backbone: tools/analysis_tools/compare_merging.py starts each run from the
# toy shapes classification checkpoint of the same variant and seed
# (``load_from``; only the backbone's keys match) and the backbone stays
# frozen (frozen_stages=4). Without ``load_from`` (this file as it is) the
# frozen backbone keeps its random initial weights.
#
# Schedule: 20-iteration warm-up, a 10x step at 80 % of the run, batch 8, for
# max_iters below.
# ./mask_rcnn_ltm_swin_t_coco_shapes_toy.py differs from this file only in the
# backbone.
_base_ = ['./mask_rcnn_swin_t_toy.py']

classes = ('arrow', 'circle', 'crescent', 'cross', 'hexagon', 'lshape',
           'pentagon', 'rectangle', 'ring', 'square', 'star',
           'triangle')  # mmltm.datasets.toy.TOY_SCENE_COCO_CLASSES
metainfo = dict(
    classes=classes,
    palette=[(230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200),
             (245, 130, 48), (145, 30, 180), (70, 240, 240), (240, 50, 230),
             (210, 245, 60), (250, 190, 212), (0, 128, 128),
             (170, 110, 40)])  # TOY_SCENE_COCO_PALETTE
num_classes = len(classes)
img_scale = (64, 64)

_data_root = 'data/toy/coco_shapes/'
_dataset = dict(data_root=_data_root, toy_set='coco_shapes', metainfo=metainfo)
_resize = dict(type='Resize', scale=img_scale, keep_ratio=True)
train_pipeline = [
    _resize if step['type'] == 'Resize' else step
    for step in _base_['train_pipeline']]
test_pipeline = [
    _resize if step['type'] == 'Resize' else step
    for step in _base_['test_pipeline']]
train_dataloader = dict(
    batch_size=8, dataset=dict(_dataset, pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=8, dataset=dict(_dataset, pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=_data_root + 'annotations/instances_val.json')
test_evaluator = val_evaluator

# the backbone is frozen (all 4 stages): the heads probe its features
# (see the top of this file)
model = dict(
    backbone=dict(frozen_stages=4),
    roi_head=dict(
        bbox_head=dict(num_classes=num_classes),
        mask_head=dict(num_classes=num_classes)))

max_iters = 240
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(checkpoint=dict(interval=max_iters))
param_scheduler = [
    dict(_base_['param_scheduler'][0]),
    dict(_base_['param_scheduler'][1], end=max_iters,
         milestones=[int(max_iters * 0.8)])
]
del _data_root, _dataset, _resize
