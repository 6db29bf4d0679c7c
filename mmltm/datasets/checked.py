"""Stock OpenMMLab datasets with an early data check, and the toy datasets.

A bad file in a dataset otherwise surfaces minutes into training, far from
its cause and without its name: a 1x1 image in a COCO set crashes mmdet's
pipeline with ``ValueError: all input arrays must have the same shape`` (at
test time it silently lowers the mAP); a 1x1 image and segmentation map in
an ADE20K set crash mmseg's ``LoadAnnotations`` with ``TypeError:
'numpy.uint8' object does not support item assignment`` (the map is
squeezed to a scalar); an annotation file that is not JSON raises a bare
``JSONDecodeError``. The classes here are the stock ones plus a check that
runs when the dataset is built (or, with ``lazy_init=True``, first loaded)
and raises :class:`DataCheckError` naming every bad file:

* ``CheckedCocoDataset`` (mmdet ``CocoDataset``): the annotation file must
  be JSON in COCO format; every image must be readable, at least
  ``min_image_size`` px on each side, and exactly the ``width`` x
  ``height`` its annotation states.
* ``CheckedADE20KDataset`` (mmseg ``ADE20KDataset``): every image and its
  segmentation map must be readable, at least ``min_image_size`` px on each
  side, and of the same size.

The check reads image *headers* only (PIL, no decoding; 8 threads): 0.15-0.2
ms per local image against 0.7-2.6 ms to decode it (toy sets, 2 shared
vCPUs), i.e. about a second for COCO val and some 20 s for COCO train's
118k images, once per build; ``check_images=False`` turns it off. Sizes
are compared as mmcv decodes the images (``LoadImageFromFile``'s default
``color`` flag applies the EXIF orientation; seg maps are read
``unchanged``). Images on a non-local backend (``backend_args``) are not
checked (a warning says so).

Toy datasets (generate their toy set on first use, then as the above):
``ToyCocoDataset``, ``ToyADE20KDataset`` and ``ToyImageNet`` (mmpretrain
``ImageNet``, for the toy ImageNet and shapes sets). They call
:func:`mmltm.datasets.toy.ensure_toy_dataset` on their ``data_root``, under
a file lock, so a toy config works from any entry point (mmdet's / mmseg's
/ mmpretrain's own ``tools/train.py``, ``mim train``), not only from this
repository's tools. ``toy_set`` names the set (default: the class's),
``toy_params`` its generation parameters (default: the set's defaults).

Each class is registered in its own library's ``DATASETS`` registry only
(they subclass that library's dataset), and only if the library imports.
"""
import importlib
import json
import os.path as osp
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from mmengine.logging import print_log

from .toy_classes import TOY_SCENE_SEG_CLASSES, TOY_SCENE_SEG_PALETTE

__all__ = [
    'DataCheckError', 'read_image_size', 'CheckedCocoDataset',
    'CheckedADE20KDataset', 'ToyCocoDataset', 'ToyADE20KDataset',
    'ToyImageNet'
]

#: at most this many bad files are listed in one error (then a count)
MAX_LISTED = 10
# EXIF orientations that swap width and height when applied (5..8)
_TRANSPOSING_ORIENTATIONS = (5, 6, 7, 8)
_EXIF_ORIENTATION = 0x0112
_EXIF_HEADER_FORMATS = ('JPEG', 'MPO')


class DataCheckError(ValueError):
    """Bad data found when a dataset was built; the message names the files
    and what is wrong with each."""


def read_image_size(path: str, oriented: bool = True) -> Tuple[int, int]:
    """(height, width) of an image file from its header, without decoding.

    Args:
        path (str): Local image file.
        oriented (bool): Apply the EXIF orientation, as mmcv's ``color``
            and ``grayscale`` flags do (width and height swap for
            orientations 5-8). False: the stored size (mmcv's
            ``unchanged``, used for segmentation maps). Defaults to True.

    Returns:
        tuple[int, int]: ``(height, width)``.

    Raises:
        OSError: If the file is missing or not an image PIL can identify.
    """
    from PIL import Image
    with Image.open(path) as img:
        width, height = img.size
        # JPEG keeps EXIF in a header segment; asking other formats (PNG)
        # for it would decode the whole image
        if (oriented and img.format in _EXIF_HEADER_FORMATS
                and img.getexif().get(_EXIF_ORIENTATION,
                                      1) in _TRANSPOSING_ORIENTATIONS):
            width, height = height, width
    return height, width


def _size_or_problem(path: str, oriented: bool = True):
    try:
        return read_image_size(path, oriented), None
    except Exception as err:  # noqa: BLE001  (reported, not ignored)
        # PIL raises UnidentifiedImageError (an OSError), SyntaxError or
        # struct.error for missing files, non-images and broken headers
        return None, f'{path}: cannot be read as an image ({err})'


