"""Class names and palettes of the toy shapes sets, in one place.

A module of plain constants (no numpy, no generator): the dataset classes of
:mod:`mmltm.datasets.checked` take their ``METAINFO`` from here without
loading the toy generator (:mod:`mmltm.datasets.toy_shapes`,
:mod:`mmltm.datasets.toy`), which re-export these names.
"""

#: the 12 classes of the shapes set, sorted (= folder-scan order of
#: ``CustomDataset``)
TOY_SHAPES_CLASSES = ('arrow', 'circle', 'crescent', 'cross', 'hexagon',
                      'lshape', 'pentagon', 'rectangle', 'ring', 'square',
                      'star', 'triangle')
#: classes of the ``ade_shapes`` label maps, in label order 0..12 (the raw
#: PNG values; 255 = a distractor shape, ignored): background, then the
#: shape classes
TOY_SCENE_SEG_CLASSES = ('background', ) + TOY_SHAPES_CLASSES
#: palette of TOY_SCENE_SEG_CLASSES
TOY_SCENE_SEG_PALETTE = [(120, 120, 120), (230, 25, 75), (60, 180, 75),
                         (255, 225, 25), (0, 130, 200), (245, 130, 48),
                         (145, 30, 180), (70, 240, 240), (240, 50, 230),
                         (210, 245, 60), (250, 190, 212), (0, 128, 128),
                         (170, 110, 40)]
