# LTM-Swin-B on ImageNet-1k from scratch with the paper's objective (paper:
# 83.8 top-1 vs Swin-B 83.5, 12.0 vs 15.4 GFLOPs):
# ./swin-base_8xb128_in1k.py + token merging (compression_ratio 0.65, the
# LTMSwinTransformer default for base: 0.79x the FLOPs of Swin-B, paper
# 0.78x; 0.7 would give 0.82x) + the IB term, exactly as
# ./ltm-swin-tiny_8xb128_in1k.py does for Swin-T (see there).
_base_ = ['./swin-base_8xb128_in1k.py', '../_base_/ltm_ib_in1k.py']

model = dict(
    backbone=dict(compression_ratio=0.65),
    head=_base_.ltm_ib.head)

custom_hooks = [_base_.pop('ltm_ib').hook]  # ../_base_/ltm_ib_in1k.py
