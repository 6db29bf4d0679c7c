# old name, kept so that documented commands keep working
_base_ = ['./ltm_mobilevit/ltm-mobilevit-xsmall_4xb64_in1k.py']
