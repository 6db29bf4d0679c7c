# Toy MobileViT-XS ImageNet baseline: ./ltm_mobilevit_xs_in1k_toy.py (same
# data, model and schedule) with the real baseline's choices of
# ../ltm_mobilevit/mobilevit-xsmall_4xb64_in1k.py
# (./_base_/toy_in1k_baseline.py): no token merging, mmpretrain's
# LinearClsHead, no IB hook.
_base_ = ['./ltm_mobilevit_xs_in1k_toy.py', './_base_/toy_in1k_baseline.py']
locals().update(_base_.pop('toy_in1k_baseline'))

model.head.update(type='LinearClsHead', in_channels=384, topk=(1, ))
