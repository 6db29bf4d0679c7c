"""FLOPs and latency of an LTM model as ``compression_ratio`` goes down
(what ``tools/analysis_tools/sweep_ratio.py`` runs): one model per (merge
mode, ratio), all built first and timed interleaved, so that drift hits
every ratio alike; FLOPs with mmengine's counter (:mod:`.flops`)."""
import csv
from typing import Dict, List, Optional, Sequence

from .flops import part_flops, part_params
from .models import build_model, load_config, make_batch, parse_size, part_runner
from .timing import summarize, time_interleaved

DEFAULT_RATIOS = (1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4)
#: the columns of the CSV
FIELDS = ('mode', 'compression_ratio', 'params', 'gflops', 'flops_rel', 'latency_ms',
          'q1_ms', 'q3_ms', 'latency_rel')


def relative_to_unmerged(rows: List[Dict]) -> List[Dict]:
    """Add ``flops_rel`` and ``latency_rel`` to every row: relative to the
    row of the same mode with the largest ratio (1.0: no merging)."""
    for row in rows:
        ref = max((r for r in rows if r['mode'] == row['mode']),
                  key=lambda r: r['compression_ratio'])
        row['flops_rel'] = row['gflops'] / ref['gflops']
        row['latency_rel'] = row['latency_ms'] / ref['latency_ms']
    return rows


def sweep_ratios(config: str, ratios: Sequence[float] = DEFAULT_RATIOS,
                 modes: Sequence[str] = ('ltm', ), size: str = '224', batch: int = 1,
                 part: str = 'backbone', runs: int = 20, warmup: int = 3,
                 device: str = 'cpu', timer: str = 'wall',
                 cfg_options: Optional[dict] = None) -> List[Dict]:
    """One row per (mode, ratio): params, GFLOPs/img, latency median and
    quartiles (ms), and both relative to no merging.

    Args:
        config: an LTM config; ``model.backbone.compression_ratio`` (and,
            for modes other than the backbone default ``'ltm'``,
            ``merge_mode``) are overridden.
        ratios: compression ratios.
        modes: merge modes.
        size: ``S`` or ``HxW``.
        batch: batch size.
        part: ``'backbone'`` or ``'model'``.
        runs, warmup, device, timer: see :func:`~.timing.time_interleaved`.
        cfg_options: further overrides.
    """
    hw = parse_size(size)
    entries = []
    for mode in modes:
        for ratio in ratios:
            opts = dict(cfg_options or {})
            opts['model.backbone.compression_ratio'] = ratio
            if mode != 'ltm':  # 'ltm' is every LTM backbone's default
                opts['model.backbone.merge_mode'] = mode
            model = build_model(load_config(config, opts), device)
            entries.append(dict(mode=mode, compression_ratio=ratio, model=model,
                                data=make_batch(model, hw, batch)))
    fns = [part_runner(e['model'], part, e['data']) for e in entries]
    times = time_interleaved(fns, runs, warmup, device, timer)
    rows = []
    for e, t in zip(entries, times):
        s = summarize(t)
        rows.append(dict(mode=e['mode'], compression_ratio=e['compression_ratio'],
                         params=part_params(e['model'], part),
                         gflops=part_flops(e['model'], part, e['data']) / 1e9,
                         latency_ms=s['median_ms'], q1_ms=s['q1_ms'], q3_ms=s['q3_ms']))
    return relative_to_unmerged(rows)


def write_csv(rows: List[Dict], path: str) -> None:
    """The :data:`FIELDS` of ``rows`` as CSV."""
    with open(path, 'w', newline='') as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        writer.writeheader()
        for r in rows:
            writer.writerow({k: r[k] for k in FIELDS})


def plot(rows: List[Dict], path: str, title: str) -> None:
    """FLOPs and latency (median, IQR) relative to ratio 1, per mode, as a
    PNG."""
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
