# Baseline for LTM-EfficientViT-B1 r288: ./efficientvit-b1_4xb64_in1k.py at
# 288x288 crops (the paper's row: 80.4 top-1, 0.86 GFLOPs; we count 0.87 G).
_base_ = ['./efficientvit-b1_4xb64_in1k.py', '../_base_/ltm_readme_pipelines.py']

img_size = 288
# the README's pipelines at these crops (crop ratio 0.875)
locals().update(
    _base_.pop('ltm_readme_pipelines').at(img_size, img_size * 8 // 7))
