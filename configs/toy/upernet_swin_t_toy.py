# Toy variant of ../ltm_swin/upernet_swin-t_8xb2-160k_ade20k-512x512.py
# (mmseg's UperNet Swin-T, ADE20K 160k): the same segmentor classes,
# optimizer and pipeline structure, on the toy ADE20K recipe of
# ./_base_/toy_ade.py (data, BN heads, runtime: see there), sized to train
# in a few minutes on 2 CPU cores.
#
# Toy-only here: Swin with embed_dims 48, depths [1, 1, 2, 1]; a 32-channel
# auxiliary head; 120 iterations of 4 crops (~10 passes over the data), a
# 20-iteration warm-up then PolyLR.
# ./upernet_ltm_swin_t_toy.py differs from this file only in the backbone.
_base_ = ['../ltm_swin/upernet_swin-t_8xb2-160k_ade20k-512x512.py', './_base_/toy_ade.py']
locals().update(_base_.pop('toy_ade'))  # data, heads' size and BN, runtime

embed_dims = 48
model.update(
    backbone=dict(
        **swin_arch(embed_dims),  # depths [1, 1, 2, 1]
        init_cfg=None),
    decode_head=dict(in_channels=[embed_dims * 2**i for i in range(4)]),
    auxiliary_head=auxiliary_head(embed_dims * 4))

max_iters = 120
train_cfg, default_hooks, param_scheduler = schedule(
    max_iters, warmup_iters=20)
