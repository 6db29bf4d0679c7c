# LTM-ViT-S on ImageNet-1k, trained from scratch with the paper's objective
# (LTM paper table: 81.8 top-1 vs ViT-S 81.2; 3.7 vs 4.3 GFLOPs).
#
# = ./deit-small_4xb256_in1k.py (mmpretrain's DeiT-S recipe, batch 4 x 256)
#   + token merging in every block's FFN (compression_ratio 0.78: 3.68 vs
#     4.25 GFLOPs = 0.867x with mmengine's counter, the paper's 0.86x; see
#     mmltm/models/backbones/ltm_vit.py)
#   + loss = CE (label smoothing 0.1, Mixup/CutMix soft labels, unchanged)
#            + 0.1 * variational IB bound on the class-token feature, CE
#            only for the first 30% of the epochs (authors' train.py), as in
#            ../ltm_swin/ltm-swin-tiny_8xb128_in1k.py (see mmltm/models/losses/ib_loss.py).
_base_ = ['./deit-small_4xb256_in1k.py', '../_base_/ltm_ib_in1k.py']

model = dict(
    backbone=dict(compression_ratio=0.78),
    head=dict(  # = DeiT-S's single Linear on the cls token
        _base_.ltm_ib.head,
        _delete_=True,
        num_classes=1000,
        in_channels=384,
        loss=dict(
            type='LabelSmoothLoss', label_smooth_val=0.1, mode='original')))

custom_hooks = [_base_.pop('ltm_ib').hook]  # ../_base_/ltm_ib_in1k.py