def _degenerate(path: str, hw: Tuple[int, int], min_size: int,
                what: str = 'image') -> Optional[str]:
    if min(hw) < min_size:
        return (f'{path}: {what} is {hw[1]}x{hw[0]} (width x height), '
                f'smaller than the {min_size} px per side allowed '
                '(min_image_size)')
    return None


def _run_check(dataset, data_list: Sequence[dict],
               check_one: Callable[[dict], List[str]], source: str) -> None:
    """Check every sample with ``check_one`` (-> problems); raise if any."""
    if not dataset.check_images:
        return
    if getattr(dataset, 'backend_args', None):
        print_log(
            f'{type(dataset).__name__}: images on backend '
            f'{dataset.backend_args} are not checked (local files only)',
            logger='current', level=30)
        return
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=8) as pool:
        found = [p for ps in pool.map(check_one, data_list) for p in ps]
    print_log(
        f'{type(dataset).__name__}: checked {len(data_list)} images in '
        f'{time.perf_counter() - start:.1f} s', logger='current', level=10)
    if found:
        listed = found[:MAX_LISTED]
        more = (f'\n  ... and {len(found) - MAX_LISTED} more'
                if len(found) > MAX_LISTED else '')
        raise DataCheckError(
            f'{type(dataset).__name__}: {len(found)} bad file(s) in '
            f'{source}:\n  ' + '\n  '.join(listed) + more +
            '\nFix or remove them (a toy set: delete its folder and it is '
            'regenerated), or pass check_images=False to skip this check.')


class _ImageCheckMixin:
    """The ``check_images`` / ``min_image_size`` options and the hook.

    The check runs at the end of ``filter_data`` (inside ``full_init``), so
    only the samples the dataset keeps are checked, once per build.
    """

    def __init__(self,
                 *args,
                 check_images: bool = True,
                 min_image_size: int = 2,
                 **kwargs) -> None:
        if not isinstance(check_images, bool):
            raise TypeError(f'check_images must be True or False, got '
                            f'{check_images!r}')
        if (not isinstance(min_image_size, int)
                or isinstance(min_image_size, bool) or min_image_size < 1):
            raise ValueError(f'min_image_size must be a positive integer, '
                             f'got {min_image_size!r}')
        self.check_images = check_images
        self.min_image_size = min_image_size
        super().__init__(*args, **kwargs)  # builds (full_init) unless lazy

    def _image_size(self, path: str):
        """(size, None) for a good image, else (size or None, problem)."""
        hw, problem = _size_or_problem(path)
        if problem is None:
            problem = _degenerate(path, hw, self.min_image_size)
        return hw, problem

    def _check_sample(self, info: dict) -> List[str]:
        raise NotImplementedError

    def _check_source(self) -> str:
        raise NotImplementedError

    def filter_data(self) -> List[dict]:
        data_list = super().filter_data()
        _run_check(self, data_list, self._check_sample, self._check_source())
        return data_list


def _library_class(module: str, name: str):
    """``module.name``, or None if that OpenMMLab library does not import."""
    try:
        return getattr(importlib.import_module(module), name)
    except Exception:  # ImportError, or a library's mmcv version assert
        return None


def _register(library: str):
    registry = importlib.import_module(f'{library}.registry').DATASETS
    return registry.register_module()


class _ToyDataMixin:
    """Generates the toy set :attr:`toy_default_set` (or ``toy_set``) at
    ``data_root`` before the dataset loads it, unless it is there."""

    toy_default_set = ''

    def __init__(self,
                 *args,
                 toy_set: Optional[str] = None,
                 toy_params: Optional[Dict] = None,
                 **kwargs) -> None:
        name = type(self).__name__
        data_root = kwargs.get('data_root')
        if not data_root:
            raise ValueError(
                f'{name} needs data_root, the folder of its toy set (e.g. '
                f"'data/toy/{self.toy_default_set}/'), got {data_root!r}")
        from .toy import ensure_toy_dataset  # lazy: only when a toy is used
        params = dict(toy_params or {})
        try:
            ensure_toy_dataset(toy_set or self.toy_default_set, data_root,
                               **params)
        except TypeError as err:
            raise TypeError(f'{name}: bad toy_params {params!r} ({err}); '
                            'allowed keys: num_train, num_val, size, '
                            'seed') from err
        super().__init__(*args, **kwargs)


_CocoDataset = _library_class('mmdet.datasets', 'CocoDataset')
_ADE20KDataset = _library_class('mmseg.datasets', 'ADE20KDataset')
_ImageNet = _library_class('mmpretrain.datasets', 'ImageNet')

