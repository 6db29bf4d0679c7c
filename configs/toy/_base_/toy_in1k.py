# The toy ImageNet recipe that every ../*_in1k_toy.py config shares: data,
# pipelines, evaluator, IB cluster hook, the IB head's tables and schedule,
# on the deterministic toy ImageNet set (mmltm.datasets.toy: 48 train / 16
# val images, 256x256, 4 classes circle / cross / rectangle / triangle).
#
# A toy config inherits its real config *and* this file. mmengine refuses a
# key that two _base_ files both define, so everything lives under the one
# key ``toy_in1k``, and the toy config turns it into its own top-level keys
# with ``locals().update(_base_.pop('toy_in1k'))`` (as ./toy_runtime.py
# explains for the dense toy configs).
#
# What differs from the real recipes, and why:
#   * data: data/toy/imagenet (generated on first use by ToyImageNet, or
#     python tools/misc/make_toy_data.py), 4 classes, 112x112 crops
#     (RandomResizedCrop 0.35-1 of the image + flip; test: short edge 128,
#     centre crop 112); RandAugment / random erasing dropped (RandAugment's
#     colour ops destroy the toy's colour cue in so few steps);
#   * IB head and hook: K = K_in = 4 clusters (= classes, the paper's rule),
#     input images pooled to 16x16, all 48 images clustered;
#   * schedule: 10 epochs of 6 iterations (batch 8), lr 1e-3, 1-epoch
#     warm-up then cosine; IB on from epoch 3 (warm-up ratio 0.3 as in the
#     paper), output clusters refreshed every epoch after that; one
#     validation (Accuracy top-1) at the end; Mixup/CutMix kept (soft
#     labels);
#   * no EMA hook: with the real momentum the averaged weights used for
#     validation would barely move from their init in 60 iterations.
_base_ = ['./toy_runtime.py']

_data_root = 'data/toy/imagenet'
_classes = ('circle', 'cross', 'rectangle', 'triangle')  # TOY_CLS_CLASSES
_img_size = 112
_batch_size = 8
_max_epochs = 10
# epoch-based schedules, stepped every iteration
_per_epoch = dict(by_epoch=True, convert_to_iter_based=True)

# resizing as the real recipes: PIL, bicubic
_pil_bicubic = dict(backend='pillow', interpolation='bicubic')
_train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        type='RandomResizedCrop',
        scale=_img_size,
        crop_ratio_range=(0.35, 1.0),
        **_pil_bicubic),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
_test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=_img_size * 8 // 7, edge='short',
         **_pil_bicubic),
    dict(type='CenterCrop', crop_size=_img_size),
    dict(type='PackInputs'),
]


def _loader(split, pipeline):
    """The loader of toy ImageNet's ``split`` (batch 8, in-process)."""
    return dict(
        batch_size=_batch_size,
        num_workers=0,
        persistent_workers=False,
        dataset=dict(
            type='ToyImageNet',
            data_root=_data_root,
            split=split,
            metainfo=dict(classes=_classes),
            pipeline=pipeline))


_val_dataloader = _loader('val', _test_pipeline)

toy_in1k = dict(
    **_base_.pop('toy_runtime'),  # toy data root, seed 0, toy ViT size
    # the IB head's tables at toy size (the toy config sizes the backbone)
    model=dict(
        head=dict(
            num_classes=len(_classes),
            num_clusters=len(_classes),
            num_input_clusters=len(_classes),
            input_size=16)),
    data_preprocessor=dict(num_classes=len(_classes)),
    train_dataloader=_loader('train', _train_pipeline),
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
        dict(type='LinearLR', start_factor=0.01, end=1, **_per_epoch),
        dict(
            type='CosineAnnealingLR',
            eta_min=1e-5,
            begin=1,
            end=_max_epochs,
            **_per_epoch)
    ],
    default_hooks=dict(
        logger=dict(interval=6),
        checkpoint=dict(interval=_max_epochs, max_keep_ckpts=1)),
    optim_wrapper=dict(optimizer=dict(lr=1e-3)),
)
# the helpers above are no settings: keep them out of the config
del _data_root, _classes, _img_size, _batch_size, _max_epochs, _per_epoch
del _pil_bicubic
del _train_pipeline, _test_pipeline, _val_dataloader
