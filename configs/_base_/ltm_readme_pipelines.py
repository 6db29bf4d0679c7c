# The data pipelines of the LTM authors' README recipe
# (./ltm_readme_in1k_256.py) at any crop size, for that recipe (256) and the
# configs that train it at another size (EfficientViT-B1 at 224 and 288):
# RandomResizedCrop + flip + RandAugment (timm's increasing policies, m9,
# mstd 0.5) + random erasing 0.2 for training, short edge + centre crop for
# testing, PIL bicubic resizing, as timm.
#
# A config lists this file in its ``_base_`` and takes the pipelines and
# loaders at its size with
# ``locals().update(_base_.pop('ltm_readme_pipelines').at(crop, test_edge))``
# (``pop``: no helper key in the resolved config; mmengine drops the
# function itself).
_bgr_mean = [103.53, 116.28, 123.675]
_bgr_std = [57.375, 57.12, 58.395]


def _at(crop_size, test_edge, bgr_mean=_bgr_mean, bgr_std=_bgr_std):
    """``train_pipeline``, ``test_pipeline`` and the loaders' pipelines of
    the README recipe at ``crop_size`` (test: short edge ``test_edge``,
    centre crop ``crop_size``)."""
    pil_bicubic = dict(backend='pillow', interpolation='bicubic')
    train_pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='RandomResizedCrop', scale=crop_size, **pil_bicubic),
        dict(type='RandomFlip', prob=0.5, direction='horizontal'),
        dict(
            type='RandAugment',
            policies='timm_increasing',
            num_policies=2,
            total_level=10,
            magnitude_level=9,
            magnitude_std=0.5,
            hparams=dict(
                pad_val=[round(x) for x in bgr_mean],
                interpolation='bicubic')),
        dict(
            type='RandomErasing',
            erase_prob=0.2,
            mode='rand',
            min_area_ratio=0.02,
            max_area_ratio=1 / 3,
            fill_color=bgr_mean,
            fill_std=bgr_std),
        dict(type='PackInputs'),
    ]
    test_pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='ResizeEdge', scale=test_edge, edge='short', **pil_bicubic),
        dict(type='CenterCrop', crop_size=crop_size),
        dict(type='PackInputs'),
    ]
    val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
    return dict(
        bgr_mean=bgr_mean,
        bgr_std=bgr_std,
        train_pipeline=train_pipeline,
        test_pipeline=test_pipeline,
        train_dataloader=dict(dataset=dict(pipeline=train_pipeline)),
        val_dataloader=val_dataloader,
        test_dataloader=val_dataloader)


ltm_readme_pipelines = dict(at=_at)
del _bgr_mean, _bgr_std
