# LTM-Swin-S on ImageNet-1k from scratch with the paper's objective:
# ./swin-small_8xb128_in1k.py + token merging (compression_ratio 0.7) + the IB
# term, exactly as ./ltm-swin-tiny_8xb128_in1k.py does for Swin-T (see there).
_base_ = ['./swin-small_8xb128_in1k.py']

model = dict(
    backbone=dict(compression_ratio=0.7),
    head=dict(
        type='IBLinearClsHead',
        ib_weight=0.1,
        ib_loss=dict(type='VariationalIBLoss', beta=1.0),
        num_clusters=1000,
        num_input_clusters=1000,
        input_size=32))

custom_hooks = [
    dict(
        type='IBClusterHook',
        warmup_ratio=0.3,
        interval=1,
        num_input_samples=64000,
        num_feature_samples=None,
        input_kmeans_iters=20,
        output_kmeans_iters=60)
]
