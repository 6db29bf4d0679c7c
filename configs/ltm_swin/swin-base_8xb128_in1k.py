# Baseline for LTM-Swin-B on ImageNet-1k: mmpretrain's Swin-B recipe
# (swin_transformer/swin-base_16xb64_in1k.py: the Swin-T recipe with drop path 0.5)
# at 8 GPUs x 128 images, i.e. ./swin-tiny_8xb128_in1k.py (see there for the
# reasoning) with Swin-B's arch, drop path and head width; the rest of
# mmpretrain's Swin-B config is the Swin-T one
# (tests/test_configs/test_resolved_configs.py holds them to it).
_base_ = ['./swin-tiny_8xb128_in1k.py']

model = dict(
    backbone=dict(arch='base', drop_path_rate=0.5), head=dict(in_channels=1024))
