# Toy LTM-ViT UperNet: ./upernet_vit_s_toy.py with only the backbone
# swapped, exactly as ../ltm_vit/upernet_ltm-deit-s-p16_mln_8xb2-160k_ade20k-512x512.py swaps it in the real
# recipe (type and compression_ratio; no pretrained weights for the toy).
_base_ = ['./upernet_vit_s_toy.py']
custom_imports = dict(imports=['mmltm', 'mmltm.engine.checkpoint_fix'],
                      allow_failed_imports=False)

model = dict(
    backbone=dict(type='LTMVisionTransformer', compression_ratio=0.78))
