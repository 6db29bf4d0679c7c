# Baseline for LTM-MobileViT-S on ImageNet-1k: mmpretrain's MobileViT-S
# (5.6 M params; Apple's weights converted by mmpretrain: 78.25 top-1) trained
# with the LTM authors' README recipe (../_base_/ltm_readme_in1k_256.py: 300
# epochs, 4 GPUs x 64, AdamW 2e-4, EMA, 256x256 crops). The LTM paper's
# MobileViT-S row: 78.4 top-1, 1.4 GFLOPs (at 224x224; we count 1.44 G with
# mmengine's counter, tools/analysis_tools/get_flops.py).
#
# The backbone is mmltm's LTMMobileViT with compression_ratio=1.0, which
# computes exactly mmpretrain's MobileViT (tests/test_models/
# test_ltm_mobilevit.py); ./ltm-mobilevit-small_4xb64_in1k.py differs from this
# file in compression_ratio plus the IB objective (head and hook).
_base_ = [
    'mmpretrain::_base_/models/mobilevit/mobilevit_s.py',
    '../_base_/ltm_readme_in1k_256.py',
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
        type='LTMMobileViT',
        arch='small',
        compression_ratio=1.0),
    head=dict(
        in_channels=640,
        loss=dict(
            _delete_=True,
            type='LabelSmoothLoss',
            label_smooth_val=0.1,
            mode='original')))

