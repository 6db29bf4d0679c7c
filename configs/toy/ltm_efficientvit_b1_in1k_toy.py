# Toy variant of ../ltm_efficientvit_b1_4xb64_in1k.py (LTM-EfficientViT-B1
# + IB objective on ImageNet-1k): the same classifier, backbone (the real
# EfficientViT-B1, 9.1 M params), neck, head, loss, IB hook, optimizer type
# and pipeline structure, with the toy ImageNet recipe of
# ./_base_/toy_in1k.py (data, schedule, IB tables: see there; at 112x112 the
# attention stages see 7x7 and 4x4 maps). No EMA, no AMP.
# ./efficientvit_b1_in1k_toy.py is the EfficientViT-B1 baseline.
_base_ = ['../ltm_efficientvit_b1_4xb64_in1k.py', './_base_/toy_in1k.py']

model = dict(
    head=dict(
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
# plain fp32 on the CPU (the real recipe uses AMP)
optim_wrapper = dict(type='OptimWrapper', optimizer=dict(lr=1e-3))
