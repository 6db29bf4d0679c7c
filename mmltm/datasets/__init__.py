"""Datasets: deterministic toy sets in the real COCO / ADE20K / ImageNet
formats, read by the stock OpenMMLab dataset classes (see
:mod:`mmltm.datasets.toy`)."""
from .toy import (DEFAULT_TOY_ROOT, GENERATOR_VERSION, STAMP_NAME,
                  TOY_CLS_CLASSES, TOY_COCO_CLASSES, TOY_COCO_PALETTE,
                  TOY_DATASETS, TOY_SEG_CLASSES, TOY_SEG_LABEL_IDS,
                  TOY_SEG_PALETTE, ensure_toy_data, make_toy_ade,
                  make_toy_coco, make_toy_data, make_toy_imagenet)

__all__ = [
    'DEFAULT_TOY_ROOT', 'GENERATOR_VERSION', 'STAMP_NAME', 'TOY_CLS_CLASSES',
    'TOY_COCO_CLASSES', 'TOY_COCO_PALETTE', 'TOY_DATASETS', 'TOY_SEG_CLASSES',
    'TOY_SEG_LABEL_IDS', 'TOY_SEG_PALETTE', 'ensure_toy_data', 'make_toy_ade',
    'make_toy_coco', 'make_toy_data', 'make_toy_imagenet'
]
