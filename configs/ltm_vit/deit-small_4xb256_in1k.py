# Baseline for LTM-ViT-S on ImageNet-1k: mmpretrain's DeiT-S (= ViT-S/16)
# recipe (deit/deit-small_4xb256_in1k.py, 80.69 top-1: 300 epochs, AdamW lr
# 1e-3 for batch 1024, wd 0.05, 20-epoch linear warm-up then cosine, label
# smoothing 0.1, Mixup 0.8 + CutMix 1.0, RandAugment, random erasing 0.25,
# grad clip 5; no decay on norms, biases, cls_token, pos_embed) at 4 GPUs x
# 256 images. The LTM paper's ViT-S row: 81.2 top-1, 4.3 GFLOPs (we count
# 4.25 G with mmengine's counter, tools/analysis_tools/get_flops.py).
#
# The backbone is mmltm's LTMVisionTransformer with compression_ratio=1.0,
# which computes exactly mmpretrain's VisionTransformer
# (tests/test_models/test_ltm_vit.py), so the checkpoint has the keys of
# LTM-ViT-S; ./ltm-deit-small_4xb256_in1k.py differs from this file in
# compression_ratio plus the IB objective (head and hook).
_base_ = [
    'mmpretrain::deit/deit-small_4xb256_in1k.py',
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
        arch='deit-small',
        compression_ratio=1.0,
        img_size=224,
        patch_size=16))

# no weight decay on the mask modules (../_base_/ltm_paramwise.py)
optim_wrapper = dict(
    paramwise_cfg=dict(custom_keys=_base_.pop('ltm_custom_keys')))
