# The toy COCO recipe of the toy Mask R-CNN configs (../mask_rcnn_*_toy.py):
# the deterministic toy COCO set (mmltm.datasets.toy: 48 train / 16 val
# images, 256x256, classes circle / rectangle / triangle), its pipelines and
# loaders, the CocoMetric (bbox + segm) evaluator, a 64-channel RPN / RoI
# head with fewer proposals and RoI samples, the optimizer changes (lr 1e-3,
# gradient clipping at 10) and the runtime of ./toy_runtime.py.
#
# A toy config lists its real config and this file in ``_base_`` and takes
# the settings with ``locals().update(_base_.pop('toy_coco'))`` (see
# ./toy_runtime.py for why); then it sets its own model size, ``max_iters``
# and schedule.
#
# What differs from the real recipes, and why:
#   * data: data/toy/coco (generated on demand by tools/train.py, or
#     python tools/misc/make_toy_data.py), 3 classes, images kept at 256;
#   * model size (toy only; classes unchanged): a 64-channel FPN / pyramid
#     and RoI head (the toy config sizes the backbone), fewer proposals and
#     RoI samples; no pretrained weights;
#   * schedule: iteration based (the toy config's ``max_iters``), one
#     validation at the end.
_base_ = ['./toy_runtime.py']

# mmltm.datasets.toy.TOY_COCO_CLASSES / TOY_COCO_PALETTE (no real config
# defines these keys, so they can stay plain keys of this file)
classes = ('circle', 'rectangle', 'triangle')
metainfo = dict(
    classes=classes, palette=[(215, 45, 45), (40, 170, 60), (45, 75, 215)])
num_classes = len(classes)
img_scale = (256, 256)

_data_root = 'data/toy/coco/'
_fpn_channels = 64

_train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
_test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor'))
]


def _dataset(split, pipeline, **kwargs):
    """Toy COCO's ``split``."""
    return dict(
        type='ToyCocoDataset',  # generates data/toy/coco on first use
        data_root=_data_root,
        metainfo=metainfo,
        ann_file=f'annotations/instances_{split}.json',
        data_prefix=dict(img=f'{split}/'),
        pipeline=pipeline,
        **kwargs)


_loader = _base_.toy_runtime.loader
_val_dataloader = _loader(2, _dataset('val', _test_pipeline))
_val_evaluator = dict(ann_file=_data_root + 'annotations/instances_val.json')

toy_coco = dict(
    **_base_.pop('toy_runtime'),
    data_root=_data_root,
    fpn_channels=_fpn_channels,
    # the detector's heads at toy size; the toy config adds backbone + neck
    model=dict(
        rpn_head=dict(in_channels=_fpn_channels, feat_channels=_fpn_channels),
        roi_head=dict(
            bbox_roi_extractor=dict(out_channels=_fpn_channels),
            bbox_head=dict(
                in_channels=_fpn_channels,
                fc_out_channels=256,
                num_classes=num_classes),
            mask_roi_extractor=dict(out_channels=_fpn_channels),
            mask_head=dict(
                in_channels=_fpn_channels,
                conv_out_channels=_fpn_channels,
                num_classes=num_classes)),
        train_cfg=dict(
            rpn_proposal=dict(nms_pre=1000, max_per_img=300),
            rcnn=dict(sampler=dict(num=128))),
        test_cfg=dict(
            rpn=dict(nms_pre=500, max_per_img=300),
            rcnn=dict(max_per_img=50))),
    train_pipeline=_train_pipeline,
    test_pipeline=_test_pipeline,
    train_dataloader=_loader(
        2,
        _dataset(
            'train',
            _train_pipeline,
            filter_cfg=dict(filter_empty_gt=True, min_size=8)),
        sampler=dict(type='InfiniteSampler', shuffle=True)),
    val_dataloader=_val_dataloader,
    test_dataloader=_val_dataloader,
    val_evaluator=_val_evaluator,
    test_evaluator=_val_evaluator,
    optim_wrapper=dict(
        optimizer=dict(lr=1e-3), clip_grad=dict(max_norm=10.0)),
    log_processor=dict(by_epoch=False, window_size=20),
)
# the helpers above are no settings: keep them out of the config
del _data_root, _fpn_channels
del _train_pipeline, _test_pipeline, _val_dataloader, _val_evaluator
