# Baseline: mmdet's Swin-T Mask R-CNN, 3x schedule (36 epochs) with the
# DETR-style multi-scale + crop augmentation and AMP (AmpOptimWrapper),
# reported 46.0 box AP / 41.7 mask AP on COCO val2017.
#
# Unchanged (but for the
# mask-module decay rule of ../_base_/ltm_paramwise.py, a no-op for a Swin
# without mask modules) from the installed mmdet package
# (mmdet/.mim/configs/swin/mask-rcnn_swin-t-p4-w7_fpn_amp-ms-crop-3x_coco.py).
# AMP needs a GPU: on a CPU run pass
# --cfg-options optim_wrapper.type=OptimWrapper.
_base_ = [
    'mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_amp-ms-crop-3x_coco.py',
    '../_base_/ltm_paramwise.py'
]

# no weight decay on the mask modules (../_base_/ltm_paramwise.py)
optim_wrapper = dict(
    paramwise_cfg=dict(custom_keys=_base_.pop('ltm_custom_keys')))
