# What every toy config shares (through ./toy_coco.py, ./toy_ade.py and
# ./toy_in1k.py): the toy data root, seed 0, in-process data loaders, the
# toy ViT's and Swin's sizes and, for the iteration-based (dense) toy
# configs, one validation and one checkpoint at the last iteration, a log
# line every 20 iterations, no visualisation and a 1% linear warm-up.
#
# How the toy bases hand their settings on: a toy config inherits its real
# config *and* a toy base, and mmengine refuses a top-level key that two
# ``_base_`` files both define; so each toy base keeps its settings under one
# helper key, and the toy config turns that key into its own top-level keys
# with ``locals().update(_base_.pop('<key>'))`` (``_base_`` is the merged
# base dict while a config file runs; ``pop`` keeps the helper out of the
# resolved config). The result is the same as writing the settings out in
# the toy config: tests/test_configs/test_resolved_configs.py compares every
# resolved config with the one it replaced.
#
# The functions below turn an iteration count into the loop, hooks and
# warm-up (they depend on the toy config's own ``max_iters``), build the
# loaders and give the toy ViT's and Swin's sizes; mmengine drops functions
# from a loaded config, so they never reach the Runner.


def _iter_runtime(max_iters, replace_loop=False):
    """``(train_cfg, default_hooks)`` of a toy run of ``max_iters``
    iterations; ``replace_loop``: the real config's loop is epoch based
    (mmdet's 1x), replace it by mmengine's IterBasedTrainLoop."""
    train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
    if replace_loop:
        train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', **train_cfg)
    default_hooks = dict(
        logger=dict(interval=20),
        checkpoint=dict(by_epoch=False, interval=max_iters, max_keep_ckpts=2),
        visualization=dict(draw=False))
    return train_cfg, default_hooks


def _warmup(iters):
    """The toy runs' linear warm-up from 1% of the lr over ``iters``."""
    return dict(
        type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=iters)


def _vit_arch(embed_dims):
    """The toy ViT of every toy ViT config: 4 blocks, 3 heads."""
    return dict(
        _delete_=True,
        embed_dims=embed_dims,
        num_layers=4,
        num_heads=3,
        feedforward_channels=embed_dims * 4)


def _loader(batch_size, dataset, **kwargs):
    """A loader of a toy set: in the main process (the sets are tiny)."""
    return dict(
        batch_size=batch_size,
        num_workers=0,
        persistent_workers=False,
        dataset=dataset,
        **kwargs)


def _swin_arch(embed_dims):
    """The toy Swin of every toy Swin config (``embed_dims`` 48 there):
    depths [1, 1, 2, 1], heads 2-16, no drop path."""
    return dict(
        embed_dims=embed_dims,
        depths=[1, 1, 2, 1],
        num_heads=[2, 4, 8, 16],
        drop_path_rate=0.0)


toy_runtime = dict(
    toy_data_root='data/toy',  # tools/train.py generates missing toy data here
    iter_runtime=_iter_runtime,
    warmup=_warmup,
    loader=_loader,
    vit_arch=_vit_arch,
    swin_arch=_swin_arch,
    randomness=dict(seed=0))
