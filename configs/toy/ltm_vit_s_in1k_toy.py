# Toy variant of ../ltm_vit_s_4xb256_in1k.py (LTM-ViT-S + IB objective on
# ImageNet-1k): the same classifier, head, loss, IB hook, optimizer type and
# pipeline structure, on the deterministic toy ImageNet set
# (mmltm.datasets.toy: 48 train / 16 val images, 256x256, 4 classes), sized
# to train in about a minute on 2 CPU cores.
#
# What differs from the real config, and why (as ./ltm_swin_t_in1k_toy.py):
#   * data: data/toy/imagenet, 4 classes, 112x112 crops (test: short edge
#     128, centre crop 112); RandAugment / random erasing dropped;
#   * model size (toy only; classes unchanged): a ViT with 96 dims, 4 blocks,
#     3 heads (a 7x7 patch grid at 112x112), the same compression_ratio;
#   * IB tables: K = K_in = 4 clusters, input images pooled to 16x16;
#   * schedule: 10 epochs of 6 iterations (batch 8), 1-epoch warm-up then
#     cosine; IB on from epoch 3; one validation (top-1) at the end.
# ./vit_s_in1k_toy.py is the ViT-S baseline of the same size.
_base_ = ['../ltm_vit_s_4xb256_in1k.py']

toy_data_root = 'data/toy'  # tools/train.py generates missing toy data here
data_root = 'data/toy/imagenet'
classes = ('circle', 'cross', 'rectangle', 'triangle')  # TOY_CLS_CLASSES
num_classes = 4
img_size = 112
embed_dims = 96
batch_size = 8
max_epochs = 10

model = dict(
    backbone=dict(
        arch=dict(
            _delete_=True,
            embed_dims=embed_dims,
            num_layers=4,
            num_heads=3,
            feedforward_channels=embed_dims * 4),
        img_size=img_size),
    head=dict(
        num_classes=num_classes,
        in_channels=embed_dims,
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
