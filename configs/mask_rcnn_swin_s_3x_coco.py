# Baseline: mmdet's Swin-S Mask R-CNN, 3x multi-scale-crop + AMP, reported
# 48.2 box AP / 43.2 mask AP on COCO val2017. Same recipe as
# ./mask_rcnn_swin_t_3x_coco.py with depths [2, 2, 18, 2] and the Swin-S
# ImageNet-1k weights. Unchanged from the installed mmdet package
# (mmdet/.mim/configs/swin/mask-rcnn_swin-s-p4-w7_fpn_amp-ms-crop-3x_coco.py).
_base_ = ['mmdet::swin/mask-rcnn_swin-s-p4-w7_fpn_amp-ms-crop-3x_coco.py']
