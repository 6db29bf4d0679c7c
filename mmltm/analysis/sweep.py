"""FLOPs and latency of an LTM model as ``compression_ratio`` goes down
(what ``tools/analysis_tools/sweep_ratio.py`` runs): one model per (series,
ratio), a series being a merge mode and scope (``ltm/ffn``, ``ltm/stage``,
``tome``), all built first and timed interleaved (with a baseline model if
given), so that drift hits every ratio alike; FLOPs with mmengine's counter
(:mod:`.flops`)."""
import csv
from typing import Dict, List, Optional, Sequence

from .flops import part_flops, part_params
from .models import build_model, load_config, make_batch, parse_size, part_runner
from .timing import paired_ratio, summarize, time_interleaved
from .variants import Variant, parse_variants

DEFAULT_RATIOS = (1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4)
#: the columns of the CSV
FIELDS = ('series', 'mode', 'scope', 'compression_ratio', 'params', 'gflops', 'flops_rel',
          'latency_ms', 'q1_ms', 'q3_ms', 'latency_rel', 'paired_rel', 'paired_q1',
          'paired_q3')
#: the label of the y = x line of the plot
LIMIT_LABEL = 'y = x (compute-bound limit)'


def relative_to_unmerged(rows: List[Dict], reference: Optional[Dict] = None) -> List[Dict]:
    """Add ``flops_rel`` and ``latency_rel`` (ratio of the medians) to every
    row, and, where rows carry their ``times_s`` from one interleaved run,
    ``paired_rel`` / ``paired_q1`` / ``paired_q3`` (median and quartiles of
    the per-round ratios).

    Args:
        rows: one per (series, ratio), with ``series`` (or ``mode``),
            ``compression_ratio``, ``gflops``, ``latency_ms``.
        reference: the row everything is relative to (the baseline model);
            None: the row of the same series with the largest ratio (1.0:
            no merging).
    """
    def key(r):
        return r.get('series', r.get('mode'))

    for row in rows:
        ref = reference or max((r for r in rows if key(r) == key(row)),
                               key=lambda r: r['compression_ratio'])
        row['flops_rel'] = row['gflops'] / ref['gflops']
        row['latency_rel'] = row['latency_ms'] / ref['latency_ms']
        if 'times_s' in row and 'times_s' in ref:
            p = paired_ratio(row['times_s'], ref['times_s'])
            row['paired_rel'], row['paired_q1'], row['paired_q3'] = (p['median'], p['q1'],
                                                                     p['q3'])
    return rows


def parse_series(texts: Sequence[str]) -> List[Variant]:
    """``MODE[/SCOPE]`` specs (:func:`~.variants.parse_variant` without a
    ratio: the sweep sets it)."""
    series = parse_variants(texts)
    for v in series:
        if v.ratio is not None:
            raise ValueError(f'series {v.name!r}: give MODE[/SCOPE] without @RATIO; the '
                             f'sweep sets the ratio (--ratios)')
    return series


def sweep_ratios(config: str, ratios: Sequence[float] = DEFAULT_RATIOS,
                 modes: Sequence[str] = ('ltm', ), size: str = '224', batch: int = 1,
                 part: str = 'backbone', runs: int = 20, warmup: int = 3,
                 device: str = 'cpu', timer: str = 'wall',
                 cfg_options: Optional[dict] = None, series: Optional[Sequence[str]] = None,
                 baseline: Optional[str] = None) -> List[Dict]:
    """One row per (series, ratio): params, GFLOPs/img, latency median and
    quartiles (ms), and both relative to the reference (the baseline, or no
    merging), with the paired latency ratio.

    Args:
        config: an LTM config; ``model.backbone.compression_ratio`` (and the
            series' ``merge_mode`` / ``merge_scope``) are overridden.
        ratios: compression ratios.
        modes: merge modes, one series each (used when ``series`` is None).
        size: ``S`` or ``HxW``.
        batch: batch size.
        part: ``'backbone'`` or ``'model'``.
        runs, warmup, device, timer: see :func:`~.timing.time_interleaved`.
        cfg_options: further overrides (of every config).
        series: ``MODE[/SCOPE]`` specs, e.g. ``['ltm/ffn', 'ltm/stage',
            'tome']``; each is swept over ``ratios``.
        baseline: a config timed in the same interleaved run; every row is
            relative to it (None: to its series' largest ratio).
    """
    hw = parse_size(size)
    specs = parse_series(series if series else list(modes))
    entries = []
    for spec in specs:
        for ratio in ratios:
            opts = spec._replace(ratio=ratio).cfg_options(cfg_options)
            model = build_model(load_config(config, opts), device)
            entries.append(dict(series=spec.name, mode=spec.mode, scope=spec.scope,
                                compression_ratio=ratio, model=model,
                                data=make_batch(model, hw, batch)))
    if baseline:
        model = build_model(load_config(baseline, cfg_options), device)
        entries.append(dict(series='baseline', mode=None, scope=None, compression_ratio=None,
                            model=model, data=make_batch(model, hw, batch)))
    fns = [part_runner(e['model'], part, e['data']) for e in entries]
    times = time_interleaved(fns, runs, warmup, device, timer)
    rows = []
    for e, t in zip(entries, times):
        s = summarize(t)
        rows.append(dict(series=e['series'], mode=e['mode'], scope=e['scope'],
                         compression_ratio=e['compression_ratio'],
                         params=part_params(e['model'], part),
                         gflops=part_flops(e['model'], part, e['data']) / 1e9,
                         latency_ms=s['median_ms'], q1_ms=s['q1_ms'], q3_ms=s['q3_ms'],
                         times_s=t))
    reference = rows.pop() if baseline else None
    rows = relative_to_unmerged(rows, reference)
    if reference is not None:
        rows.append(dict(reference, flops_rel=1.0, latency_rel=1.0, paired_rel=1.0,
                         paired_q1=1.0, paired_q3=1.0))
    return rows


