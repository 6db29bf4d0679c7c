# Toy variant of ../ltm_efficientvit/ltm-efficientvit-b1_4xb64_in1k.py
# (LTM-EfficientViT-B1 + IB objective on ImageNet-1k): the same classifier,
# backbone (the real EfficientViT-B1, 9.1 M params), neck, head, loss, IB
# hook, optimizer type and pipeline structure, with the toy ImageNet recipe
# of ./_base_/toy_in1k.py (data, schedule, IB tables: see there; at 112x112
# the attention stages see 7x7 and 4x4 maps). No EMA, no AMP.
# ./efficientvit_b1_in1k_toy.py is the EfficientViT-B1 baseline.
_base_ = ['../ltm_efficientvit/ltm-efficientvit-b1_4xb64_in1k.py', './_base_/toy_in1k.py']
locals().update(_base_.pop('toy_in1k'))  # data, IB tables, schedule

# plain fp32 on the CPU (the real recipe uses AMP)
optim_wrapper.update(type='OptimWrapper')
