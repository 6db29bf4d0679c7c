# Toy Swin-T ImageNet baseline: ./ltm_swin_t_in1k_toy.py (same data, model
# size and schedule) with the real baseline's choices of
# ../swin_t_8xb128_in1k.py: no token merging (compression_ratio=1.0), plain
# mmpretrain LinearClsHead (CE with label smoothing, Mixup/CutMix), no IB
# hook.
_base_ = ['./ltm_swin_t_in1k_toy.py']

model = dict(
    backbone=dict(compression_ratio=1.0),
    head=dict(
        _delete_=True,
        type='LinearClsHead',
        num_classes=4,
        in_channels=48 * 8,
        init_cfg=None,
        loss=dict(
            type='LabelSmoothLoss', label_smooth_val=0.1, mode='original'),
        cal_acc=False))
custom_hooks = []
find_unused_parameters = True
