# LTM-Swin-T Mask R-CNN, 3x multi-scale-crop + AMP:
# ./mask_rcnn_swin_t_3x_coco.py with only the backbone swapped (see
# ./mask_rcnn_ltm_swin_t_coco.py for the weight-loading notes).
_base_ = ['./mask_rcnn_swin_t_3x_coco.py']
custom_imports = dict(imports=['mmltm'], allow_failed_imports=False)

ltm_pretrained = 'work_dirs/ltm_swin_t_8xb128_in1k/epoch_300.pth'
model = dict(
    backbone=dict(
        type='LTMSwinTransformer',
        compression_ratio=0.7,
        convert_weights=False,
        init_cfg=dict(
            type='Pretrained', checkpoint=ltm_pretrained,
            prefix='backbone.')))
