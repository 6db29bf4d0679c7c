"""FLOPs and latency of an LTM model as ``compression_ratio`` goes down.

For every ratio (default 1.0, 0.9, ..., 0.4) and merge mode (default the
learned LTM mask; ``--modes ltm tome`` adds ToMe's matching) the model of
CONFIG is built with ``model.backbone.compression_ratio`` (and
``merge_mode``) overridden. All models are built first and timed
interleaved (every round runs all of them, alternating the order), so that
drift hits every ratio alike; FLOPs come from mmengine's ``FlopAnalyzer``
(see ``benchmark.py``). Writes ``sweep.csv`` and ``sweep.png`` (FLOPs and
latency relative to ratio 1.0, i.e. no merging) to ``--out-dir`` and prints
the table.

Example::

    python tools/analysis_tools/sweep_ratio.py configs/ltm_swin_t_8xb128_in1k.py \\
        --size 224 --runs 20 --threads 2 --out-dir work_dirs/sweep
"""
import argparse
import csv
import os
import sys
from typing import Dict, List

import torch



def _load_benchmark():
    """``tools/analysis_tools/benchmark.py`` (the shared build/measure
    helpers), imported by path under a name no other package uses."""
    import importlib.util
    name = 'mmltm_tools_benchmark'
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            name, os.path.join(os.path.dirname(os.path.abspath(__file__)), 'benchmark.py'))
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


bm = _load_benchmark()

DEFAULT_RATIOS = (1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4)
FIELDS = ('mode', 'compression_ratio', 'params', 'gflops', 'flops_rel', 'latency_ms',
          'q1_ms', 'q3_ms', 'latency_rel')


def sweep(args) -> List[Dict]:
    torch.set_num_threads(args.threads)
    hw = bm.parse_size(args.size)
    entries = []
    for mode in args.modes:
        for ratio in args.ratios:
            opts = dict(args.cfg_options or {})
            opts['model.backbone.compression_ratio'] = ratio
            if mode != 'ltm':  # 'ltm' is every LTM backbone's default
                opts['model.backbone.merge_mode'] = mode
            cfg = bm.load_config(args.config, opts)
            model = bm.build_model(cfg, args.device)
            data = bm.make_batch(model, hw, args.batch)
            entries.append(dict(mode=mode, compression_ratio=ratio, model=model, data=data))
    fns = [bm.part_runner(e['model'], args.part, e['data']) for e in entries]
    times = bm.time_interleaved(fns, args.runs, args.warmup, args.device, args.timer)
    rows = []
    for e, t in zip(entries, times):
        s = bm.summarize(t)
        rows.append(dict(mode=e['mode'], compression_ratio=e['compression_ratio'],
                         params=bm.part_params(e['model'], args.part),
                         gflops=bm.part_flops(e['model'], args.part, e['data']) / 1e9,
                         latency_ms=s['median_ms'], q1_ms=s['q1_ms'], q3_ms=s['q3_ms']))
    for row in rows:
        # relative to no merging: ratio 1.0 of the same mode, else the largest ratio
        same = [r for r in rows if r['mode'] == row['mode']]
        ref = max(same, key=lambda r: r['compression_ratio'])
        row['flops_rel'] = row['gflops'] / ref['gflops']
        row['latency_rel'] = row['latency_ms'] / ref['latency_ms']
    return rows


def write_csv(rows: List[Dict], path: str) -> None:
    with open(path, 'w', newline='') as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        writer.writeheader()
        for r in rows:
            writer.writerow({k: r[k] for k in FIELDS})


def plot(rows: List[Dict], path: str, title: str) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4.2), dpi=120)
    for i, mode in enumerate(dict.fromkeys(r['mode'] for r in rows)):
        rs = sorted((r for r in rows if r['mode'] == mode), key=lambda r: r['compression_ratio'])
        x = [r['compression_ratio'] for r in rs]
        ref = max(rs, key=lambda r: r['compression_ratio'])['latency_ms']
        color = f'C{i}'
        ax.plot(x, [r['flops_rel'] for r in rs], 'o-', color=color, label=f'{mode}: FLOPs')
        ax.errorbar(x, [r['latency_rel'] for r in rs],
                    yerr=[[(r['latency_ms'] - r['q1_ms']) / ref for r in rs],
                          [(r['q3_ms'] - r['latency_ms']) / ref for r in rs]],
                    fmt='s--', color=color, capsize=3, label=f'{mode}: latency (median, IQR)')
    ax.set_xlabel('compression ratio r = N\'/N')
    ax.set_ylabel('relative to r = 1 (no merging)')
    ax.invert_xaxis()
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def markdown(rows: List[Dict]) -> str:
    lines = ['| mode | ratio | params (M) | GFLOPs/img | FLOPs rel. | latency ms, median [IQR] '
             '| latency rel. |', '|---|---|---|---|---|---|---|']
    for r in rows:
        lines.append(f"| {r['mode']} | {r['compression_ratio']:.2f} | {r['params'] / 1e6:.2f} | "
                     f"{r['gflops']:.3f} | {r['flops_rel']:.3f} | {r['latency_ms']:.1f} "
                     f"[{r['q1_ms']:.1f}-{r['q3_ms']:.1f}] | {r['latency_rel']:.3f} |")
    return '\n'.join(lines)


def parse_args(argv=None):
    from mmengine.config import DictAction
    p = argparse.ArgumentParser(description='FLOPs and latency vs compression_ratio')
    p.add_argument('config')
    p.add_argument('--ratios', type=float, nargs='+', default=list(DEFAULT_RATIOS))
    p.add_argument('--modes', nargs='+', default=['ltm'], choices=['ltm', 'tome'],
                   help='merge modes to sweep (backbone merge_mode)')
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
    kernels = bm.kernels_state(args.kernels)
    load = os.getloadavg()
    rows = sweep(args)
    csv_path = os.path.join(args.out_dir, 'sweep.csv')
    png_path = os.path.join(args.out_dir, 'sweep.png')
    write_csv(rows, csv_path)
    info = bm.machine_info(args.threads)
    title = (f'{os.path.basename(args.config)} {args.part} {args.size} b{args.batch}\n'
             f"{info['cpu']}, {info['torch_threads']} threads, {args.runs} runs")
    plot(rows, png_path, title)
    print(f"{info['cpu']}, {info['torch_threads']} threads, {args.part} at {args.size}, "
          f'batch {args.batch}, {args.warmup} warm-up + {args.runs} interleaved runs '
          f'({args.timer} timer); mmltm kernels: {kernels}; '
          f'load average {tuple(round(x, 2) for x in load)} -> '
          f'{tuple(round(x, 2) for x in os.getloadavg())}\n')
    print(markdown(rows))
    print(f'\nwrote {csv_path} and {png_path}')
    return rows


if __name__ == '__main__':
    main()
