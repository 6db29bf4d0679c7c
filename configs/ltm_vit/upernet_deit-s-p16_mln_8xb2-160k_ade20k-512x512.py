# Baseline for LTM-ViT-S UperNet on ADE20K: mmseg's DeiT-S + MultiLevelNeck
# + UperNet recipe (vit/vit_deit-s16_mln_upernet_8xb2-160k_ade20k-512x512.py,
# 43.82 mIoU single-scale: 512x512 crops, 160k iterations, 8 GPUs x 2, AdamW
# lr 6e-5 / wd 0.01, no decay on pos_embed / cls_token / norms, LinearLR
# warm-up 1500 iters then PolyLR; UPerHead on blocks 3, 6, 9, 12 rescaled
# x4, x2, x1, x0.5 by the MLN neck, FCN auxiliary head, SyncBN in heads).
#
# One change: the backbone is mmpretrain's VisionTransformer (arch
# 'deit-small', the class LTM-ViT extends) instead of mmseg's own ViT (same
# architecture, different module names), with the DeiT-S weights of
# mmpretrain (prefix 'backbone.'; their 14x14 position embedding is resized
# to the 32x32 grid on load). As mmseg's non-'ln' config, no final norm.
# ./upernet_ltm-deit-s-p16_mln_8xb2-160k_ade20k-512x512.py differs from this file only in the backbone.
_base_ = [
    'mmseg::vit/vit_deit-s16_mln_upernet_8xb2-160k_ade20k-512x512.py',
    '../_base_/ltm_paramwise.py'
]
custom_imports = dict(imports=['mmltm', 'mmltm.engine.checkpoint_fix'],
                      allow_failed_imports=False)

pretrained = ('https://download.openmmlab.com/mmclassification/v0/deit/'
              'deit-small_pt-4xb256_in1k_20220218-9425b9bb.pth')
model = dict(
    pretrained=None,
    backbone=dict(
        _delete_=True,
        type='mmpretrain.VisionTransformer',
        arch='deit-small',
        img_size=(512, 512),
        patch_size=16,
        drop_path_rate=0.1,
        out_type='featmap',
        out_indices=(2, 5, 8, 11),
        final_norm=False,
        init_cfg=dict(
            type='Pretrained', checkpoint=pretrained, prefix='backbone.')))

# no weight decay on the mask modules (../_base_/ltm_paramwise.py)
optim_wrapper = dict(
    paramwise_cfg=dict(custom_keys=_base_.pop('ltm_custom_keys')))
