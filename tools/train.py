# Copyright (c) mmltm contributors. All rights reserved.
"""Train an mmdet / mmseg / mmpretrain config with mmengine's Runner.

The library is taken from the config's ``default_scope``. ``mmltm`` is
imported first, so the LTM backbones are registered, and the checkpoint fix
is installed, so mmengine can reload its own checkpoints under torch >= 2.6
(``--resume``, ``load_from``).

Every run gets :class:`~mmltm.engine.hooks.CheckpointGuardHook` (unless the
config lists it already): atomic checkpoint writes, ``--resume`` from the
newest readable checkpoint, the RNG state saved and restored, and a
``load_from`` that matches no / not all model keys is an error naming them
(``--allow-partial-load`` or ``allow_partial_load = True`` in the config
allows a partial load on purpose).

Examples::

    python tools/train.py configs/toy/mask_rcnn_ltm_swin_t_toy.py
    python tools/train.py configs/mask_rcnn_ltm_swin_t_coco.py --amp
    python tools/train.py CONFIG --resume                 # latest in work_dir
    python tools/train.py CONFIG --resume work_dirs/x/iter_100.pth
    python tools/train.py CONFIG --cfg-options load_from=backbone.pth \
        --allow-partial-load                              # fine-tune
    bash tools/dist_train.sh CONFIG 8                     # torchrun, 8 procs
"""
import argparse
import os
import os.path as osp
import sys

# ``python tools/train.py`` from a source checkout without ``pip install -e``
sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import mmltm  # noqa: E402,F401  (registers the mmltm models and hooks)
from mmengine.config import Config, ConfigDict, DictAction  # noqa: E402

from mmltm.engine import (check_data_roots,  # noqa: E402
                          install_checkpoint_fix, prepare_runner_cfg,
                          runner_for, scope_init)

#: the hook every run of this tool gets (see the module docstring)
GUARD_HOOK = 'CheckpointGuardHook'


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train a model (mmltm)')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='resume from the given checkpoint, or, without a value, from '
        'the latest checkpoint in the work_dir')
    parser.add_argument(
        '--allow-partial-load',
        action='store_true',
        help='let load_from lack some model keys (or have other shapes), '
        'e.g. a backbone-only checkpoint; they are logged. Without it a '
        'checkpoint that does not fit the model is an error naming the keys')
    parser.add_argument(
        '--amp',
        action='store_true',
        default=False,
        help='enable automatic mixed precision (AmpOptimWrapper)')
    parser.add_argument(
        '--auto-scale-lr',
        action='store_true',
        help='scale the lr by the total batch size over '
        'auto_scale_lr.base_batch_size')
    parser.add_argument(
        '--no-toy-data',
        action='store_true',
        help='do not generate missing toy data (configs with toy_data_root)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings of the config, key=value, e.g. '
        'train_cfg.max_iters=10 "model.backbone.depths=[2,2,2,2]"')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    # torch.distributed.launch passes --local-rank (torch >= 2.0) or
    # --local_rank; torchrun only sets the LOCAL_RANK environment variable
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def add_guard_hook(cfg: Config) -> None:
    """Append :class:`CheckpointGuardHook` to ``cfg.custom_hooks`` unless
    the config lists it (as ``CheckpointGuardHook`` or
    ``mmltm.CheckpointGuardHook``)."""
    hooks = list(cfg.get('custom_hooks') or [])

    def name(hook_type) -> str:  # 'X', 'mmltm.X' or the class itself
        return getattr(hook_type, '__name__', str(hook_type)).split('.')[-1]

    if any(name(h.get('type', '')) == GUARD_HOOK for h in hooks
           if isinstance(h, dict)):
        return
    hooks.append(ConfigDict(type=f'mmltm.{GUARD_HOOK}'))
    cfg.custom_hooks = hooks


def main(argv=None) -> None:
    args = parse_args(argv)
    install_checkpoint_fix()
    cfg = Config.fromfile(args.config)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    if args.allow_partial_load:
        cfg.allow_partial_load = True
    add_guard_hook(cfg)

    scope_init(cfg)
    prepare_runner_cfg(
        cfg,
        config_path=args.config,
        work_dir=args.work_dir,
        launcher=args.launcher,
        amp=args.amp,
        resume=args.resume)
    if args.auto_scale_lr:
        if 'base_batch_size' not in cfg.get('auto_scale_lr', {}):
            raise ValueError('--auto-scale-lr needs auto_scale_lr.'
                             'base_batch_size in the config')
        cfg.auto_scale_lr.enable = True
    check_data_roots(cfg, phase='train', make_toy=not args.no_toy_data)
    with runner_for(cfg) as runner:  # destroys a distributed run's group
        runner.train()


if __name__ == '__main__':
    main()
