# Baseline: mmdet's Swin-T Mask R-CNN, 3x schedule (36 epochs) with the
# DETR-style multi-scale + crop augmentation and AMP (AmpOptimWrapper),
# reported 46.0 box AP / 41.7 mask AP on COCO val2017.
#
# Unchanged from the installed mmdet package
# (mmdet/.mim/configs/swin/mask-rcnn_swin-t-p4-w7_fpn_amp-ms-crop-3x_coco.py).
# AMP needs a GPU: on a CPU run pass
# --cfg-options optim_wrapper.type=OptimWrapper.
_base_ = ['mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_amp-ms-crop-3x_coco.py']
