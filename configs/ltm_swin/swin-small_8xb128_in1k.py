# Baseline for LTM-Swin-S on ImageNet-1k: mmpretrain's Swin-S recipe
# (swin_transformer/swin-small_16xb64_in1k.py: the Swin-T recipe with drop path 0.3)
# at 8 GPUs x 128 images, i.e. ./swin-tiny_8xb128_in1k.py (see there for the
# reasoning) with Swin-S's arch and drop path; the rest of
# mmpretrain's Swin-S config is the Swin-T one
# (tests/test_configs/test_resolved_configs.py holds them to it).
_base_ = ['./swin-tiny_8xb128_in1k.py']

model = dict(backbone=dict(arch='small', drop_path_rate=0.3))
