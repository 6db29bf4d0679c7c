# old name, kept so that documented commands keep working
_base_ = ['./ltm_efficientvit/segformer_ltm-efficientvit-b1_8xb2-160k_ade20k-512x512.py']
