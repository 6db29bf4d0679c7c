# LTM-Swin-T Mask R-CNN, 1x: ./mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py (mmdet's Swin-T
# Mask R-CNN recipe) with only the backbone swapped for LTMSwinTransformer.
#
# Weights: the LTM-Swin-T ImageNet-1k checkpoint of
# ./ltm-swin-tiny_8xb128_in1k.py (an mmpretrain classifier, keys ``backbone.*``).
# LTMSwinTransformer.init_weights takes the keys under ``prefix``, drops the
# classifier head and raises, naming them, if anything but the token-merger
# parameters and the per-stage output norms (absent from a classifier) is
# missing or mis-shaped. ``convert_weights`` must stay False for our own
# checkpoints; set it True (and point ``checkpoint`` at the official
# release) to start from the official Swin weights instead, whose token-merger
# parameters then keep their initial values.
_base_ = ['./mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py']
custom_imports = dict(imports=['mmltm', 'mmltm.engine.checkpoint_fix'],
                      allow_failed_imports=False)

ltm_pretrained = 'work_dirs/ltm-swin-tiny_8xb128_in1k/epoch_300.pth'
model = dict(
    backbone=dict(
        type='LTMSwinTransformer',
        compression_ratio=0.7,
        convert_weights=False,
        init_cfg=dict(
            type='Pretrained', checkpoint=ltm_pretrained,
            prefix='backbone.')))