def write_csv(rows: List[Dict], path: str) -> None:
    """The :data:`FIELDS` of ``rows`` as CSV."""
    with open(path, 'w', newline='') as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        writer.writeheader()
        for r in rows:
            writer.writerow({k: r.get(k) for k in FIELDS})


def sweep_figure(rows: List[Dict], title: str):
    """The sweep as a matplotlib figure with two panels.

    Left: latency ratio (paired median where the rows have it, with its IQR;
    else the ratio of the medians) against FLOPs ratio, one series per mode /
    scope, and the line y = x (:data:`LIMIT_LABEL`): where a model whose time
    fell exactly with its FLOPs would lie; above it, time falls more slowly
    than FLOPs. Right: FLOPs and latency against the compression ratio.
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, (ax, ax_r) = plt.subplots(1, 2, figsize=(11, 4.4), dpi=120)
    swept = [r for r in rows if r['compression_ratio'] is not None]
    names = list(dict.fromkeys(r['series'] for r in swept))
    for i, name in enumerate(names):
        rs = sorted((r for r in swept if r['series'] == name),
                    key=lambda r: r['compression_ratio'])
        color = f'C{i}'
        paired = all('paired_rel' in r for r in rs)
        y = [r['paired_rel'] if paired else r['latency_rel'] for r in rs]
        yerr = ([[r['paired_rel'] - r['paired_q1'] for r in rs],
                 [r['paired_q3'] - r['paired_rel'] for r in rs]] if paired else None)
        ax.errorbar([r['flops_rel'] for r in rs], y, yerr=yerr, fmt='o-', color=color,
                    capsize=3, label=name)
        for r, yy in zip(rs, y):
            ax.annotate(f"{r['compression_ratio']:g}", (r['flops_rel'], yy), fontsize=6,
                        xytext=(3, 3), textcoords='offset points', color=color)
        x = [r['compression_ratio'] for r in rs]
        ref = max(rs, key=lambda r: r['compression_ratio'])['latency_ms']
        ax_r.plot(x, [r['flops_rel'] for r in rs], 'o-', color=color, label=f'{name}: FLOPs')
        ax_r.errorbar(x, [r['latency_rel'] for r in rs],
                      yerr=[[(r['latency_ms'] - r['q1_ms']) / ref for r in rs],
                            [(r['q3_ms'] - r['latency_ms']) / ref for r in rs]],
                      fmt='s--', color=color, capsize=3,
                      label=f'{name}: latency (median, IQR)')
    values = [r['flops_rel'] for r in swept] + [r.get('paired_rel', r['latency_rel'])
                                                for r in swept]
    lo, hi = min(values + [1.0]), max(values + [1.0])
    pad = 0.02 * (hi - lo or 1.0)
    ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], 'k:', label=LIMIT_LABEL)
    reference = 'the baseline' if any(r['series'] == 'baseline' for r in rows) else 'r = 1'
    ax.set_xlabel(f'FLOPs ratio (vs {reference})')
    ax.set_ylabel(f'latency ratio (vs {reference}; paired median, IQR)')
    ax.set_aspect('equal', adjustable='datalim')
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax_r.set_xlabel('compression ratio r = N\'/N')
    ax_r.set_ylabel(f'relative to {reference}')
    ax_r.invert_xaxis()
    ax_r.grid(alpha=0.3)
    ax_r.legend(fontsize=6)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def plot(rows: List[Dict], path: str, title: str) -> None:
    """:func:`sweep_figure` as a PNG."""
    import matplotlib.pyplot as plt
    fig = sweep_figure(rows, title)
    fig.savefig(path)
    plt.close(fig)
