#!/usr/bin/env python
"""The quick-start job: LTM-Swin-T Mask R-CNN and UperNet on the toy data.

Trains ``configs/toy/mask_rcnn_ltm_swin_t_toy.py`` on the embedded toy COCO
set and evaluates it with mmdet's ``CocoMetric`` (bbox and segm mAP), then
``configs/toy/upernet_ltm_swin_t_toy.py`` on toy ADE20K with mmseg's
``IoUMetric`` (mIoU), exactly as ``tools/train.py`` would, and prints a
summary. ``--with-baseline`` also trains the non-LTM toy configs (same
schedule, same seed) and prints LTM next to the baseline: this is the
command behind the toy table of the README.

Examples::

    python tools/demo.py                    # ~10 min on 2 CPU cores
    python tools/demo.py --with-baseline    # ~20 min
    python tools/demo.py --only upernet --max-iters 20
"""
import argparse
import json
import os.path as osp
import sys
import time
from typing import Dict, List, Optional

import numpy as np

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import mmltm  # noqa: E402,F401  (registers models, installs checkpoint fix)
from mmengine.config import Config  # noqa: E402
from mmengine.hooks import Hook  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

from mmltm.engine import (check_data_roots, prepare_runner_cfg,  # noqa: E402
                          scope_init)

JOBS = {
    'mask_rcnn': dict(ltm='configs/toy/mask_rcnn_ltm_swin_t_toy.py',
                      baseline='configs/toy/mask_rcnn_swin_t_toy.py',
                      metrics=('coco/bbox_mAP', 'coco/bbox_mAP_50', 'coco/segm_mAP',
                               'coco/segm_mAP_50')),
    'upernet': dict(ltm='configs/toy/upernet_ltm_swin_t_toy.py',
                    baseline='configs/toy/upernet_swin_t_toy.py',
                    metrics=('mIoU', 'mAcc', 'aAcc')),
}


class _KeepValMetrics(Hook):
    """Keeps the metrics of the last validation run (the Runner logs them but
    does not return them from ``train()``)."""
    priority = 'LOWEST'

    def __init__(self) -> None:
        self.metrics: Dict[str, float] = {}

    def after_val_epoch(self, runner, metrics: Optional[Dict[str, float]] = None) -> None:
        self.metrics = dict(metrics or {})


def run_config(config: str, work_dir: str, max_iters: Optional[int]) -> Dict:
    cfg = Config.fromfile(config)
    if max_iters is not None:
        cfg.train_cfg.max_iters = max_iters
        cfg.train_cfg.val_interval = max_iters
    scope_init(cfg)
    prepare_runner_cfg(cfg, config_path=config, work_dir=work_dir)
    check_data_roots(cfg, phase='train')
    runner = Runner.from_cfg(cfg)
    keeper = _KeepValMetrics()
    runner.register_hook(keeper)
    start = time.perf_counter()
    runner.train()
    if not keeper.metrics:  # no validation in the schedule: run it once
        keeper.metrics = runner.val()
    return dict(config=config, seconds=time.perf_counter() - start,
                # mmseg's IoUMetric returns numpy float32 scalars (no float
                # subclass, unlike float64)
                metrics={k: float(v) for k, v in keeper.metrics.items()
                         if isinstance(v, (int, float, np.number))})


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--only', choices=sorted(JOBS), nargs='+', default=sorted(JOBS),
                        help='which jobs to run (default: both)')
    parser.add_argument('--with-baseline', action='store_true',
                        help='also train the non-LTM toy configs for comparison')
    parser.add_argument('--max-iters', type=int, default=None,
                        help='override the toy schedule length (for quick checks)')
    parser.add_argument('--work-dir', default='work_dirs/demo')
    parser.add_argument('--out-json', default=None,
                        help='write the results as JSON here')
    args = parser.parse_args(argv)
    if args.max_iters is not None and args.max_iters <= 0:
        parser.error(f'--max-iters={args.max_iters} must be positive')

    results = []
    for job in sorted(args.only, key=list(JOBS).index):
        variants = ['ltm', 'baseline'] if args.with_baseline else ['ltm']
        for variant in variants:
            config = JOBS[job][variant]
            name = osp.splitext(osp.basename(config))[0]
            print(f'\n===== {job}: {variant} ({config}) =====', flush=True)
            res = run_config(config, osp.join(args.work_dir, name), args.max_iters)
            res.update(job=job, variant=variant)
            results.append(res)

    print('\n===== mmltm demo summary (toy data, this machine) =====')
    for job in JOBS:
        rows = [r for r in results if r['job'] == job]
        if not rows:
            continue
        keys = JOBS[job]['metrics']
        print(f'\n| {job} | ' + ' | '.join(keys) + ' | train+val s |')
        print('|---' * (len(keys) + 2) + '|')
        for r in rows:
            vals = ' | '.join(f"{r['metrics'].get(k, float('nan')):.3f}" for k in keys)
            print(f"| {r['variant']} ({osp.basename(r['config'])}) | {vals} | {r['seconds']:.0f} |")
    if args.out_json:
        with open(args.out_json, 'w') as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == '__main__':
    sys.exit(main())
