# Copyright (c) mmltm contributors. All rights reserved.
"""Train an mmdet / mmseg / mmpretrain config with mmengine's Runner.

The library is taken from the config's ``default_scope``. ``mmltm`` is
imported first, so the LTM backbones are registered and mmengine can reload
its own checkpoints under torch >= 2.6 (``--resume``, ``load_from``).

Examples::

    python tools/train.py configs/toy/mask_rcnn_ltm_swin_t_toy.py
    python tools/train.py configs/mask_rcnn_ltm_swin_t_coco.py --amp
    python tools/train.py CONFIG --resume                 # latest in work_dir
    python tools/train.py CONFIG --resume work_dirs/x/iter_100.pth
    bash tools/dist_train.sh CONFIG 8                     # torchrun, 8 procs
"""
import argparse
import os
import os.path as osp
import sys

# ``python tools/train.py`` from a source checkout without ``pip install -e``
sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import mmltm  # noqa: E402,F401  (registers models, installs checkpoint fix)
from mmengine.config import Config, DictAction  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

from mmltm.engine import (check_data_roots, init_cpu_dist,  # noqa: E402
                          prepare_runner_cfg, scope_init)


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


def main(argv=None) -> None:
    args = parse_args(argv)
    cfg = Config.fromfile(args.config)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)

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
    init_cpu_dist(cfg)

    if 'runner_type' in cfg:
        from mmengine.registry import RUNNERS
        runner = RUNNERS.build(cfg)
    else:
        runner = Runner.from_cfg(cfg)
    runner.train()


if __name__ == '__main__':
    main()
