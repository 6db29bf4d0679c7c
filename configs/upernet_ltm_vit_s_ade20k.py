# old name, kept so that documented commands keep working
_base_ = ['./ltm_vit/upernet_ltm-deit-s-p16_mln_8xb2-160k_ade20k-512x512.py']
