# Baseline: mmseg's UperNet Swin-S on ADE20K, 512x512, 160k iterations,
# reported 47.72 mIoU single-scale. Same recipe as ./upernet_swin-t_8xb2-160k_ade20k-512x512.py
# with depths [2, 2, 18, 2] and Swin-S ImageNet-1k weights. Unchanged (but for the
# mask-module decay rule of ../_base_/ltm_paramwise.py, a no-op for a Swin
# without mask modules) from the installed mmseg package.
_base_ = [
    'mmseg::swin/'
    'swin-small-patch4-window7-in1k-pre_upernet_8xb2-160k_ade20k-512x512.py',
    '../_base_/ltm_paramwise.py'
]

# no weight decay on the mask modules (../_base_/ltm_paramwise.py)
optim_wrapper = dict(
    paramwise_cfg=dict(custom_keys=_base_.pop('ltm_custom_keys')))
