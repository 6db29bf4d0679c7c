# Baseline for LTM-ViT-B on ImageNet-1k: mmpretrain's DeiT-B (= ViT-B/16)
# recipe (deit/deit-base_16xb64_in1k.py, 81.76 top-1: as DeiT-S plus drop
# path 0.1 and EMA) at 16 GPUs x 64 images. The LTM paper's ViT-B row:
# 83.7 top-1, 17.6 GFLOPs (we count 16.87 G with mmengine's counter).
#
# The backbone is LTMVisionTransformer with compression_ratio=1.0 (exactly
# mmpretrain's VisionTransformer); ./ltm-deit-base_16xb64_in1k.py differs in
# compression_ratio plus the IB objective.
_base_ = [
    'mmpretrain::deit/deit-base_16xb64_in1k.py',
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
        type='LTMVisionTransformer',
        arch='deit-base',
        compression_ratio=1.0,
        img_size=224,
        patch_size=16,
        drop_path_rate=0.1))

# no weight decay on the mask modules (../_base_/ltm_paramwise.py)
optim_wrapper = dict(
    paramwise_cfg=dict(custom_keys=_base_.pop('ltm_custom_keys')))
