# LTM-Swin-S UperNet on ADE20K, 160k: ./upernet_swin_s_ade20k.py with only
# the backbone swapped (see ./upernet_ltm_swin_t_ade20k.py for the notes on
# weights).
_base_ = ['./upernet_swin_s_ade20k.py']
custom_imports = dict(imports=['mmltm'], allow_failed_imports=False)

ltm_pretrained = 'work_dirs/ltm_swin_s_8xb128_in1k/epoch_300.pth'
model = dict(
    backbone=dict(
        type='LTMSwinTransformer',
        compression_ratio=0.7,
        convert_weights=False,
        init_cfg=dict(
            type='Pretrained', checkpoint=ltm_pretrained,
            prefix='backbone.')))
