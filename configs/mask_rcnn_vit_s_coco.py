# old name, kept so that documented commands keep working
_base_ = ['./ltm_vit/mask-rcnn_deit-s-p16_sfp_1x_coco.py']
