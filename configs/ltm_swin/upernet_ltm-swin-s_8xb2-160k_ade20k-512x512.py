# LTM-Swin-S UperNet on ADE20K, 160k: ./upernet_swin-s_8xb2-160k_ade20k-512x512.py with only
# the backbone swapped (see ./upernet_ltm-swin-t_8xb2-160k_ade20k-512x512.py for the notes on
# weights).
_base_ = ['./upernet_swin-s_8xb2-160k_ade20k-512x512.py']
custom_imports = dict(imports=['mmltm', 'mmltm.engine.checkpoint_fix'],
                      allow_failed_imports=False)

ltm_pretrained = 'work_dirs/ltm-swin-small_8xb128_in1k/epoch_300.pth'
model = dict(
    backbone=dict(
        type='LTMSwinTransformer',
        compression_ratio=0.7,
        convert_weights=False,
        init_cfg=dict(
            type='Pretrained', checkpoint=ltm_pretrained,
            prefix='backbone.')))
