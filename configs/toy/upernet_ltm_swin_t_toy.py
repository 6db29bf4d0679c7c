# Toy LTM-Swin UperNet: ./upernet_swin_t_toy.py with only the backbone
# swapped, exactly as ../ltm_swin/upernet_ltm-swin-t_8xb2-160k_ade20k-512x512.py swaps it in the real
# recipe (type and compression_ratio; no pretrained weights for the toy).
# tests/test_configs checks that the two swaps stay the same.
_base_ = ['./upernet_swin_t_toy.py']
custom_imports = dict(imports=['mmltm', 'mmltm.engine.checkpoint_fix'],
                      allow_failed_imports=False)

model = dict(
    backbone=dict(type='LTMSwinTransformer', compression_ratio=0.7))
