# LTM-EfficientViT-B1 segmentation on ADE20K, 160k:
# ./segformer_efficientvit-b1_8xb2-160k_ade20k-512x512.py with only the backbone swapped
# for LTMEfficientViT (every EfficientViT block's MBConv on the merged map,
# compression_ratio 0.55 as in ImageNet training at 224; every block
# unmerges, so the head receives ordinary stride 4-32 maps).
#
# Weights: the LTM-EfficientViT-B1 ImageNet-1k checkpoint of
# ./ltm-efficientvit-b1_4xb64_in1k.py (keys ``backbone.*``).
_base_ = ['./segformer_efficientvit-b1_8xb2-160k_ade20k-512x512.py']
custom_imports = dict(imports=['mmltm', 'mmltm.engine.checkpoint_fix'],
                      allow_failed_imports=False)

ltm_pretrained = 'work_dirs/ltm-efficientvit-b1_4xb64_in1k/epoch_300.pth'
model = dict(
    backbone=dict(
        type='LTMEfficientViT',
        compression_ratio=0.55,
        init_cfg=dict(
            type='Pretrained', checkpoint=ltm_pretrained, prefix='backbone.')))
