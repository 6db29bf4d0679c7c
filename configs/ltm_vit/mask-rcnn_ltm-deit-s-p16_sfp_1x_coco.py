# LTM-ViT-S Mask R-CNN, 1x: ./mask-rcnn_deit-s-p16_sfp_1x_coco.py with only the
# backbone swapped for LTMVisionTransformer (merging in every block's FFN,
# compression_ratio 0.78 as in ImageNet training). Every block unmerges its
# FFN output, so the neck receives the ordinary stride-16 map.
#
# Weights: the LTM-ViT-S ImageNet-1k checkpoint of mmltm's classification
# config (an mmpretrain ImageClassifier, keys ``backbone.*``: prefix
# 'backbone.' strips them and drops the head). DeiT-S weights also load
# (only the mask modules' ``token_merger.*`` keys stay at their init).
_base_ = ['./mask-rcnn_deit-s-p16_sfp_1x_coco.py']
custom_imports = dict(imports=['mmltm', 'mmltm.engine.checkpoint_fix'],
                      allow_failed_imports=False)

ltm_pretrained = 'work_dirs/ltm-deit-small_4xb256_in1k/epoch_300.pth'
model = dict(
    backbone=dict(
        type='LTMVisionTransformer',
        compression_ratio=0.78,
        init_cfg=dict(
            type='Pretrained', checkpoint=ltm_pretrained, prefix='backbone.')))
