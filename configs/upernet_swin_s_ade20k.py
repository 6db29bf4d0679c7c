# old name, kept so that documented commands keep working
_base_ = ['./ltm_swin/upernet_swin-s_8xb2-160k_ade20k-512x512.py']
