# Baseline for LTM-MobileViT-XS on ImageNet-1k: ./mobilevit-small_4xb64_in1k.py
# with mmpretrain's MobileViT-XS (2.3 M params; converted weights: 74.75
# top-1). The LTM paper's MobileViT-XS row: 74.8 top-1, 0.7 GFLOPs (at
# 224x224; we count 0.72 G).
_base_ = ['./mobilevit-small_4xb64_in1k.py']

model = dict(backbone=dict(arch='x_small'), head=dict(in_channels=384))
