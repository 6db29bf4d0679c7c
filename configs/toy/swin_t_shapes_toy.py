# Toy Swin-T baseline on the toy shapes set: ./ltm_swin_t_shapes_toy.py
# (same data, model size and schedule) with the baseline's choices, as
# ./swin_t_in1k_toy.py is to ./ltm_swin_t_in1k_toy.py: no token merging
# (compression_ratio=1.0), plain mmpretrain LinearClsHead (CE with label
# smoothing, Mixup/CutMix), no IB hook.
_base_ = ['./ltm_swin_t_shapes_toy.py']

model = dict(
    backbone=dict(compression_ratio=1.0),
    head=dict(
        _delete_=True, type='LinearClsHead', num_classes=12,
        in_channels=48 * 8, init_cfg=None, cal_acc=False,
        loss=dict(
            type='LabelSmoothLoss', label_smooth_val=0.1, mode='original')))
custom_hooks = []
