"""Generate the deterministic toy COCO / ADE20K / ImageNet / shapes datasets.

Example::

    python tools/misc/make_toy_data.py --out data/toy --num-train 48 \
        --num-val 16 --size 256 256 --seed 0

Writes ``<out>/coco``, ``<out>/ade``, ``<out>/imagenet`` and ``<out>/shapes``
(see
:mod:`mmltm.datasets.toy` for the layouts and class names) and prints one
``name: path`` line per dataset. Without ``--num-train`` / ``--num-val`` /
``--size`` each set gets its own defaults (train / val images, size): coco
and ade 48 / 48 of 256x256, imagenet 48 / 16 of 256x256, shapes 768 / 480
of 64x64. ``--if-missing`` makes it a cheap no-op
when the sets already exist with the same parameters (as ``make toy-data``
uses it). Bad arguments exit with status 2 and one
``make_toy_data.py: error: ...`` line on stderr.
"""
import argparse
import importlib
import importlib.util
import os.path as osp
import sys
from types import ModuleType
from typing import List, NoReturn, Optional

PROG = 'make_toy_data.py'


class _OneLineParser(argparse.ArgumentParser):
    """argparse that reports errors as a single line (no usage block)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f'{self.prog}: error: {message}\n')


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = _OneLineParser(
        prog=PROG,
        description='Generate the mmltm toy datasets (COCO instance '
        'segmentation, ADE20K semantic segmentation, ImageNet '
        'classification, 12-class shapes classification) deterministically '
        'from a seed.')
    parser.add_argument(
        '--out', default='data/toy', help='output root (default: data/toy)')
    parser.add_argument(
        '--num-train', type=int, default=None,
        help='training images per dataset (default: 48; shapes: 768)')
    parser.add_argument(
        '--num-val', type=int, default=None,
        help='validation images per dataset (default: coco, ade 48; '
        'imagenet 16; shapes 480)')
    parser.add_argument(
        '--size', type=int, nargs=2, default=None,
        metavar=('H', 'W'), help='image size (default: 256 256; shapes: 64 64)')
    parser.add_argument(
        '--seed', type=int, default=0, help='random seed (default: 0)')
    parser.add_argument(
        '--which', nargs='+', default=None, metavar='NAME',
        help='datasets to write among coco, ade, imagenet, shapes '
        '(default: all)')
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        '--overwrite', action='store_true',
        help='replace the toy datasets in a non-empty --out (folders not '
        'written by this tool are never deleted)')
    mode.add_argument(
        '--if-missing', action='store_true',
        help='reuse each dataset in --out whose stamp matches these '
        'parameters and (re)generate only the others; other content of '
        '--out is fine')
    return parser.parse_args(argv)


def _toy_module() -> ModuleType:
    """Return :mod:`mmltm.datasets.toy` without importing all of mmltm.

    ``import mmltm`` registers every model and so imports mmdet, mmseg and
    mmpretrain (several seconds), none of which the generator needs (it uses
    numpy, OpenCV and pycocotools only). So unless mmltm is already loaded,
    the generator modules are loaded as submodules of an empty stand-in
    package for ``mmltm/datasets`` (their relative imports work, the
    package's ``__init__`` with its registrations is not run).
    """
    if 'mmltm' in sys.modules:
        from mmltm.datasets import toy
        return toy
    spec = importlib.util.find_spec('mmltm')  # finds, does not import
    if spec is not None and spec.submodule_search_locations:
        pkg_dir = list(spec.submodule_search_locations)[0]
    else:  # a checkout that is not installed: this file is in tools/misc
        pkg_dir = osp.join(osp.dirname(osp.abspath(__file__)), '..', '..',
                           'mmltm')
    package = ModuleType('_mmltm_toy_cli')
    package.__path__ = [osp.join(pkg_dir, 'datasets')]
    sys.modules[package.__name__] = package
    return importlib.import_module(package.__name__ + '.toy')


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    toy = _toy_module()
    kwargs = dict(
        num_train=args.num_train,
        num_val=args.num_val,
        size=None if args.size is None else tuple(args.size),
        seed=args.seed,
        which=args.which or toy.TOY_DATASETS)
    try:
        if args.if_missing:
            paths = toy.ensure_toy_data(args.out, **kwargs)
        else:
            paths = toy.make_toy_data(
                args.out, overwrite=args.overwrite, **kwargs)
    except ValueError as err:
        print(f'{PROG}: error: {err}', file=sys.stderr)
        return 2
    for name, path in paths.items():
        print(f'{name}: {path}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
