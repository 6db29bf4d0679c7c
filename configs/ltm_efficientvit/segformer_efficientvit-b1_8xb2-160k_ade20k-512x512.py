# Baseline for LTM-EfficientViT-B1 segmentation on ADE20K: EfficientViT-B1
# (mmltm/models/backbones/efficientvit.py, strides 4, 8, 16, 32 with 32, 64,
# 128, 256 channels) under mmseg's all-MLP SegformerHead, in mmseg's
# SegFormer-B0 ADE20K recipe (segformer/segformer_mit-b0_8xb2-160k_ade20k-
# 512x512.py: 512x512 crops, 160k iterations, 8 GPUs x 2, AdamW lr 6e-5 /
# wd 0.01, head lr x10, LinearLR warm-up 1500 iters then PolyLR, SyncBN).
# Cai et al.'s own segmentation head (EfficientViT-Seg-B1: 42.8 mIoU) is not
# reproduced; SegformerHead is the closest light mmseg head.
#
# The backbone is plain EfficientViT with BN synchronised across GPUs (it
# is a BN network, as mmseg's ResNet configs) and ImageNet-1k weights of
# ./efficientvit-b1_4xb64_in1k.py (an mmpretrain classifier: keys
# ``backbone.*``; its classification conv ``head_conv`` is not used here).
# ./segformer_ltm-efficientvit-b1_8xb2-160k_ade20k-512x512.py differs from this file only
# in the backbone.
_base_ = [
    'mmseg::segformer/segformer_mit-b0_8xb2-160k_ade20k-512x512.py',
    '../_base_/ltm_paramwise.py'
]
custom_imports = dict(imports=['mmltm', 'mmltm.engine.checkpoint_fix'],
                      allow_failed_imports=False)

pretrained = 'work_dirs/efficientvit-b1_4xb64_in1k/epoch_300.pth'
model = dict(
    backbone=dict(
        _delete_=True,
        type='EfficientViT',
        arch='b1',
        out_indices=(1, 2, 3, 4),
        norm_cfg=dict(type='SyncBN', requires_grad=True),
        init_cfg=dict(
            type='Pretrained', checkpoint=pretrained, prefix='backbone.')),
    decode_head=dict(in_channels=[32, 64, 128, 256], in_index=[0, 1, 2, 3]))

# no weight decay on the mask modules (../_base_/ltm_paramwise.py)
optim_wrapper = dict(
    paramwise_cfg=dict(custom_keys=_base_.pop('ltm_custom_keys')))
