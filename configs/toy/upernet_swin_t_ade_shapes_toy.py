# Toy UperNet Swin-T on the toy ADE20K *shapes* set, the dense benchmark
# that can see a known-worse merge (issue 12, item 5): ./upernet_swin_t_toy.py
# (model, optimizer, pipelines, runtime) on data/toy/ade_shapes instead of
# data/toy/ade.
#
# ade_shapes (mmltm.datasets.toy, drawn by
# mmltm.datasets.toy_shapes.draw_shapes_scene): 192 train / 96 val 256x256
# scenes of 5-10 small shapes (radius 4-8 % of the side) in random light
# textured fills on a random dark textured background with clutter lines and
# 2-5 unlabelled distractor shapes (ring, crescent, star, arrow, L): only the
# outline says the class. Classes: the ADE20K names wall / ball / box / tent /
# flag = background (distractors included) / circle / square / triangle /
# cross, generated on first use by ToyADE20KDataset(toy_set='ade_shapes').
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
train_dataloader = dict(dataset=_dataset)
val_dataloader = dict(dataset=_dataset)
test_dataloader = val_dataloader

model = dict(
    decode_head=dict(num_classes=len(_classes)),
    auxiliary_head=dict(num_classes=len(_classes)))

max_iters = 200
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(checkpoint=dict(interval=max_iters))
param_scheduler = [dict(_base_['param_scheduler'][0]),
                   dict(_base_['param_scheduler'][1], end=max_iters)]
del _classes, _dataset
