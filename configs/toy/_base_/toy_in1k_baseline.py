# What every toy ImageNet baseline (../{swin_t,vit_s,efficientvit_b1,
# mobilevit_xs}_in1k_toy.py) changes in its LTM toy config, as the real
# baselines differ from the real LTM configs: no token merging
# (compression_ratio=1.0), a plain mmpretrain head (CE with label smoothing,
# the toy's 4 classes; the baseline sets the head's type, width and the
# options of its real head) and no IB hook.
#
# The baseline lists its LTM toy config and this file in ``_base_`` and takes
# the change with ``locals().update(_base_.pop('toy_in1k_baseline'))`` (see
# ./toy_runtime.py for why).
toy_in1k_baseline = dict(
    model=dict(
        backbone=dict(compression_ratio=1.0),
        head=dict(
            _delete_=True,
            num_classes=4,
            loss=dict(
                type='LabelSmoothLoss', label_smooth_val=0.1,
                mode='original'))),
    custom_hooks=[],
)
