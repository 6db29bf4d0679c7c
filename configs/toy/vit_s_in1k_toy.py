# Toy ViT-S ImageNet baseline: ./ltm_vit_s_in1k_toy.py (same data, model
# size and schedule) with the real baseline's choices of
# ../ltm_vit/deit-small_4xb256_in1k.py (./_base_/toy_in1k_baseline.py): no
# token merging, DeiT's VisionTransformerClsHead (Mixup/CutMix), no IB hook.
_base_ = ['./ltm_vit_s_in1k_toy.py', './_base_/toy_in1k_baseline.py']
locals().update(_base_.pop('toy_in1k_baseline'))

model.head.update(type='VisionTransformerClsHead', in_channels=96)
