# old name, kept so that documented commands keep working
_base_ = ['./ltm_swin/mask-rcnn_ltm-swin-t-p4-w7_fpn_1x_coco.py']
