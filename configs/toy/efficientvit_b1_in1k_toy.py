# Toy EfficientViT-B1 ImageNet baseline: ./ltm_efficientvit_b1_in1k_toy.py
# (same data, model and schedule) with the real baseline's choices of
# ../efficientvit_b1_4xb64_in1k.py: no token merging
# (compression_ratio=1.0), plain mmpretrain LinearClsHead (CE with label
# smoothing), no IB hook.
_base_ = ['./ltm_efficientvit_b1_in1k_toy.py']

model = dict(
    backbone=dict(compression_ratio=1.0),
    head=dict(
        _delete_=True,
        type='LinearClsHead',
        num_classes=4,
        in_channels=1600,
        loss=dict(
            type='LabelSmoothLoss', label_smooth_val=0.1, mode='original'),
        topk=(1, )))
custom_hooks = []
find_unused_parameters = True
