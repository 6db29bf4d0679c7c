# Toy variant of ../ltm_swin_t_8xb128_in1k.py (LTM-Swin-T + IB objective on
# ImageNet-1k): the same classifier, head, loss, IB hook, optimizer type and
# pipeline structure, with the toy ImageNet recipe of ./_base_/toy_in1k.py
# (data, schedule, IB tables: see there), sized to train in about 20 s on 2
# CPU cores. Toy-only model size (classes unchanged): Swin with embed_dims
# 48, depths [1, 1, 2, 1] (as the toy detection/segmentation configs), so a
# toy checkpoint loads into ./mask_rcnn_ltm_swin_t_toy.py's backbone.
# ./ltm_swin_t_noib_in1k_toy.py is this file with ib_weight=0 (same run,
# CE only) and ./swin_t_in1k_toy.py the Swin-T baseline.
_base_ = ['../ltm_swin_t_8xb128_in1k.py', './_base_/toy_in1k.py']

embed_dims = 48
model = dict(
    backbone=dict(
        embed_dims=embed_dims,
        depths=[1, 1, 2, 1],
        num_heads=[2, 4, 8, 16],
        pretrain_img_size={{_base_.toy_in1k.img_size}},
        drop_path_rate=0.0),
    head=dict(
        in_channels=embed_dims * 8,
        # IB tables sized for the toy set: K = K_in = 4 clusters (= classes,
        # the paper's rule), input images pooled to 16x16
        num_classes=4,
        num_clusters=4,
        num_input_clusters=4,
        input_size=16))
data_preprocessor = {{_base_.toy_in1k.data_preprocessor}}
train_dataloader = {{_base_.toy_in1k.train_dataloader}}
val_dataloader = {{_base_.toy_in1k.val_dataloader}}
test_dataloader = {{_base_.toy_in1k.test_dataloader}}
val_evaluator = {{_base_.toy_in1k.val_evaluator}}
test_evaluator = {{_base_.toy_in1k.test_evaluator}}
custom_hooks = {{_base_.toy_in1k.custom_hooks}}
train_cfg = {{_base_.toy_in1k.train_cfg}}
param_scheduler = {{_base_.toy_in1k.param_scheduler}}
default_hooks = {{_base_.toy_in1k.default_hooks}}
randomness = {{_base_.toy_in1k.randomness}}
optim_wrapper = dict(optimizer=dict(lr=1e-3))
