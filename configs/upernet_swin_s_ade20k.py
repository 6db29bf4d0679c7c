# Baseline: mmseg's UperNet Swin-S on ADE20K, 512x512, 160k iterations,
# reported 47.72 mIoU single-scale. Same recipe as ./upernet_swin_t_ade20k.py
# with depths [2, 2, 18, 2] and Swin-S ImageNet-1k weights. Unchanged from
# the installed mmseg package.
_base_ = [
    'mmseg::swin/'
    'swin-small-patch4-window7-in1k-pre_upernet_8xb2-160k_ade20k-512x512.py'
]
