# LTM-ViT-S UperNet on ADE20K, 160k: ./upernet_deit-s-p16_mln_8xb2-160k_ade20k-512x512.py with only the
# backbone swapped for LTMVisionTransformer (merging in every block's FFN,
# compression_ratio 0.78 as in ImageNet training; every block unmerges, so
# blocks 3, 6, 9, 12 hand the neck ordinary 32x32 maps).
#
# Weights: the LTM-ViT-S ImageNet-1k checkpoint of mmltm's classification
# config (keys ``backbone.*``; DeiT-S weights load as well).
_base_ = ['./upernet_deit-s-p16_mln_8xb2-160k_ade20k-512x512.py']
custom_imports = dict(imports=['mmltm', 'mmltm.engine.checkpoint_fix'],
                      allow_failed_imports=False)

ltm_pretrained = 'work_dirs/ltm-deit-small_4xb256_in1k/epoch_300.pth'
model = dict(
    backbone=dict(
        type='LTMVisionTransformer',
        compression_ratio=0.78,
        init_cfg=dict(
            type='Pretrained', checkpoint=ltm_pretrained, prefix='backbone.')))
