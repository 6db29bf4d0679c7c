# Toy variant of ../ltm_vit_s_4xb256_in1k.py (LTM-ViT-S + IB objective on
# ImageNet-1k): the same classifier, head, loss, IB hook, optimizer type and
# pipeline structure, with the toy ImageNet recipe of ./_base_/toy_in1k.py
# (data, schedule, IB tables: see there). Toy-only model size (classes
# unchanged): a ViT with 96 dims, 4 blocks, 3 heads (a 7x7 patch grid at
# 112x112), the same compression_ratio.
# ./vit_s_in1k_toy.py is the ViT-S baseline of the same size.
_base_ = ['../ltm_vit_s_4xb256_in1k.py', './_base_/toy_in1k.py']

embed_dims = 96
model = dict(
    backbone=dict(
        arch=dict(
            _delete_=True,
            embed_dims=embed_dims,
            num_layers=4,
            num_heads=3,
            feedforward_channels=embed_dims * 4),
        img_size={{_base_.toy_in1k.img_size}}),
    head=dict(
        in_channels=embed_dims,
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
