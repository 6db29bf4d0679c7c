# Toy variant of ../ltm_swin/ltm-swin-tiny_8xb128_in1k.py (LTM-Swin-T + IB
# objective on ImageNet-1k): the same classifier, head, loss, IB hook,
# optimizer type and pipeline structure, with the toy ImageNet recipe of
# ./_base_/toy_in1k.py (data, schedule, IB tables: see there), sized to
# train in about 20 s on 2 CPU cores. Toy-only model size (classes
# unchanged): Swin with embed_dims 48, depths [1, 1, 2, 1] (as the toy
# detection/segmentation configs), so a toy checkpoint loads into
# ./mask_rcnn_ltm_swin_t_toy.py's backbone.
# ./ltm_swin_t_noib_in1k_toy.py is this file with ib_weight=0 (same run,
# CE only) and ./swin_t_in1k_toy.py the Swin-T baseline.
_base_ = ['../ltm_swin/ltm-swin-tiny_8xb128_in1k.py', './_base_/toy_in1k.py']
locals().update(_base_.pop('toy_in1k'))  # data, IB tables, schedule

embed_dims = 48
model.update(
    backbone=dict(
        **swin_arch(embed_dims),  # depths [1, 1, 2, 1]
        pretrain_img_size=112),  # the toy crop size
    head=dict(in_channels=embed_dims * 8))
