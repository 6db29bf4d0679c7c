# The paper's training objective as every LTM ImageNet-1k config adds it to
# its baseline (authors' train.py: --ib-weight 0.1 --ib-warmup-ratio 0.3):
# loss = CE (the baseline's, label smoothing 0.1, Mixup/CutMix soft labels
# unchanged) + 0.1 * variational IB bound, CE only for the first 30% of the
# epochs, with K = 1000 output clusters of the pooled feature (refreshed
# every epoch after the warm-up, Q consistent with them) and 1000 input
# clusters of 32x32-pooled images (once, before training); see
# mmltm/models/losses/ib_loss.py for the bound and the decisions taken
# (soft labels under mixup, pooled inputs, the Q/centroid bug fixed).
#
# An LTM config lists its baseline and this file in ``_base_`` and takes the
# head settings (merged into the baseline's head) and the hook:
#
#     model = dict(backbone=dict(compression_ratio=...),
#                  head=_base_.ltm_ib.head)
#     custom_hooks = [_base_.pop('ltm_ib').hook]
#
# (``pop`` keeps the helper key out of the resolved config; one key because
# mmengine refuses a key that two ``_base_`` files define.)
ltm_ib = dict(
    head=dict(
        type='IBLinearClsHead',
        ib_weight=0.1,
        ib_loss=dict(type='VariationalIBLoss', beta=1.0),
        num_clusters=1000,
        num_input_clusters=1000,
        input_size=32),
    hook=dict(
        type='IBClusterHook',
        warmup_ratio=0.3,
        interval=1,  # epochs
        num_input_samples=64000,  # ~ the authors' 1000 batches of 64
        num_feature_samples=None,  # the whole shard of each rank
        input_kmeans_iters=20,
        output_kmeans_iters=60))
