# The toy ADE20K recipe of the toy segmentation configs (../upernet_*_toy.py,
# ../segformerhead_*_toy.py): the deterministic toy ADE20K set
# (mmltm.datasets.toy: 48 train / 16 val images, 256x256, stock
# ADE20KDataset restricted to the ADE20K classes wall / ball / box / tent =
# background / circle / rectangle / triangle), its pipelines and loaders,
# BN instead of SyncBN in the heads (one process, no sync needed), a
# 64-channel decode head, lr 1e-3, the runtime of ./toy_runtime.py and a
# warm-up + PolyLR schedule as the real recipes.
#
# A toy config lists its real config and this file in ``_base_`` and takes
# the settings with ``locals().update(_base_.pop('toy_ade'))`` (see
# ./toy_runtime.py for why); then it sets its own model size, ``max_iters``
# and warm-up.
#
# What differs from the real recipes, and why:
#   * data: data/toy/ade (generated on demand by tools/train.py), 4 classes,
#     128x128 crops of 128-512 px rescaled images, whole-image test at 256;
#   * BN, head width: see above; no pretrained weights;
#   * schedule: iteration based (the toy config's ``max_iters``), one
#     validation (IoUMetric mIoU) at the end.
_base_ = ['./toy_runtime.py']

# mmltm.datasets.toy.TOY_SEG_CLASSES / TOY_SEG_PALETTE (no real config
# defines these keys, so they can stay plain keys of this file)
classes = ('wall', 'ball', 'box', 'tent')
metainfo = dict(
    classes=classes,
    palette=[(120, 120, 120), (215, 45, 45), (40, 170, 60), (45, 75, 215)])

_data_root = 'data/toy/ade'
_crop_size = (128, 128)
_norm_cfg = dict(type='BN', requires_grad=True)

_train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(
        type='RandomResize',
        scale=(256, 256),
        ratio_range=(0.5, 2.0),
        keep_ratio=True),
    dict(type='RandomCrop', crop_size=_crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs')
]
_test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(256, 256), keep_ratio=True),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs')
]


def _dataset(split, pipeline):
    """Toy ADE20K's ``split``."""
    return dict(
        type='ToyADE20KDataset',  # generates data/toy/ade on first use
        data_root=_data_root,
        metainfo=metainfo,
        data_prefix=dict(
            img_path=f'images/{split}', seg_map_path=f'annotations/{split}'),
        pipeline=pipeline)


_loader = _base_.toy_runtime.loader
_iter_runtime = _base_.toy_runtime.iter_runtime
_warmup = _base_.toy_runtime.warmup
_val_dataloader = _loader(1, _dataset('validation', _test_pipeline))


# (the functions below run in the toy configs, after this file's helpers
# are deleted: what they use is bound as a default argument)
def _schedule(max_iters, warmup_iters, iter_runtime=_iter_runtime,
              warmup=_warmup):
    """``(train_cfg, default_hooks, param_scheduler)`` of a toy run: warm-up,
    then PolyLR to 0 at ``max_iters`` (the real recipes' shape)."""
    poly = dict(
        type='PolyLR',
        eta_min=0.0,
        power=1.0,
        begin=warmup_iters,
        end=max_iters,
        by_epoch=False)
    return (*iter_runtime(max_iters), [warmup(warmup_iters), poly])


def _auxiliary_head(in_channels, num_classes=len(classes), norm_cfg=_norm_cfg):
    """The FCN auxiliary head of the toy UperNets: 32 channels, BN."""
    return dict(
        in_channels=in_channels,
        channels=32,
        num_classes=num_classes,
        norm_cfg=norm_cfg)


toy_ade = dict(
    **_base_.pop('toy_runtime'),
    schedule=_schedule,
    auxiliary_head=_auxiliary_head,
    data_root=_data_root,
    num_classes=len(classes),
    crop_size=_crop_size,
    norm_cfg=_norm_cfg,
    # the segmentor's input size and decode head at toy size; the toy config
    # adds backbone (+ neck, auxiliary head) and the head's in_channels
    model=dict(
        data_preprocessor=dict(size=_crop_size),
        decode_head=dict(
            channels=64, num_classes=len(classes), norm_cfg=_norm_cfg)),
    train_pipeline=_train_pipeline,
    test_pipeline=_test_pipeline,
    train_dataloader=_loader(4, _dataset('training', _train_pipeline)),
    val_dataloader=_val_dataloader,
    test_dataloader=_val_dataloader,
    optim_wrapper=dict(optimizer=dict(lr=1e-3)),
)
# the helpers above are no settings: keep them out of the config
del _data_root, _crop_size, _norm_cfg
del _train_pipeline, _test_pipeline, _val_dataloader
