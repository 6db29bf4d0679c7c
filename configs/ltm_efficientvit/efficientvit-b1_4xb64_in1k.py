# Baseline for LTM-EfficientViT-B1 (r224) on ImageNet-1k: EfficientViT-B1
# (Cai et al., ICCV 2023; mmltm's implementation in
# mmltm/models/backbones/efficientvit.py, 9.1 M params, 0.53 G MACs at 224
# with mmengine's counter; the paper's row: 79.4 top-1, 0.52 GFLOPs) trained
# with the LTM authors' README recipe (../_base_/ltm_readme_in1k_256.py) at
# 224x224 crops. Cai et al.'s own recipe is not reproduced.
#
# Classifier as Cai et al.: backbone + 1x1 conv to 1536 (head_channels, in
# the backbone), global pooling + Linear 1536 -> 1600 + LayerNorm + Hardswish
# (mmpretrain's LinearNeck), Linear 1600 -> 1000.
# The backbone is LTMEfficientViT with compression_ratio=1.0 (exactly
# EfficientViT); ./ltm-efficientvit-b1_4xb64_in1k.py differs in
# compression_ratio plus the IB objective (head and hook).
_base_ = ['../_base_/ltm_readme_in1k_256.py', '../_base_/ltm_readme_pipelines.py']
custom_imports = dict(imports=['mmltm', 'mmltm.engine.checkpoint_fix'],
                      allow_failed_imports=False)

img_size = 224
model = dict(
    # = mmpretrain's ImageClassifier that also passes the images to IB heads
    # (mmltm/models/classifiers), so that the LTM config differs only in the
    # backbone ratio, the head and the hook
    type='IBImageClassifier',
    backbone=dict(
        type='LTMEfficientViT',
        arch='b1',
        compression_ratio=1.0,
        head_channels=1536),
    neck=dict(
        type='LinearNeck',
        in_channels=1536,
        out_channels=1600,
        gap_dim=2,
        norm_cfg=dict(type='LN'),
        act_cfg=dict(type='HSwish')),
    head=dict(
        type='LinearClsHead',
        num_classes=1000,
        in_channels=1600,
        loss=dict(
            type='LabelSmoothLoss', label_smooth_val=0.1, mode='original'),
        topk=(1, 5)))

# the README's pipelines at these crops (crop ratio 0.875)
locals().update(
    _base_.pop('ltm_readme_pipelines').at(img_size, img_size * 8 // 7))

