# LTM-Swin-T on ImageNet-1k, trained from scratch with the paper's objective
# (LTM paper table: 81.8 top-1 vs Swin-T 81.3; 3.8 vs 4.5 GFLOPs).
#
# = ./swin-tiny_8xb128_in1k.py (mmpretrain's Swin-T recipe, batch 8 x 128)
#   + token merging in every block (compression_ratio 0.7, see
#     mmltm/models/backbones/ltm_swin.py for why 0.7 gives the paper's 0.84x)
#   + loss = CE (label smoothing 0.1, Mixup/CutMix soft labels, unchanged)
#            + 0.1 * variational IB bound, CE only for the first 30% of the
#            epochs: the IB head and hook of ../_base_/ltm_ib_in1k.py (see
#            there, and mmltm/models/losses/ib_loss.py for the bound).
_base_ = ['./swin-tiny_8xb128_in1k.py', '../_base_/ltm_ib_in1k.py']

model = dict(
    backbone=dict(compression_ratio=0.7),
    head=_base_.ltm_ib.head)

custom_hooks = [_base_.pop('ltm_ib').hook]  # ../_base_/ltm_ib_in1k.py

