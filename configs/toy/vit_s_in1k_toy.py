# Toy ViT-S ImageNet baseline: ./ltm_vit_s_in1k_toy.py (same data, model
# size and schedule) with the real baseline's choices of
# ../vit_s_4xb256_in1k.py: no token merging (compression_ratio=1.0), DeiT's
# VisionTransformerClsHead (CE with label smoothing, Mixup/CutMix), no IB
# hook.
_base_ = ['./ltm_vit_s_in1k_toy.py']

model = dict(
    backbone=dict(compression_ratio=1.0),
    head=dict(
        _delete_=True,
        type='VisionTransformerClsHead',
        num_classes=4,
        in_channels=96,
        loss=dict(
            type='LabelSmoothLoss', label_smooth_val=0.1, mode='original')))
custom_hooks = []
find_unused_parameters = True
