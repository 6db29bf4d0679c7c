"""Datasets.

* :mod:`mmltm.datasets.checked`: ``CheckedCocoDataset`` (mmdet) and
  ``CheckedADE20KDataset`` (mmseg), the stock datasets plus an early data
  check that names a bad file; ``ToyCocoDataset``, ``ToyADE20KDataset``,
  ``ToyShapesSegDataset`` (mmseg) and ``ToyImageNet`` (mmpretrain), the
  same on a toy set that is generated on first use. Importing this package registers them (and
  nothing else): the toy *generator* is imported only when a toy dataset
  is built or one of its names below is used.
* :mod:`mmltm.datasets.toy`: deterministic toy sets in the real COCO /
  ADE20K / ImageNet formats (read by the stock OpenMMLab dataset classes),
  the harder 12-class shapes set and its densely labelled images
  (``coco_shapes`` / ``ade_shapes``), both drawn by
  :mod:`mmltm.datasets.toy_shapes`.
"""
import importlib
from typing import Any

from . import checked  # registers the dataset classes
from .checked import DataCheckError, read_image_size

# a class exists only if its library (mmdet, mmseg, mmpretrain) imports
_DATASET_CLASSES = tuple(
    name for name in ('CheckedCocoDataset', 'ToyCocoDataset',
                      'CheckedADE20KDataset', 'ToyADE20KDataset',
                      'ToyShapesSegDataset', 'ToyImageNet') if hasattr(checked, name))
globals().update({name: getattr(checked, name) for name in _DATASET_CLASSES})

#: names served lazily from :mod:`mmltm.datasets.toy`
_TOY_NAMES = (
    'DEFAULT_TOY_ROOT', 'GENERATOR_VERSION', 'STAMP_NAME', 'TOY_CLS_CLASSES',
    'TOY_COCO_CLASSES', 'TOY_COCO_PALETTE', 'TOY_DATASETS', 'TOY_DEFAULTS',
    'TOY_SEG_CLASSES', 'TOY_SEG_LABEL_IDS', 'TOY_SEG_PALETTE',
    'TOY_SHAPES_CLASSES', 'TOY_SCENE_COCO_CLASSES', 'TOY_SCENE_COCO_PALETTE',
    'TOY_SCENE_SEG_CLASSES', 'TOY_SCENE_SEG_IGNORE', 'TOY_SCENE_SEG_PALETTE',
    'ensure_toy_data', 'ensure_toy_dataset', 'make_toy_ade', 'make_toy_coco',
    'make_toy_data', 'make_toy_imagenet', 'make_toy_shapes',
    'make_toy_coco_shapes', 'make_toy_ade_shapes')


def __getattr__(name: str) -> Any:
    # PEP 562: ``from mmltm.datasets import make_toy_data`` keeps working
    # without ``import mmltm`` loading the generator
    if name in _TOY_NAMES:
        return getattr(importlib.import_module(f'{__name__}.toy'), name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


__all__ = [
    'DataCheckError', 'read_image_size', *_DATASET_CLASSES, *_TOY_NAMES
]
