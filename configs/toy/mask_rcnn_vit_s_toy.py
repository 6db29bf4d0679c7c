# Toy variant of ../ltm_vit/mask-rcnn_deit-s-p16_sfp_1x_coco.py (ViT-S +
# simple feature pyramid Mask R-CNN 1x): the same detector classes, neck
# type, optimizer type and pipeline structure, on the toy COCO recipe of
# ./_base_/toy_coco.py (data, heads, evaluator, runtime: see there; images
# at 256 give a 16x16 patch grid), sized to train in a few minutes on 2 CPU
# cores.
#
# Toy-only here: a ViT with 96 dims, 4 blocks, 3 heads (the last block
# feeds a 64-channel pyramid); 300 iterations, constant lr after a
# 30-iteration warm-up.
# ./mask_rcnn_ltm_vit_s_toy.py differs from this file only in the backbone.
_base_ = ['../ltm_vit/mask-rcnn_deit-s-p16_sfp_1x_coco.py', './_base_/toy_coco.py']
locals().update(_base_.pop('toy_coco'))  # model heads, data, runtime

embed_dims = 96
model.update(
    backbone=dict(
        arch=vit_arch(embed_dims),  # 4 blocks, 3 heads
        drop_path_rate=0.0,
        out_indices=(3, ),
        init_cfg=None),
    neck=dict(in_channels=embed_dims, out_channels=fpn_channels))

max_iters = 300
train_cfg, default_hooks = iter_runtime(max_iters, replace_loop=True)
param_scheduler = [warmup(30)]
