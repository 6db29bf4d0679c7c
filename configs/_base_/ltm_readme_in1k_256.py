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
    './ltm_readme_pipelines.py',
]

# images in [0, 1], BGR, no mean/std: the preprocessing of mmpretrain's
# MobileViT configs (Apple's weights), so the baselines can evaluate them
data_preprocessor = dict(
    num_classes=1000, mean=[0, 0, 0], std=[255, 255, 255], to_rgb=False)
# the README's pipelines at 256x256 crops (test: short edge 288, centre crop)
locals().update(_base_.pop('ltm_readme_pipelines').at(256, 288))
train_dataloader.update(batch_size=64)
val_dataloader.update(batch_size=64)
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
