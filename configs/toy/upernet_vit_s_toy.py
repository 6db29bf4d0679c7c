# Toy variant of ../upernet_vit_s_ade20k.py (ViT-S + MultiLevelNeck +
# UperNet, ADE20K 160k): the same segmentor classes, neck, optimizer and
# pipeline structure, on the deterministic toy ADE20K set
# (mmltm.datasets.toy: 48 train / 16 val images, 256x256, stock
# ADE20KDataset restricted to wall / ball / box / tent), sized to train in a
# few minutes on 2 CPU cores.
#
# What differs from the real config, and why (as ./upernet_swin_t_toy.py):
#   * data: data/toy/ade, 4 classes, 128x128 crops (8x8 patch grid) of
#     128-512 px rescaled images, whole-image test at 256;
#   * BN instead of SyncBN in the heads (one process, no sync needed);
#   * model size (toy only; classes unchanged): a ViT with 96 dims, 4 blocks
#     (all four feed the neck), 3 heads; 64/32-channel decode/auxiliary
#     heads; no pretrained weights;
#   * schedule: iteration based, short warm-up then PolyLR, one validation
#     (IoUMetric mIoU) at the end.
# ./upernet_ltm_vit_s_toy.py differs from this file only in the backbone.
_base_ = ['../upernet_vit_s_ade20k.py']

toy_data_root = 'data/toy'  # tools/train.py generates missing toy data here
data_root = 'data/toy/ade'
# mmltm.datasets.toy.TOY_SEG_CLASSES / TOY_SEG_PALETTE
classes = ('wall', 'ball', 'box', 'tent')
metainfo = dict(
    classes=classes,
    palette=[(120, 120, 120), (215, 45, 45), (40, 170, 60), (45, 75, 215)])
num_classes = 4
crop_size = (128, 128)
max_iters = 300
embed_dims = 96
norm_cfg = dict(type='BN', requires_grad=True)

model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(
        arch=dict(
            _delete_=True,
            embed_dims=embed_dims,
            num_layers=4,
            num_heads=3,
            feedforward_channels=embed_dims * 4),
        img_size=crop_size,
        drop_path_rate=0.0,
        out_indices=(0, 1, 2, 3),
        init_cfg=None),
    neck=dict(in_channels=[embed_dims] * 4, out_channels=embed_dims),
    decode_head=dict(
        in_channels=[embed_dims] * 4,
        channels=64,
        num_classes=num_classes,
        norm_cfg=norm_cfg),
    auxiliary_head=dict(
        in_channels=embed_dims,
        channels=32,
        num_classes=num_classes,
        norm_cfg=norm_cfg))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(
        type='RandomResize',
        scale=(256, 256),
        ratio_range=(0.5, 2.0),
        keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(256, 256), keep_ratio=True),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs')
]
train_dataloader = dict(
    batch_size=4,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        data_root=data_root,
        metainfo=metainfo,
        data_prefix=dict(
            img_path='images/training', seg_map_path='annotations/training'),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        data_root=data_root,
        metainfo=metainfo,
        data_prefix=dict(
            img_path='images/validation',
            seg_map_path='annotations/validation'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader

train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
optim_wrapper = dict(optimizer=dict(lr=1e-3))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=30),
    dict(
        type='PolyLR',
        eta_min=0.0,
        power=1.0,
        begin=30,
        end=max_iters,
        by_epoch=False)
]
default_hooks = dict(
    logger=dict(interval=20),
    checkpoint=dict(by_epoch=False, interval=max_iters, max_keep_ckpts=2),
    visualization=dict(draw=False))
randomness = dict(seed=0)
