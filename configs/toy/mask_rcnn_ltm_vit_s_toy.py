# Toy LTM-ViT Mask R-CNN: ./mask_rcnn_vit_s_toy.py with only the backbone
# swapped, exactly as ../ltm_vit/mask-rcnn_ltm-deit-s-p16_sfp_1x_coco.py swaps it in the real
# recipe (type and compression_ratio; no pretrained weights for the toy).
_base_ = ['./mask_rcnn_vit_s_toy.py']
custom_imports = dict(imports=['mmltm', 'mmltm.engine.checkpoint_fix'],
                      allow_failed_imports=False)

model = dict(
    backbone=dict(type='LTMVisionTransformer', compression_ratio=0.78))
