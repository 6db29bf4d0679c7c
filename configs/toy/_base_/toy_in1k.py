# The toy ImageNet recipe that every ../*_in1k_toy.py config shares: data,
# pipelines, evaluator, IB cluster hook and schedule, on the deterministic
# toy ImageNet set (mmltm.datasets.toy: 48 train / 16 val images, 256x256,
# 4 classes circle / cross / rectangle / triangle).
#
# A toy config inherits its real config *and* this file. mmengine refuses a
# key that two _base_ files both define, so everything that the real configs
# also define lives under the one key ``toy_in1k``, and the toy config copies
# each part with ``{{_base_.toy_in1k.<part>}}``.
#
# What differs from the real recipes, and why:
#   * data: data/toy/imagenet (generated on first use by ToyImageNet, or
#     python tools/misc/make_toy_data.py), 4 classes, 112x112 crops
#     (RandomResizedCrop 0.35-1 of the image + flip; test: short edge 128,
#     centre crop 112); RandAugment / random erasing dropped (RandAugment's
#     colour ops destroy the toy's colour cue in so few steps);
#   * IB hook: all 48 images clustered (the toy configs size the head's
#     tables: K = K_in = 4 clusters, input images pooled to 16x16);
#   * schedule: 10 epochs of 6 iterations (batch 8), 1-epoch warm-up then
#     cosine; IB on from epoch 3 (warm-up ratio 0.3 as in the paper), output
#     clusters refreshed every epoch after that; one validation
#     (Accuracy top-1) at the end; Mixup/CutMix kept (soft labels);
#   * no EMA hook: with the real momentum the averaged weights used for
#     validation would barely move from their init in 60 iterations.
toy_data_root = 'data/toy'  # tools/train.py generates missing toy data here

_data_root = 'data/toy/imagenet'
_classes = ('circle', 'cross', 'rectangle', 'triangle')  # TOY_CLS_CLASSES
_img_size = 112
_batch_size = 8
_max_epochs = 10

_train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        type='RandomResizedCrop',
        scale=_img_size,
        crop_ratio_range=(0.35, 1.0),
        backend='pillow',
        interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
_test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        type='ResizeEdge',
        scale=_img_size * 8 // 7,
        edge='short',
        backend='pillow',
        interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=_img_size),
    dict(type='PackInputs'),
]
_val_dataloader = dict(
    batch_size=_batch_size,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        type='ToyImageNet',  # generates data/toy/imagenet on first use
        data_root=_data_root,
        split='val',
        metainfo=dict(classes=_classes),
        pipeline=_test_pipeline))

toy_in1k = dict(
    num_classes=len(_classes),
    img_size=_img_size,
    data_preprocessor=dict(num_classes=len(_classes)),
    train_dataloader=dict(
        batch_size=_batch_size,
        num_workers=0,
        persistent_workers=False,
        dataset=dict(
            type='ToyImageNet',
            data_root=_data_root,
            split='train',
            metainfo=dict(classes=_classes),
            pipeline=_train_pipeline)),
    val_dataloader=_val_dataloader,
    test_dataloader=_val_dataloader,
    val_evaluator=dict(type='Accuracy', topk=(1, )),
    test_evaluator=dict(type='Accuracy', topk=(1, )),
    custom_hooks=[
        dict(
            type='IBClusterHook',
            warmup_ratio=0.3,
            interval=1,
            num_input_samples=48,
            input_kmeans_iters=20,
            output_kmeans_iters=20,
            batch_size=16)
    ],
    train_cfg=dict(
        by_epoch=True, max_epochs=_max_epochs, val_interval=_max_epochs),
    param_scheduler=[
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
            end=_max_epochs,
            convert_to_iter_based=True)
    ],
    default_hooks=dict(
        logger=dict(interval=6),
        checkpoint=dict(interval=_max_epochs, max_keep_ckpts=1)),
    randomness=dict(seed=0),
)
# the helpers above are no settings: keep them out of the config
del _data_root, _classes, _img_size, _batch_size, _max_epochs
del _train_pipeline, _test_pipeline, _val_dataloader
