# Toy UperNet Swin-T on the toy ADE20K *shapes* set, a dense benchmark
# meant to see a known-worse merge (issue 12, item 5; measured, 3 seeds: baseline
# 38.0 +- 1.8 mIoU, pool25 34.7 +- 10.1: it does not discriminate yet, the
# schedule learns two of the four classes): ./upernet_swin_t_toy.py
# (model, optimizer, pipelines, runtime) on data/toy/ade_shapes instead of
# data/toy/ade.
#
# ade_shapes (mmltm.datasets.toy, drawn by
# mmltm.datasets.toy_shapes.draw_shapes_scene): 192 train / 96 val 256x256
# scenes of 5-9 labelled shapes (radius 8-13 % of the side) of random outline,
# filled with fine light stripes (5-9 px period) whose direction (0, 45, 90,
# 135 degrees) is the class, and 1-2 unlabelled distractor shapes with flat or
# smooth light fills, on a random dark textured background with clutter
# lines. Classes: the ADE20K names wall / ball / box / tent / flag =
# background (distractors included) / stripes at 0 / 45 / 90 / 135 degrees,
# generated on first use by ToyADE20KDataset(toy_set='ade_shapes').
#
# Schedule: as the base (20-iteration warm-up then PolyLR, batch 4 of 128x128
# crops) for max_iters below.
# ./upernet_ltm_swin_t_ade_shapes_toy.py differs from this file only in the
# backbone.
_base_ = ['./upernet_swin_t_toy.py']

_classes = ('wall', 'ball', 'box', 'tent', 'flag')  # TOY_SCENE_SEG_CLASSES
metainfo = dict(
    classes=_classes,
    palette=[(120, 120, 120), (255, 0, 163), (0, 255, 20), (112, 224, 255),
             (92, 0, 255)])  # ADE20K's palette entries of these classes
_dataset = dict(
    data_root='data/toy/ade_shapes', toy_set='ade_shapes', metainfo=metainfo)
# rescaled by 0.75-1.5 (the base: 0.5-2), so that a shape keeps most of
# its outline in a 128x128 crop and stays several tokens wide
train_pipeline = [
    dict(step, ratio_range=(0.75, 1.5)) if step['type'] == 'RandomResize'
    else step for step in _base_['train_pipeline']]
train_dataloader = dict(dataset=dict(_dataset, pipeline=train_pipeline))
val_dataloader = dict(dataset=_dataset)
test_dataloader = val_dataloader

# the background (about 80 % of the pixels) weighs 0.3 in the loss, so that
# the short schedule learns the stripe classes instead of calling everything
# background
_class_weight = [0.3] + [1.0] * (len(_classes) - 1)
model = dict(
    decode_head=dict(num_classes=len(_classes),
                     loss_decode=dict(class_weight=_class_weight)),
    auxiliary_head=dict(num_classes=len(_classes),
                        loss_decode=dict(class_weight=_class_weight)))

max_iters = 400
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(checkpoint=dict(interval=max_iters))
param_scheduler = [dict(_base_['param_scheduler'][0]),
                   dict(_base_['param_scheduler'][1], end=max_iters)]
del _classes, _dataset, _class_weight
