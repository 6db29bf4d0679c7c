# Toy variant of ../ltm_vit/upernet_deit-s-p16_mln_8xb2-160k_ade20k-512x512.py
# (ViT-S + MultiLevelNeck + UperNet, ADE20K 160k): the same segmentor
# classes, neck, optimizer and pipeline structure, on the toy ADE20K recipe
# of ./_base_/toy_ade.py (data, BN heads, runtime: see there; 128x128 crops
# give an 8x8 patch grid), sized to train in a few minutes on 2 CPU cores.
#
# Toy-only here: a ViT with 96 dims, 4 blocks (all four feed the neck), 3
# heads; a 32-channel auxiliary head; 300 iterations, a 30-iteration
# warm-up then PolyLR.
# ./upernet_ltm_vit_s_toy.py differs from this file only in the backbone.
_base_ = ['../ltm_vit/upernet_deit-s-p16_mln_8xb2-160k_ade20k-512x512.py', './_base_/toy_ade.py']
locals().update(_base_.pop('toy_ade'))  # data, heads' size and BN, runtime

embed_dims = 96
model.update(
    backbone=dict(
        arch=vit_arch(embed_dims),  # 4 blocks, 3 heads
        img_size=crop_size,
        drop_path_rate=0.0,
        out_indices=(0, 1, 2, 3),
        init_cfg=None),
    neck=dict(in_channels=[embed_dims] * 4, out_channels=embed_dims),
    decode_head=dict(in_channels=[embed_dims] * 4),
    auxiliary_head=auxiliary_head(embed_dims))

max_iters = 300
train_cfg, default_hooks, param_scheduler = schedule(
    max_iters, warmup_iters=30)
