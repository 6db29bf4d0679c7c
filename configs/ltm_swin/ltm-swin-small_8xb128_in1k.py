# LTM-Swin-S on ImageNet-1k from scratch with the paper's objective:
# ./swin-small_8xb128_in1k.py + token merging (compression_ratio 0.7) + the IB
# term, exactly as ./ltm-swin-tiny_8xb128_in1k.py does for Swin-T (see there).
_base_ = ['./swin-small_8xb128_in1k.py', '../_base_/ltm_ib_in1k.py']

model = dict(
    backbone=dict(compression_ratio=0.7),
    head=_base_.ltm_ib.head)

custom_hooks = [_base_.pop('ltm_ib').hook]  # ../_base_/ltm_ib_in1k.py
