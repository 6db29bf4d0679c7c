# LTM-Swin-T Mask R-CNN, 3x multi-scale-crop + AMP:
# ./mask-rcnn_swin-t-p4-w7_fpn_amp-ms-crop-3x_coco.py with only the backbone swapped (see
# ./mask-rcnn_ltm-swin-t-p4-w7_fpn_1x_coco.py for the weight-loading notes).
_base_ = ['./mask-rcnn_swin-t-p4-w7_fpn_amp-ms-crop-3x_coco.py']
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
