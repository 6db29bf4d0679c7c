# Toy variant of ../ltm_swin_t_8xb128_in1k.py (LTM-Swin-T + IB objective on
# ImageNet-1k): the same classifier, head, loss, IB hook, optimizer type and
# pipeline structure, on the deterministic toy ImageNet set
# (mmltm.datasets.toy: 48 train / 16 val images, 256x256, 4 classes circle /
# cross / rectangle / triangle), sized to train in about 2 minutes on 2 CPU
# cores.
#
# What differs from the real config, and why:
#   * data: data/toy/imagenet (generated on demand by tools/train.py, or
#     python tools/misc/make_toy_data.py), 4 classes, 112x112 crops
#     (RandomResizedCrop 0.35-1 of the image + flip; test: short edge 128,
#     centre crop 112); RandAugment / random erasing dropped (RandAugment's
#     colour ops destroy the toy's colour cue in so few steps);
#   * model size (toy only; classes unchanged): Swin with embed_dims 48,
#     depths [1, 1, 2, 1] (as the toy detection/segmentation configs), so
#     a toy checkpoint loads into ./mask_rcnn_ltm_swin_t_toy.py's backbone;
#   * IB tables: K = K_in = 4 clusters (= classes, the paper's rule), input
#     images pooled to 16x16; all 48 images clustered;
#   * schedule: 10 epochs of 6 iterations (batch 8), 1-epoch warm-up then
#     cosine; IB on from epoch 3 (warm-up ratio 0.3 as in the paper), output
#     clusters refreshed every epoch after that; one validation
#     (Accuracy top-1) at the end; Mixup/CutMix kept (soft labels).
# ./ltm_swin_t_noib_in1k_toy.py is this file with ib_weight=0 (same run,
# CE only) and ./swin_t_in1k_toy.py the Swin-T baseline.
_base_ = ['../ltm_swin_t_8xb128_in1k.py']

toy_data_root = 'data/toy'  # tools/train.py generates missing toy data here
data_root = 'data/toy/imagenet'
classes = ('circle', 'cross', 'rectangle', 'triangle')  # TOY_CLS_CLASSES
num_classes = 4
img_size = 112
embed_dims = 48
batch_size = 8
max_epochs = 10

model = dict(
    backbone=dict(
        embed_dims=embed_dims,
        depths=[1, 1, 2, 1],
        num_heads=[2, 4, 8, 16],
        pretrain_img_size=img_size,
        drop_path_rate=0.0),
    head=dict(
        num_classes=num_classes,
        in_channels=embed_dims * 8,
        num_clusters=num_classes,
        num_input_clusters=num_classes,
        input_size=16))
data_preprocessor = dict(num_classes=num_classes)

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        type='RandomResizedCrop',
        scale=img_size,
        crop_ratio_range=(0.35, 1.0),
        backend='pillow',
        interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        type='ResizeEdge',
        scale=img_size * 8 // 7,
        edge='short',
        backend='pillow',
        interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=img_size),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=batch_size,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        data_root=data_root,
        split='train',
        metainfo=dict(classes=classes),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=batch_size,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        data_root=data_root,
        split='val',
        metainfo=dict(classes=classes),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_evaluator = val_evaluator

custom_hooks = [
    dict(
        type='IBClusterHook',
        warmup_ratio=0.3,
        interval=1,
        num_input_samples=48,
        input_kmeans_iters=20,
        output_kmeans_iters=20,
        batch_size=16)
]

train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=max_epochs)
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=0.01,
        by_epoch=True,
        end=1,
        convert_to_iter_based=True),
    dict(
        type='CosineAnnealingLR',
        eta_min=1e-5,
        by_epoch=True,
        begin=1,
        end=max_epochs,
        convert_to_iter_based=True)
]
optim_wrapper = dict(optimizer=dict(lr=1e-3))

default_hooks = dict(
    logger=dict(interval=6),
    checkpoint=dict(interval=max_epochs, max_keep_ckpts=1))
randomness = dict(seed=0)
