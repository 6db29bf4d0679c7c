# Baseline: mmseg's UperNet Swin-T on ADE20K, 512x512 crops, 160k iterations
# (8 GPUs x 2 images), reported 44.41 mIoU single-scale.
#
# Unchanged (but for the
# mask-module decay rule of ../_base_/ltm_paramwise.py, a no-op for a Swin
# without mask modules) from the installed mmseg package (mmseg/.mim/configs/swin/
# swin-tiny-patch4-window7-in1k-pre_upernet_8xb2-160k_ade20k-512x512.py):
# Swin-T (drop_path 0.3) with ImageNet-1k weights, UPerHead on
# [96, 192, 384, 768] + FCN auxiliary head on stage 3, SyncBN in the heads,
# AdamW lr 6e-5 / wd 0.01, LinearLR warm-up 1500 iters then PolyLR.
# ./upernet_ltm-swin-t_8xb2-160k_ade20k-512x512.py differs from this file only in the backbone.
_base_ = [
    'mmseg::swin/'
    'swin-tiny-patch4-window7-in1k-pre_upernet_8xb2-160k_ade20k-512x512.py',
    '../_base_/ltm_paramwise.py'
]

# no weight decay on the mask modules (../_base_/ltm_paramwise.py)
optim_wrapper = dict(
    paramwise_cfg=dict(custom_keys=_base_.pop('ltm_custom_keys')))
