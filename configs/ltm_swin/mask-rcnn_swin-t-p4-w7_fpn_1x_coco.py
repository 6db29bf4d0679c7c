# Baseline: mmdet's Swin-T Mask R-CNN, 1x schedule (12 epochs, single-scale
# 1333x800), reported 42.7 box AP / 39.3 mask AP on COCO val2017.
#
# Taken unchanged (but for the
# mask-module decay rule of ../_base_/ltm_paramwise.py, a no-op for a Swin
# without mask modules) from the installed mmdet package
# (mmdet/.mim/configs/swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py):
# Swin-T (96, [2, 2, 6, 2], [3, 6, 12, 24], window 7, drop_path 0.2) with the
# official ImageNet-1k weights, FPN in_channels [96, 192, 384, 768],
# AdamW lr 1e-4 / wd 0.05 (no decay on norms and position tables), LinearLR
# warm-up 1000 iters, MultiStepLR [8, 11]; 8 GPUs x 2 images.
# ./mask-rcnn_ltm-swin-t-p4-w7_fpn_1x_coco.py differs from this file only in the backbone.
_base_ = [
    'mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py',
    '../_base_/ltm_paramwise.py'
]

# no weight decay on the mask modules (../_base_/ltm_paramwise.py)
optim_wrapper = dict(
    paramwise_cfg=dict(custom_keys=_base_.pop('ltm_custom_keys')))
