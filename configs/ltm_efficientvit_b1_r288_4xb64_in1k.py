# old name, kept so that documented commands keep working
_base_ = ['./ltm_efficientvit/ltm-efficientvit-b1_4xb64_in1k-288px.py']
