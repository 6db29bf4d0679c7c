# Baseline for LTM-EfficientViT-B1 (r224) on ImageNet-1k: EfficientViT-B1
# (Cai et al., ICCV 2023; mmltm's implementation in
# mmltm/models/backbones/efficientvit.py, 9.1 M params, 0.53 G MACs at 224
# with mmengine's counter; the paper's row: 79.4 top-1, 0.52 GFLOPs) trained
# with the LTM authors' README recipe (../_base_/ltm_readme_in1k_256.py) at
# 224x224 crops. Cai et al.'s own recipe is not reproduced.
#
# Classifier as Cai et al.: backbone + 1x1 conv to 1536 (head_channels, in
# the backbone), global pooling + Linear 1536 -> 1600 + LayerNorm + Hardswish
# (mmpretrain's LinearNeck), Linear 1600 -> 1000.
# The backbone is LTMEfficientViT with compression_ratio=1.0 (exactly
# EfficientViT); ./ltm-efficientvit-b1_4xb64_in1k.py differs in
# compression_ratio plus the IB objective (head and hook).
_base_ = ['../_base_/ltm_readme_in1k_256.py']
custom_imports = dict(imports=['mmltm'], allow_failed_imports=False)

img_size = 224
model = dict(
    # = mmpretrain's ImageClassifier that also passes the images to IB heads
    # (mmltm/models/classifiers), so that the LTM config differs only in the
    # backbone ratio, the head and the hook
    type='IBImageClassifier',
    backbone=dict(
        type='LTMEfficientViT',
        arch='b1',
        compression_ratio=1.0,
        head_channels=1536),
    neck=dict(
        type='LinearNeck',
        in_channels=1536,
        out_channels=1600,
        gap_dim=2,
        norm_cfg=dict(type='LN'),
        act_cfg=dict(type='HSwish')),
    head=dict(
        type='LinearClsHead',
        num_classes=1000,
        in_channels=1600,
        loss=dict(
            type='LabelSmoothLoss', label_smooth_val=0.1, mode='original'),
        topk=(1, 5)))

bgr_mean = [103.53, 116.28, 123.675]
bgr_std = [57.375, 57.12, 58.395]
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        type='RandomResizedCrop',
        scale=img_size,
        backend='pillow',
        interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(
        type='RandAugment',
        policies='timm_increasing',
        num_policies=2,
        total_level=10,
        magnitude_level=9,
        magnitude_std=0.5,
        hparams=dict(
            pad_val=[round(x) for x in bgr_mean], interpolation='bicubic')),
    dict(
        type='RandomErasing',
        erase_prob=0.2,
        mode='rand',
        min_area_ratio=0.02,
        max_area_ratio=1 / 3,
        fill_color=bgr_mean,
        fill_std=bgr_std),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        type='ResizeEdge',
        scale=img_size * 8 // 7,  # crop ratio 0.875
        edge='short',
        backend='pillow',
        interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=img_size),
    dict(type='PackInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

