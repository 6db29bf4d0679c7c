# Toy variant of
# ../ltm_efficientvit/segformer_efficientvit-b1_8xb2-160k_ade20k-512x512.py
# (EfficientViT-B1 + SegformerHead, ADE20K 160k): the same segmentor
# classes, backbone (the real EfficientViT-B1), head, optimizer and pipeline
# structure, on the toy ADE20K recipe of ./_base_/toy_ade.py (data, BN head,
# runtime: see there; 128x128 crops give 8x8 and 4x4 maps in the attention
# stages), sized to train in a few minutes on 2 CPU cores.
#
# Toy-only here: BN instead of SyncBN in the backbone too; 300 iterations, a
# 30-iteration warm-up then PolyLR.
# ./segformerhead_ltm_efficientvit_b1_toy.py differs from this file only in
# the backbone.
_base_ = ['../ltm_efficientvit/segformer_efficientvit-b1_8xb2-160k_ade20k-512x512.py', './_base_/toy_ade.py']
locals().update(_base_.pop('toy_ade'))  # data, head's size and BN, runtime

model.update(backbone=dict(norm_cfg=norm_cfg, init_cfg=None))

max_iters = 300
train_cfg, default_hooks, param_scheduler = schedule(
    max_iters, warmup_iters=30)
