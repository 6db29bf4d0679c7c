# LTM-EfficientViT-B1 r288 on ImageNet-1k (LTM paper table: 81.0 top-1 vs
# 80.4; 0.70 vs 0.86 G).
#
# = ./efficientvit-b1_4xb64_in1k-288px.py (README recipe, 288x288)
#   + merging as in ./ltm-efficientvit-b1_4xb64_in1k.py with
#     compression_ratio 0.45: 0.719 vs 0.870 G = 0.826x with mmengine's
#     counter (the paper's 0.814x; r224's 0.55 would give 0.853x here)
#   + the IB objective of ./ltm-efficientvit-b1_4xb64_in1k.py.
_base_ = ['./efficientvit-b1_4xb64_in1k-288px.py']

model = dict(
    backbone=dict(compression_ratio=0.45),
    head=dict(
        type='IBLinearClsHead',
        ib_weight=0.1,
        ib_loss=dict(type='VariationalIBLoss', beta=1.0),
        num_clusters=1000,
        num_input_clusters=1000,
        input_size=32))

custom_hooks = [
    dict(
        type='EMAHook',
        momentum=5e-4,
        update_buffers=True,
        priority='ABOVE_NORMAL'),
    dict(
        type='IBClusterHook',
        warmup_ratio=0.3,
        interval=1,
        num_input_samples=64000,
        num_feature_samples=None,
        input_kmeans_iters=20,
        output_kmeans_iters=60)
]
