# Toy variant of ../ltm_mobilevit/ltm-mobilevit-xsmall_4xb64_in1k.py
# (LTM-MobileViT-XS + IB objective on ImageNet-1k): the same classifier,
# backbone (the real MobileViT-XS, 2.3 M params), head, loss, IB hook,
# optimizer type and pipeline structure, with the toy ImageNet recipe of
# ./_base_/toy_in1k.py (data, schedule, IB tables: see there; at 112x112
# the patch grids of the three MobileViT blocks are 7x7, 4x4 and 2x2). No
# EMA, no AMP.
# ./mobilevit_xs_in1k_toy.py is the MobileViT-XS baseline.
_base_ = ['../ltm_mobilevit/ltm-mobilevit-xsmall_4xb64_in1k.py', './_base_/toy_in1k.py']
locals().update(_base_.pop('toy_in1k'))  # data, IB tables, schedule

# plain fp32 on the CPU (the real recipe uses AMP)
optim_wrapper.update(type='OptimWrapper')
