# Toy LTM-Swin Mask R-CNN: ./mask_rcnn_swin_t_toy.py with only the backbone
# swapped, exactly as ../ltm_swin/mask-rcnn_ltm-swin-t-p4-w7_fpn_1x_coco.py swaps it in the real
# recipe (type and compression_ratio; no pretrained weights for the toy).
# tests/test_configs checks that the two swaps stay the same.
_base_ = ['./mask_rcnn_swin_t_toy.py']
custom_imports = dict(imports=['mmltm', 'mmltm.engine.checkpoint_fix'],
                      allow_failed_imports=False)

model = dict(
    backbone=dict(type='LTMSwinTransformer', compression_ratio=0.7))
