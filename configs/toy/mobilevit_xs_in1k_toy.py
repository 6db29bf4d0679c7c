# Toy MobileViT-XS ImageNet baseline: ./ltm_mobilevit_xs_in1k_toy.py (same
# data, model and schedule) with the real baseline's choices of
# ../mobilevit_xs_4xb64_in1k.py: no token merging (compression_ratio=1.0),
# plain mmpretrain LinearClsHead (CE with label smoothing), no IB hook.
_base_ = ['./ltm_mobilevit_xs_in1k_toy.py']

model = dict(
    backbone=dict(compression_ratio=1.0),
    head=dict(
        _delete_=True,
        type='LinearClsHead',
        num_classes=4,
        in_channels=384,
        loss=dict(
            type='LabelSmoothLoss', label_smooth_val=0.1, mode='original'),
        topk=(1, )))
custom_hooks = []
find_unused_parameters = True
