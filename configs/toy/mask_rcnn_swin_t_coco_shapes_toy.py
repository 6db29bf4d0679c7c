# Toy Mask R-CNN Swin-T on the toy COCO *shapes* set, a dense benchmark meant
# to see a known-worse merge (issue 12, item 5; not trained yet): ./mask_rcnn_swin_t_toy.py
# (model, optimizer, pipelines, runtime) on data/toy/coco_shapes instead of
# data/toy/coco.
#
# coco_shapes (mmltm.datasets.toy, drawn by
# mmltm.datasets.toy_shapes.draw_shapes_scene, the scenes of
# ./upernet_swin_t_ade_shapes_toy.py from another generator stream): 192 train
# / 96 val 256x256 scenes of 5-9 labelled shapes of random outline filled with
# fine light stripes whose direction is the class, and 1-2 unlabelled
# distractor shapes, on a random dark textured background with clutter lines.
# Categories stripes0 / stripes45 / stripes90 / stripes135 (every mask an
# RLE), generated on first use by ToyCocoDataset(toy_set='coco_shapes').
#
# Schedule: as the base (20-iteration warm-up, a 10x step at 80 % of the run,
# batch 2) for max_iters below.
# ./mask_rcnn_ltm_swin_t_coco_shapes_toy.py differs from this file only in the
# backbone.
_base_ = ['./mask_rcnn_swin_t_toy.py']

classes = ('stripes0', 'stripes45', 'stripes90', 'stripes135')  # TOY_SCENE_COCO_CLASSES
metainfo = dict(
    classes=classes,
    palette=[(255, 0, 163), (0, 255, 20), (112, 224, 255), (92, 0, 255)])
num_classes = len(classes)

_data_root = 'data/toy/coco_shapes/'
_dataset = dict(data_root=_data_root, toy_set='coco_shapes', metainfo=metainfo)
train_dataloader = dict(dataset=_dataset)
val_dataloader = dict(dataset=_dataset)
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=_data_root + 'annotations/instances_val.json')
test_evaluator = val_evaluator

model = dict(
    roi_head=dict(
        bbox_head=dict(num_classes=num_classes),
        mask_head=dict(num_classes=num_classes)))

max_iters = 100
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(checkpoint=dict(interval=max_iters))
param_scheduler = [
    dict(_base_['param_scheduler'][0]),
    dict(_base_['param_scheduler'][1], end=max_iters,
         milestones=[int(max_iters * 0.8)])
]
del _data_root, _dataset
