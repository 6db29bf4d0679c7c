# Baseline for LTM-ViT-S Mask R-CNN: a plain ViT-S/16 (mmpretrain's
# VisionTransformer, arch 'deit-small', DeiT-S ImageNet-1k weights) with a
# ViTDet-style simple feature pyramid, in mmdet's Mask R-CNN 1x recipe
# (mask-rcnn_r50_fpn_1x_coco.py: 12 epochs, single-scale 1333x800) with the
# optimizer of mmdet's Swin-T Mask R-CNN (AdamW lr 1e-4, wd 0.05, no decay
# on norms / position embedding / class token, 1000-iter warm-up).
#
# The backbone returns the last block's stride-16 patch map (out_type
# 'featmap'; the class token stays in attention but not in the map);
# mmltm's SimpleFeaturePyramid (mmltm/models/necks) builds strides 4-32
# from it with deconvolutions / pooling + 1x1 and 3x3 convs (GroupNorm), and
# a stride-64 level by pooling, as mmdet's FPN does for the RPN.
# Position embeddings are bicubically resized to each input size
# (mmpretrain's ViT does it on the fly). No published mmdet number exists
# for this exact model; ViTDet / SViT use window attention or adapters.
# ./mask-rcnn_ltm-deit-s-p16_sfp_1x_coco.py differs from this file only in the backbone.
_base_ = [
    'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py',
    '../_base_/ltm_paramwise.py'
]
custom_imports = dict(imports=['mmltm', 'mmltm.engine.checkpoint_fix'],
                      allow_failed_imports=False)

pretrained = ('https://download.openmmlab.com/mmclassification/v0/deit/'
              'deit-small_pt-4xb256_in1k_20220218-9425b9bb.pth')
model = dict(
    backbone=dict(
        _delete_=True,
        type='mmpretrain.VisionTransformer',
        arch='deit-small',
        img_size=224,
        patch_size=16,
        drop_path_rate=0.1,
        out_type='featmap',
        out_indices=(11, ),
        final_norm=True,
        init_cfg=dict(
            type='Pretrained', checkpoint=pretrained, prefix='backbone.')),
    neck=dict(
        _delete_=True,
        type='SimpleFeaturePyramid',
        in_channels=384,
        out_channels=256,
        scale_factors=(4.0, 2.0, 1.0, 0.5),
        num_outs=5,
        norm_cfg=dict(type='GN', num_groups=32, requires_grad=True)))

max_epochs = 12
train_cfg = dict(max_epochs=max_epochs)
param_scheduler = [
    dict(
        type='LinearLR', start_factor=0.001, by_epoch=False, begin=0,
        end=1000),
    dict(
        type='MultiStepLR',
        begin=0,
        end=max_epochs,
        by_epoch=True,
        milestones=[8, 11],
        gamma=0.1)
]
optim_wrapper = dict(
    type='OptimWrapper',
    paramwise_cfg=dict(
        custom_keys={
            'pos_embed': dict(decay_mult=0.),
            'cls_token': dict(decay_mult=0.),
            'norm': dict(decay_mult=0.),
            '.ln': dict(decay_mult=0.),
            # no decay on the mask modules (../_base_/ltm_paramwise.py)
            **_base_.pop('ltm_custom_keys'),
        }),
    optimizer=dict(
        _delete_=True,
        type='AdamW',
        lr=0.0001,
        betas=(0.9, 0.999),
        weight_decay=0.05),
    clip_grad=dict(max_norm=5.0))
