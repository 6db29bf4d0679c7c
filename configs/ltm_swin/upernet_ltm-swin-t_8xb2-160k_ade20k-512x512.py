# LTM-Swin-T UperNet on ADE20K, 160k: ./upernet_swin-t_8xb2-160k_ade20k-512x512.py with only
# the backbone swapped for LTMSwinTransformer.
#
# LTMSwinTransformer extends mmdet's SwinTransformer, which takes every
# argument of mmseg's (same architecture, same state-dict keys). Weights: the
# LTM-Swin-T ImageNet-1k checkpoint of ./ltm-swin-tiny_8xb128_in1k.py, keys under
# ``prefix`` (see ./mask-rcnn_ltm-swin-t-p4-w7_fpn_1x_coco.py for the checks made when it
# loads); mmseg's pre-converted Swin .pth (bare backbone keys) loads too.
_base_ = ['./upernet_swin-t_8xb2-160k_ade20k-512x512.py']
custom_imports = dict(imports=['mmltm', 'mmltm.engine.checkpoint_fix'],
                      allow_failed_imports=False)

ltm_pretrained = 'work_dirs/ltm-swin-tiny_8xb128_in1k/epoch_300.pth'
model = dict(
    backbone=dict(
        type='LTMSwinTransformer',
        compression_ratio=0.7,
        convert_weights=False,
        init_cfg=dict(
            type='Pretrained', checkpoint=ltm_pretrained,
            prefix='backbone.')))
