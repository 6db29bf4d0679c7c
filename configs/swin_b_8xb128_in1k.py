# old name, kept so that documented commands keep working
_base_ = ['./ltm_swin/swin-base_8xb128_in1k.py']
