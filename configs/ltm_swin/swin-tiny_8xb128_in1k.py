# Baseline for LTM-Swin-T on ImageNet-1k: mmpretrain's Swin-T recipe
# (swin_transformer/swin-tiny_16xb64_in1k.py, 81.18 top-1: 300 epochs, AdamW
# lr 1e-3 for batch 1024, wd 0.05, 20-epoch linear warm-up then cosine,
# label smoothing 0.1, Mixup 0.8 + CutMix 1.0, RandAugment, random erasing
# 0.25, drop path 0.2, grad clip 5) at 8 GPUs x 128 images (= 1024, so the
# lr is the recipe's with no scaling).
#
# The backbone is mmltm's LTMSwinTransformer with compression_ratio=1.0,
# which computes exactly mmdet's Swin (tests/test_models/test_ltm_swin.py):
# its checkpoint has the same keys as LTM-Swin-T's and loads into the Swin
# Mask R-CNN / UperNet configs the same way, and ./ltm-swin-tiny_8xb128_in1k.py
# differs from this file only in compression_ratio and the IB objective
# (head and hook).
# For classification only the last stage is returned (out_indices=(3, ),
# its norm3 is the final LayerNorm); a detector's extra per-stage norms
# norm0..norm2 are the only backbone keys such a checkpoint cannot provide.
_base_ = [
    'mmpretrain::swin_transformer/swin-tiny_16xb64_in1k.py',
    '../_base_/ltm_paramwise.py'
]
custom_imports = dict(imports=['mmltm', 'mmltm.engine.checkpoint_fix'],
                      allow_failed_imports=False)

model = dict(
    # = mmpretrain's ImageClassifier that also passes the images to IB heads
    # (mmltm/models/classifiers), so that the LTM config differs only in the
    # backbone ratio, the head and the hook
    type='IBImageClassifier',
    backbone=dict(
        _delete_=True,
        type='LTMSwinTransformer',
        arch='tiny',
        compression_ratio=1.0,
        pretrain_img_size=224,
        drop_path_rate=0.2,
        out_indices=(3, )))

train_dataloader = dict(batch_size=128)
val_dataloader = dict(batch_size=128)
test_dataloader = val_dataloader

# no weight decay on the mask modules (../_base_/ltm_paramwise.py)
optim_wrapper = dict(
    paramwise_cfg=dict(custom_keys=_base_.pop('ltm_custom_keys')))
