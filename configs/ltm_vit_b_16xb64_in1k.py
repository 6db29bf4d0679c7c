# old name, kept so that documented commands keep working
_base_ = ['./ltm_vit/ltm-deit-base_16xb64_in1k.py']
