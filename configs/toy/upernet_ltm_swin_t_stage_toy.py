# Toy UperNet with LTM-Swin-T in merge_scope='stage':
# ./upernet_ltm_swin_t_toy.py with only the backbone's merge scope and ratio
# changed. Each stage's first block merges, the stage's other blocks (attention
# included) run on the merged grid, the stage output is unmerged as a residual
# (see mmltm/models/layers/merge_scope.py). The ratio is LTM-Swin-T's 'stage'
# default (per stage: 56x56 -> 42x42 and 28x28 -> 14x14 at 224x224, stages 3-4
# unmerged), whose backbone FLOPs at the toy sizes are within 0.02 of the 'ffn'
# config's 0.7 (mmengine's counter: 56x56 0.954 vs 0.936, 128x128 0.891 vs
# 0.894, 256x256 0.869 vs 0.863).
_base_ = ['./upernet_ltm_swin_t_toy.py']

model = dict(
    backbone=dict(merge_scope='stage', compression_ratio=(0.5625, 0.25, 1.0, 1.0)))
