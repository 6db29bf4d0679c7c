# Toy Swin-T ImageNet baseline: ./ltm_swin_t_in1k_toy.py (same data, model
# size and schedule) with the real baseline's choices of
# ../ltm_swin/swin-tiny_8xb128_in1k.py (./_base_/toy_in1k_baseline.py): no
# token merging, mmpretrain's LinearClsHead (Mixup/CutMix soft labels, so no
# accuracy in training), no IB hook.
_base_ = ['./ltm_swin_t_in1k_toy.py', './_base_/toy_in1k_baseline.py']
locals().update(_base_.pop('toy_in1k_baseline'))

model.head.update(
    type='LinearClsHead', in_channels=48 * 8, init_cfg=None, cal_acc=False)
