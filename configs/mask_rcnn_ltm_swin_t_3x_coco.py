# old name, kept so that documented commands keep working
_base_ = ['./ltm_swin/mask-rcnn_ltm-swin-t-p4-w7_fpn_amp-ms-crop-3x_coco.py']
