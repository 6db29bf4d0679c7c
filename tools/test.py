# Copyright (c) mmltm contributors. All rights reserved.
"""Evaluate a checkpoint of an mmdet / mmseg / mmpretrain config.

Examples::

    python tools/test.py configs/toy/upernet_ltm_swin_t_toy.py \
        work_dirs/upernet_ltm_swin_t_toy/iter_40.pth
    python tools/test.py CONFIG CKPT --out results.pkl
    bash tools/dist_test.sh CONFIG CKPT 8
"""
import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import mmltm  # noqa: E402,F401  (registers the mmltm models)
from mmengine.config import Config, DictAction  # noqa: E402

from mmltm.engine import (check_checkpoint_keys,  # noqa: E402
                          check_data_roots, install_checkpoint_fix,
                          prepare_runner_cfg, runner_for, scope_init)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Test a model (mmltm)')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--work-dir',
        help='the directory to save the file containing evaluation metrics')
    parser.add_argument(
        '--out',
        type=str,
        help='dump the raw predictions to a pickle file (.pkl) for offline '
        'evaluation')
    parser.add_argument(
        '--init-mask-modules',
        action='store_true',
        help='the checkpoint may lack the LTM mask modules\' weights (one '
        'trained without merging, e.g. the baseline\'s): they keep their '
        'initial values (logged); every other key must still fit')
    parser.add_argument(
        '--no-toy-data',
        action='store_true',
        help='do not generate missing toy data (configs with toy_data_root)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings of the config, key=value')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    # mmengine reloads its own checkpoints under torch >= 2.6
    install_checkpoint_fix()
    if args.out is not None and not args.out.endswith(('.pkl', '.pickle')):
        raise ValueError(f'--out {args.out}: the output file must be a .pkl '
                         'or .pickle file')
    if '://' not in args.checkpoint and not osp.isfile(args.checkpoint):
        raise FileNotFoundError(f'checkpoint {args.checkpoint} not found')

    cfg = Config.fromfile(args.config)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)

    scope_init(cfg)
    prepare_runner_cfg(
        cfg,
        config_path=args.config,
        work_dir=args.work_dir,
        launcher=args.launcher,
        load_from=args.checkpoint,
        training=False)
    # a test run never resumes training state
    cfg.resume = False
    check_data_roots(cfg, phase='test', make_toy=not args.no_toy_data)
    with runner_for(cfg) as runner:  # destroys a distributed run's group
        # mmengine would load a mismatching checkpoint with a warning only
        check_checkpoint_keys(runner.model, args.checkpoint,
                              init_mask_modules=args.init_mask_modules)

        if args.out is not None:
            # the library-independent mmengine evaluator that pickles the
            # predictions of every batch
            from mmengine.evaluator import DumpResults
            runner.test_evaluator.metrics.append(
                DumpResults(out_file_path=args.out))
        return runner.test()


if __name__ == '__main__':
    main()
