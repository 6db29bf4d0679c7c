"""FLOPs and latency of an LTM model as ``compression_ratio`` goes down.

For every ratio (default 1.0, 0.9, ..., 0.4) and series (default the
learned LTM mask; ``--modes ltm tome`` adds ToMe's matching; ``--series
ltm/ffn ltm/stage tome`` sets the merge scope too) the model of CONFIG is
built with ``model.backbone.compression_ratio`` (and ``merge_mode`` /
``merge_scope``) overridden. All models, and ``--baseline``'s if given, are
built first and timed interleaved (every round runs all of them,
alternating the order), so that drift hits every ratio alike; FLOPs come
from mmengine's ``FlopAnalyzer`` (see ``mmltm.analysis.flops``). Ratios are
relative to the baseline, or without one to each series at its largest
ratio (1.0: no merging); latency ratios are the median of the per-round
ratios. Writes ``sweep.csv`` and ``sweep.png`` to ``--out-dir`` and prints
the table. The PNG's left panel plots latency ratio against FLOPs ratio,
one series per mode / scope, with the line y = x drawn in: the
compute-bound limit, where time falls exactly with the FLOPs; its right
panel plots both against the ratio. The measuring code is :mod:`mmltm.analysis.sweep`; this
file is its command line.

Example::

    python tools/analysis_tools/sweep_ratio.py configs/ltm_swin_t_8xb128_in1k.py \\
        --size 224 --runs 20 --threads 2 --out-dir work_dirs/sweep

    python tools/analysis_tools/sweep_ratio.py configs/ltm_swin/ltm-swin-tiny_8xb128_in1k.py \\
        --baseline configs/ltm_swin/swin-tiny_8xb128_in1k.py --series ltm/ffn ltm/stage tome \\
        --ratios 0.9 0.7 0.5 --size 224 --batch 8 --runs 20 --out-dir work_dirs/sweep_scope
"""
import argparse
import os
from typing import Dict, List

import torch

from mmltm.analysis.machine import kernels_state, machine_info
from mmltm.analysis.sweep import DEFAULT_RATIOS, plot, sweep_ratios, write_csv
from mmltm.analysis.tables import sweep_table


def parse_args(argv=None):
    from mmengine.config import DictAction
    p = argparse.ArgumentParser(description='FLOPs and latency vs compression_ratio')
    p.add_argument('config')
    p.add_argument('--ratios', type=float, nargs='+', default=list(DEFAULT_RATIOS))
    from mmltm.ops import MERGE_MODES
    series = p.add_mutually_exclusive_group()
    series.add_argument('--modes', nargs='+', default=['ltm'], choices=list(MERGE_MODES),
                        help='merge modes to sweep (backbone merge_mode), one series each')
    series.add_argument('--series', nargs='+', metavar='MODE[/SCOPE]',
                        help='series to sweep: merge mode and merge_scope (ffn, stage), '
                        'e.g. ltm/ffn ltm/stage tome (instead of --modes)')
    p.add_argument('--baseline', help='a baseline config timed in the same interleaved run; '
                   'ratios are relative to it (default: to each series at its largest ratio)')
    p.add_argument('--size', default='224', help='input size, S or HxW')
    p.add_argument('--batch', type=int, default=1)
    p.add_argument('--part', choices=['backbone', 'model'], default='backbone')
    p.add_argument('--runs', type=int, default=20)
    p.add_argument('--warmup', type=int, default=3)
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--device', default='cpu')
    p.add_argument('--timer', choices=['wall', 'cpu'], default='wall',
                   help='wall clock, or process CPU time (see benchmark.py)')
    p.add_argument('--kernels', choices=['auto', 'off'], default='auto',
                   help="mmltm's compiled CPU kernels (auto) or the PyTorch reference "
                   'code only (off); see benchmark.py')
    p.add_argument('--out-dir', default='work_dirs/sweep_ratio')
    p.add_argument('--cfg-options', nargs='+', action=DictAction)
    args = p.parse_args(argv)
    if args.series:
        from mmltm.analysis.sweep import parse_series
        try:
            parse_series(args.series)
        except ValueError as err:
            p.error(f'--series: {err}')
    for r in args.ratios:
        try:
            from mmltm.ops import check_compression_ratio
            check_compression_ratio(r, '--ratios value')
        except ValueError as err:
            p.error(str(err))
    return args


def main(argv=None) -> List[Dict]:
    args = parse_args(argv)
    os.makedirs(args.out_dir, exist_ok=True)
    torch.set_num_threads(args.threads)
    kernels = kernels_state(args.kernels)
    load = os.getloadavg()
    rows = sweep_ratios(args.config, args.ratios, args.modes, args.size, args.batch, args.part,
                        args.runs, args.warmup, args.device, args.timer, args.cfg_options,
                        series=args.series, baseline=args.baseline)
    csv_path = os.path.join(args.out_dir, 'sweep.csv')
    png_path = os.path.join(args.out_dir, 'sweep.png')
    write_csv(rows, csv_path)
    info = machine_info(args.threads)
    ref = f' vs {os.path.basename(args.baseline)}' if args.baseline else ''
    title = (f'{os.path.basename(args.config)}{ref} {args.part} {args.size} b{args.batch}\n'
             f"{info['cpu']}, {info['torch_threads']} threads, {args.runs} runs")
    plot(rows, png_path, title)
    print(f"{info['cpu']}, {info['torch_threads']} threads, {args.part} at {args.size}, "
          f'batch {args.batch}, {args.warmup} warm-up + {args.runs} interleaved runs '
          f'({args.timer} timer); mmltm kernels: {kernels}; '
          f'load average {tuple(round(x, 2) for x in load)} -> '
          f'{tuple(round(x, 2) for x in os.getloadavg())}\n')
    print(sweep_table(rows))
    print(f'\nwrote {csv_path} and {png_path}')
    return rows


if __name__ == '__main__':
    main()
