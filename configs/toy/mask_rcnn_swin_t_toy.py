# Toy variant of ../ltm_swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py (mmdet's
# Swin-T Mask R-CNN 1x): the same detector classes, optimizer type and
# pipeline structure, on the toy COCO recipe of ./_base_/toy_coco.py (data,
# heads, evaluator, runtime: see there), sized to train in a few minutes on
# 2 CPU cores and still reach a non-zero mAP.
#
# Toy-only here: a narrower, shallower Swin (embed_dims 48, depths
# [1, 1, 2, 1]) with a 64-channel FPN; 100 iterations of 2 images (~4 passes
# over the data), lr 1e-3 with a 20-iteration warm-up and a 10x step at
# iteration 80 (the real 1x steps at epochs 8 and 11).
# ./mask_rcnn_ltm_swin_t_toy.py differs from this file only in the backbone.
_base_ = ['../ltm_swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py', './_base_/toy_coco.py']
locals().update(_base_.pop('toy_coco'))  # model heads, data, runtime

embed_dims = 48
model.update(
    backbone=dict(
        **swin_arch(embed_dims),  # depths [1, 1, 2, 1]
        convert_weights=False,
        init_cfg=None),
    neck=dict(
        in_channels=[embed_dims * 2**i for i in range(4)],
        out_channels=fpn_channels))

max_iters = 100
train_cfg, default_hooks = iter_runtime(max_iters, replace_loop=True)
param_scheduler = [
    warmup(20),
    dict(
        type='MultiStepLR',
        by_epoch=False,
        begin=0,
        end=max_iters,
        milestones=[int(max_iters * 0.8)],
        gamma=0.1)
]
