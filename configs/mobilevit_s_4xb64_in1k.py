# old name, kept so that documented commands keep working
_base_ = ['./ltm_mobilevit/mobilevit-small_4xb64_in1k.py']
