# Toy variant of ../ltm_vit/ltm-deit-small_4xb256_in1k.py (LTM-ViT-S + IB
# objective on ImageNet-1k): the same classifier, head, loss, IB hook,
# optimizer type and pipeline structure, with the toy ImageNet recipe of
# ./_base_/toy_in1k.py (data, schedule, IB tables: see there). Toy-only
# model size (classes unchanged): a ViT with 96 dims, 4 blocks, 3 heads (a
# 7x7 patch grid at 112x112), the same compression_ratio.
# ./vit_s_in1k_toy.py is the ViT-S baseline of the same size.
_base_ = ['../ltm_vit/ltm-deit-small_4xb256_in1k.py', './_base_/toy_in1k.py']
locals().update(_base_.pop('toy_in1k'))  # data, IB tables, schedule

embed_dims = 96
model.update(
    backbone=dict(
        arch=vit_arch(embed_dims),  # 4 blocks, 3 heads
        img_size=112),  # the toy crop size
    head=dict(in_channels=embed_dims))
