# old name, kept so that documented commands keep working
_base_ = ['./ltm_swin/upernet_ltm-swin-t_8xb2-160k_ade20k-512x512.py']
