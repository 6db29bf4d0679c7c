# Baseline: mmdet's Swin-S Mask R-CNN, 3x multi-scale-crop + AMP, reported
# 48.2 box AP / 43.2 mask AP on COCO val2017. Same recipe as
# ./mask-rcnn_swin-t-p4-w7_fpn_amp-ms-crop-3x_coco.py with depths [2, 2, 18, 2] and the Swin-S
# ImageNet-1k weights. Unchanged (but for the
# mask-module decay rule of ../_base_/ltm_paramwise.py, a no-op for a Swin
# without mask modules) from the installed mmdet package
# (mmdet/.mim/configs/swin/mask-rcnn_swin-s-p4-w7_fpn_amp-ms-crop-3x_coco.py).
_base_ = [
    'mmdet::swin/mask-rcnn_swin-s-p4-w7_fpn_amp-ms-crop-3x_coco.py',
    '../_base_/ltm_paramwise.py'
]

# no weight decay on the mask modules (../_base_/ltm_paramwise.py)
optim_wrapper = dict(
    paramwise_cfg=dict(custom_keys=_base_.pop('ltm_custom_keys')))
