# The ImageNet-1k recipe of the LTM authors' README (their demo trains
# LTM-MobileViT-S on 4 GPUs): 300 epochs, batch 64 per GPU x 4 = 256, AdamW
# lr 2e-4, wd 0.01, 5 warm-up epochs then cosine to 2e-5, EMA 0.9995,
# RandAugment m9-mstd0.5, random erasing 0.2, label smoothing 0.1 (set in
# the configs' heads), AMP. Used here for MobileViT and EfficientViT, which
# mmpretrain trains with no recipe of its own (its MobileViT configs only
# evaluate converted weights).
#
# Written in mmpretrain terms; the crop size is 256 (timm's MobileViT
# default). Not reproduced: timm's exact RandAugment op set (mmpretrain's
# 'timm_increasing' policies are its port), timm's AdamW decay exclusion is
# reproduced by the zero decay on norms, biases and 1-D parameters; the
# mask modules are not decayed either (./ltm_paramwise.py).
_base_ = [
    'mmpretrain::_base_/datasets/imagenet_bs64_swin_224.py',
    'mmpretrain::_base_/default_runtime.py',
    './ltm_paramwise.py',
]

# images in [0, 1], BGR, no mean/std: the preprocessing of mmpretrain's
# MobileViT configs (Apple's weights), so the baselines can evaluate them
data_preprocessor = dict(
    num_classes=1000, mean=[0, 0, 0], std=[255, 255, 255], to_rgb=False)
bgr_mean = [103.53, 116.28, 123.675]
bgr_std = [57.375, 57.12, 58.395]

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        type='RandomResizedCrop',
        scale=256,
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
        scale=288,
        edge='short',
        backend='pillow',
        interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=256),
    dict(type='PackInputs'),
]
train_dataloader = dict(batch_size=64, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(batch_size=64, dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

optim_wrapper = dict(
    type='AmpOptimWrapper',
    optimizer=dict(
        type='AdamW', lr=2e-4, weight_decay=0.01, eps=1e-8,
        betas=(0.9, 0.999)),
    paramwise_cfg=dict(
        norm_decay_mult=0.0,
        bias_decay_mult=0.0,
        flat_decay_mult=0.0,
        # no weight decay on the mask modules (./ltm_paramwise.py)
        custom_keys=_base_.pop('ltm_custom_keys')))
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=0.005,  # timm's warmup_lr 1e-6 / 2e-4
        by_epoch=True,
        end=5,
        convert_to_iter_based=True),
    dict(
        type='CosineAnnealingLR',
        eta_min=2e-5,
        by_epoch=True,
        begin=5,
        end=300,
        convert_to_iter_based=True)
]
train_cfg = dict(by_epoch=True, max_epochs=300, val_interval=1)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=256)

# EMA of weights and BN statistics (timm ModelEmaV2 decay 0.9995)
custom_hooks = [
    dict(
        type='EMAHook',
        momentum=5e-4,
        update_buffers=True,
        priority='ABOVE_NORMAL')
]