if _CocoDataset is not None:

    @_register('mmdet')
    class CheckedCocoDataset(_ImageCheckMixin, _CocoDataset):
        """mmdet ``CocoDataset`` that checks its data when built.

        Args:
            check_images (bool): Check every kept image (readable, at least
                ``min_image_size`` px per side, the size its annotation
                states) from its header. Defaults to True.
            min_image_size (int): Smallest width and height allowed.
                Defaults to 2 (a 1-px side cannot hold a box or mask and
                crashes the pipeline).
            *args, **kwargs: As ``CocoDataset``.

        Raises:
            DataCheckError: If the annotation file is not COCO JSON, or
                naming each bad image and what is wrong with it.
        """

        def load_data_list(self) -> List[dict]:
            try:
                data_list = super().load_data_list()
            except (json.JSONDecodeError, UnicodeDecodeError) as err:
                raise DataCheckError(
                    f"annotation file '{self.ann_file}' is not valid JSON "
                    f'({type(err).__name__}: {err}); a COCO instances file '
                    'is expected') from err
            except AssertionError as err:  # pycocotools: not a dict
                raise DataCheckError(
                    f"annotation file '{self.ann_file}' is not a COCO "
                    f'annotation file ({err})') from err
            if not data_list:
                raise DataCheckError(
                    f"annotation file '{self.ann_file}' lists no images")
            return data_list

        def _check_source(self) -> str:
            return f"'{self.ann_file}'"

        def _check_sample(self, info: dict) -> List[str]:
            path = info['img_path']
            hw, problem = self._image_size(path)
            if problem:
                return [problem]
            stated = (info['height'], info['width'])
            if hw != stated:
                return [
                    f'{path}: image is {hw[1]}x{hw[0]} (width x height) but '
                    f'the annotation file says {stated[1]}x{stated[0]}'
                ]
            return []

    @_register('mmdet')
    class ToyCocoDataset(_ToyDataMixin, CheckedCocoDataset):
        """``CheckedCocoDataset`` on the toy COCO set, generated on first use.

        Args:
            toy_set (str, optional): Toy set to generate at ``data_root``.
                Defaults to None ('coco').
            toy_params (dict, optional): Its ``num_train``, ``num_val``,
                ``size``, ``seed``. Defaults to None (the set's defaults).
            *args, **kwargs: As ``CheckedCocoDataset`` (``data_root``
                required).
        """

        toy_default_set = 'coco'

if _ADE20KDataset is not None:

    @_register('mmseg')
    class CheckedADE20KDataset(_ImageCheckMixin, _ADE20KDataset):
        """mmseg ``ADE20KDataset`` that checks its data when built.

        Args:
            check_images (bool): Check every image and segmentation map
                (readable, at least ``min_image_size`` px per side, the same
                size) from their headers. Defaults to True.
            min_image_size (int): Smallest width and height allowed.
                Defaults to 2 (mmseg squeezes a 1-px side away).
            *args, **kwargs: As ``ADE20KDataset``.

        Raises:
            DataCheckError: Naming each bad file and what is wrong with it.
        """

        def _check_source(self) -> str:
            return f"'{self.data_prefix.get('img_path', self.data_root)}'"

        def _check_sample(self, info: dict) -> List[str]:
            path, seg_path = info['img_path'], info.get('seg_map_path')
            hw, problem = self._image_size(path)
            if problem:
                return [problem]
            if seg_path is None:  # a test set without labels
                return []
            seg_hw, problem = _size_or_problem(seg_path, oriented=False)
            if problem:
                return [problem]
            if seg_hw != hw:
                return [
                    f'{path}: image is {hw[1]}x{hw[0]} (width x height) but '
                    f'its segmentation map {seg_path} is '
                    f'{seg_hw[1]}x{seg_hw[0]}'
                ]
            return []

    @_register('mmseg')
    class ToyADE20KDataset(_ToyDataMixin, CheckedADE20KDataset):
        """``CheckedADE20KDataset`` on the toy ADE20K set, generated on
        first use. Args as :class:`ToyCocoDataset` (default set 'ade')."""

        toy_default_set = 'ade'

    @_register('mmseg')
    class ToyShapesSegDataset(ToyADE20KDataset):
        """The ``ade_shapes`` set: the toy shapes images densely labelled
        (background + the 12 shape classes in their own label order, no
        ADE20K ids; distractor shapes 255, ignored), hence
        ``reduce_zero_label=False``. Args as :class:`ToyADE20KDataset`
        (default set 'ade_shapes')."""

        METAINFO = dict(classes=TOY_SCENE_SEG_CLASSES,
                        palette=[list(c) for c in TOY_SCENE_SEG_PALETTE])
        toy_default_set = 'ade_shapes'

        def __init__(self, *args, reduce_zero_label: bool = False,
                     **kwargs) -> None:
            super().__init__(*args, reduce_zero_label=reduce_zero_label,
                             **kwargs)

if _ImageNet is not None:

    @_register('mmpretrain')
    class ToyImageNet(_ToyDataMixin, _ImageNet):
        """mmpretrain ``ImageNet`` on a toy classification set (the toy
        ImageNet, or ``toy_set='shapes'``), generated on first use. Args as
        :class:`ToyCocoDataset` (default set 'imagenet')."""

        toy_default_set = 'imagenet'
