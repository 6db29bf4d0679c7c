# Toy LTM-EfficientViT-B1 segmentation: ./segformerhead_efficientvit_b1_toy.py
# with only the backbone swapped, exactly as
# ../ltm_efficientvit/segformer_ltm-efficientvit-b1_8xb2-160k_ade20k-512x512.py swaps it in the real recipe
# (type and compression_ratio; no pretrained weights for the toy).
_base_ = ['./segformerhead_efficientvit_b1_toy.py']
custom_imports = dict(imports=['mmltm', 'mmltm.engine.checkpoint_fix'],
                      allow_failed_imports=False)

model = dict(
    backbone=dict(type='LTMEfficientViT', compression_ratio=0.55))
