# Toy variant of ../mask_rcnn_vit_s_coco.py (ViT-S + simple feature pyramid
# Mask R-CNN 1x): the same detector classes, neck type, optimizer type and
# pipeline structure, on the deterministic toy COCO set (mmltm.datasets.toy:
# 48 train / 16 val images, 256x256, classes circle / rectangle / triangle),
# sized to train in a few minutes on 2 CPU cores.
#
# What differs from the real config, and why (as ./mask_rcnn_swin_t_toy.py):
#   * data: data/toy/coco, 3 classes, images kept at 256 (a 16x16 patch
#     grid);
#   * model size (toy only; classes unchanged): a ViT with 96 dims, 4 blocks,
#     3 heads (the last block feeds the pyramid) and a 64-channel pyramid /
#     RoI head, fewer proposals and RoI samples; no pretrained weights;
#   * schedule: iteration based, constant lr after a short warm-up, one
#     validation (CocoMetric bbox + segm) at the end.
# ./mask_rcnn_ltm_vit_s_toy.py differs from this file only in the backbone.
_base_ = ['../mask_rcnn_vit_s_coco.py']

toy_data_root = 'data/toy'  # tools/train.py generates missing toy data here
data_root = 'data/toy/coco/'
classes = ('circle', 'rectangle', 'triangle')  # mmltm.datasets.toy.TOY_COCO_CLASSES
metainfo = dict(
    classes=classes, palette=[(215, 45, 45), (40, 170, 60), (45, 75, 215)])
num_classes = 3
img_scale = (256, 256)
max_iters = 300
embed_dims = 96
fpn_channels = 64

model = dict(
    backbone=dict(
        arch=dict(
            _delete_=True,
            embed_dims=embed_dims,
            num_layers=4,
            num_heads=3,
            feedforward_channels=embed_dims * 4),
        drop_path_rate=0.0,
        out_indices=(3, ),
        init_cfg=None),
    neck=dict(in_channels=embed_dims, out_channels=fpn_channels),
    rpn_head=dict(in_channels=fpn_channels, feat_channels=fpn_channels),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=fpn_channels),
        bbox_head=dict(
            in_channels=fpn_channels,
            fc_out_channels=256,
            num_classes=num_classes),
        mask_roi_extractor=dict(out_channels=fpn_channels),
        mask_head=dict(
            in_channels=fpn_channels,
            conv_out_channels=fpn_channels,
            num_classes=num_classes)),
    train_cfg=dict(
        rpn_proposal=dict(nms_pre=1000, max_per_img=300),
        rcnn=dict(sampler=dict(num=128))),
    test_cfg=dict(
        rpn=dict(nms_pre=500, max_per_img=300),
        rcnn=dict(max_per_img=50)))

train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor'))
]
train_dataloader = dict(
    batch_size=2,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        data_root=data_root,
        metainfo=metainfo,
        ann_file='annotations/instances_train.json',
        data_prefix=dict(img='train/'),
        filter_cfg=dict(filter_empty_gt=True, min_size=8),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=2,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        data_root=data_root,
        metainfo=metainfo,
        ann_file='annotations/instances_val.json',
        data_prefix=dict(img='val/'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val.json')
test_evaluator = val_evaluator

train_cfg = dict(
    _delete_=True,
    type='IterBasedTrainLoop',
    max_iters=max_iters,
    val_interval=max_iters)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=30)
]
optim_wrapper = dict(optimizer=dict(lr=1e-3), clip_grad=dict(max_norm=10.0))

default_hooks = dict(
    logger=dict(interval=20),
    checkpoint=dict(by_epoch=False, interval=max_iters, max_keep_ckpts=2),
    visualization=dict(draw=False))
log_processor = dict(by_epoch=False, window_size=20)
randomness = dict(seed=0)
