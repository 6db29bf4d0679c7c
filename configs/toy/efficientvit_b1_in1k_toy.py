# Toy EfficientViT-B1 ImageNet baseline: ./ltm_efficientvit_b1_in1k_toy.py
# (same data, model and schedule) with the real baseline's choices of
# ../ltm_efficientvit/efficientvit-b1_4xb64_in1k.py
# (./_base_/toy_in1k_baseline.py): no token merging, mmpretrain's
# LinearClsHead, no IB hook.
_base_ = [
    './ltm_efficientvit_b1_in1k_toy.py', './_base_/toy_in1k_baseline.py'
]
locals().update(_base_.pop('toy_in1k_baseline'))

model.head.update(type='LinearClsHead', in_channels=1600, topk=(1, ))
