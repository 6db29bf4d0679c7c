# LTM-EfficientViT-B1 segmentation on ADE20K, 160k:
# ./segformerhead_efficientvit_b1_ade20k.py with only the backbone swapped
# for LTMEfficientViT (every EfficientViT block's MBConv on the merged map,
# compression_ratio 0.55 as in ImageNet training at 224; every block
# unmerges, so the head receives ordinary stride 4-32 maps).
#
# Weights: the LTM-EfficientViT-B1 ImageNet-1k checkpoint of
# ./ltm_efficientvit_b1_4xb64_in1k.py (keys ``backbone.*``).
_base_ = ['./segformerhead_efficientvit_b1_ade20k.py']
custom_imports = dict(imports=['mmltm'], allow_failed_imports=False)

ltm_pretrained = 'work_dirs/ltm_efficientvit_b1_4xb64_in1k/epoch_300.pth'
model = dict(
    backbone=dict(
        type='LTMEfficientViT',
        compression_ratio=0.55,
        init_cfg=dict(
            type='Pretrained', checkpoint=ltm_pretrained, prefix='backbone.')))
