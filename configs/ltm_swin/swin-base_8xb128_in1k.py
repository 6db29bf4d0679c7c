# Baseline for LTM-Swin-B on ImageNet-1k: mmpretrain's Swin-B recipe
# (swin_transformer/swin-base_16xb64_in1k.py: the Swin-T recipe of
# ./swin-tiny_8xb128_in1k.py with drop path 0.5) at 8 GPUs x 128 images, with
# LTMSwinTransformer at compression_ratio=1.0 (= mmdet's Swin); see
# ./swin-tiny_8xb128_in1k.py for the reasoning.
_base_ = [
    'mmpretrain::swin_transformer/swin-base_16xb64_in1k.py',
    '../_base_/ltm_paramwise.py'
]
custom_imports = dict(imports=['mmltm'], allow_failed_imports=False)

model = dict(
    # = mmpretrain's ImageClassifier that also passes the images to IB heads
    # (mmltm/models/classifiers), so that the LTM config differs only in the
    # backbone ratio, the head and the hook
    type='IBImageClassifier',
    backbone=dict(
        _delete_=True,
        type='LTMSwinTransformer',
        arch='base',
        compression_ratio=1.0,
        pretrain_img_size=224,
        drop_path_rate=0.5,
        out_indices=(3, )))

train_dataloader = dict(batch_size=128)
val_dataloader = dict(batch_size=128)
test_dataloader = val_dataloader

# no weight decay on the mask modules (../_base_/ltm_paramwise.py)
optim_wrapper = dict(
    paramwise_cfg=dict(custom_keys=_base_.pop('ltm_custom_keys')))
