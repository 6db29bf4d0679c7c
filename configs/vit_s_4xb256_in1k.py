# old name, kept so that documented commands keep working
_base_ = ['./ltm_vit/deit-small_4xb256_in1k.py']
