"""Markdown tables (and the benchmark's report) of what the other modules
measured. Every table is built by :func:`md_table`; the cell formats are
those the README quotes."""
from typing import Dict, List, Optional, Sequence, Union


def md_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A markdown table: ``header`` and ``rows`` of cells, each written with
    ``str`` (format numbers before)."""
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    lines += ['| ' + ' | '.join(str(c) for c in row) + ' |' for row in rows]
    return '\n'.join(lines)


def fmt_ms(summary: Dict) -> str:
    """``'median [q1-q3]'`` of a :func:`~.timing.summarize` result, in ms."""
    return f"{summary['median_ms']:.1f} [{summary['q1_ms']:.1f}-{summary['q3_ms']:.1f}]"


def fmt_mb(nbytes: Optional[int]) -> str:
    """Bytes in MiB, or ``'-'`` for None."""
    return '-' if nbytes is None else f'{nbytes / 2**20:.0f}'


def fmt_opt(value: Optional[Union[float, Sequence[float]]], spec: str = '.3f',
            missing: str = '-') -> str:
    """``value`` formatted with ``spec``, or ``missing`` for None; a sequence
    (LTM-Swin's per-stage ``compression_ratio``) entry by entry, joined by
    ``/``."""
    if value is None:
        return missing
    if isinstance(value, (list, tuple)):
        return '/'.join(format(v, spec) for v in value)
    return format(value, spec)


# --------------------------------------------------------------------------
# benchmark.py
# --------------------------------------------------------------------------
def measurement_table(records: List[Dict]) -> str:
    """One row per (part, size, batch, model): params, FLOPs, latency,
    memory, detections, and the first (untimed) call, which compiles under
    ``torch.compile``."""
    header = ['part', 'size', 'batch', 'model', 'params (M)', 'GFLOPs/img',
              'latency ms, median [IQR]', 'ms/img', 'peak mem (MB)', 'dets', 'first call (s)']
    return md_table(header, [
        [r['part'], r['size'], r['batch'], r['name'], f"{r['params'] / 1e6:.2f}",
         f"{r['flops'] / 1e9:.3f}", fmt_ms(r['latency']),
         f"{r['latency']['median_ms'] / r['batch']:.1f}", fmt_mb(r['peak_mem_bytes']),
         fmt_opt(r.get('detections'), 'd'), fmt_opt(r.get('first_call_s'), '.2f')]
        for r in records])


def ratio_table(ratios: List[Dict]) -> str:
    """One row per (part, size, batch, model measured): model / baseline
    ratios; "/ FLOPs ratio" is a latency ratio over the FLOPs ratio (1: the
    compute-bound limit), "speed-up" is 1 / the paired median."""
    header = ['part', 'size', 'batch', 'model', 'FLOPs ratio', 'latency ratio (medians)',
              'paired latency ratio, median [IQR]', 'latency ratio / FLOPs ratio',
              'paired / FLOPs ratio', 'speed-up', 'memory ratio']
    rows = []
    for r in ratios:
        p = r['paired_latency_ratio']
        rows.append([r['part'], r['size'], r['batch'], r.get('model', 'ltm'),
                     f"{r['flops_ratio']:.3f}", f"{r['latency_ratio']:.3f}",
                     f"{p['median']:.3f} [{p['q1']:.3f}-{p['q3']:.3f}]",
                     f"{r['latency_over_flops']:.3f}", f"{r['paired_over_flops']:.3f}",
                     f"{r['speedup']:.3f}x", fmt_opt(r['memory_ratio'])])
    return md_table(header, rows)


def markdown_tables(records: List[Dict], ratios: List[Dict]) -> str:
    """The measurement table and, if there is a baseline, the ratio table."""
    out = measurement_table(records)
    return out + ('\n\n' + ratio_table(ratios) if ratios else '')


def overhead_table(rows: List[Dict]) -> str:
    """Rows of :func:`~.overhead.block_overhead`."""
    header = ['block', 'grid', "N -> N'", 'C', 'batch', 'mask + merge ms', 'unmerge + add ms',
              "FFN(N') ms", 'FFN(N) ms', 'attn ms', 'overhead / FFN saving',
              'block LTM / base', 'same, merging free']
    return md_table(header, [
        [r['block'], r['grid'], f"{r['N']} -> {r['N_merged']}", r['C'], r['batch'],
         f"{r['mask_merge_ms']:.3f}", f"{r['unmerge_add_ms']:.3f}", f"{r['ffn_merged_ms']:.3f}",
         f"{r['ffn_full_ms']:.3f}", f"{r['attn_ms']:.3f}", f"{r['overhead_over_saving']:.2f}",
         f"{r['block_ltm_ms'] / r['block_base_ms']:.3f}", f"{r['block_free_merge']:.3f}"]
        for r in rows])


def bounds_table(rows: List[Dict]) -> str:
    """Rows of :func:`~.overhead.merging_bound` (with the measured ratios
    where the caller added them)."""
    header = ['size', 'batch', 'blocks', 'norm2 + FFN share of the baseline',
              'latency ratio with free merging (estimate)', 'FLOPs ratio',
              'estimate / FLOPs ratio', 'measured latency ratio']
    return md_table(header, [
        [r['size'], r['batch'], r['blocks'], fmt_opt(r['shrinking_share']), fmt_opt(r['bound']),
         fmt_opt(r.get('flops_ratio')),
         fmt_opt(r['bound'] / r['flops_ratio'] if r.get('flops_ratio') else None),
         fmt_opt(r.get('latency_ratio'))]
        for r in rows])


def benchmark_report(result: Dict) -> str:
    """The benchmark's printed report: the machine line, how things were
    measured, and every table of ``result``
    (:func:`~.benchmark.run_benchmark`)."""
    m = result['machine']
    head = (f"Machine: {m['cpu']} ({m['machine']}, {m['logical_cpus']} logical CPUs), "
            f"device {result['device']}, torch {m['torch']}, {m['torch_threads']} threads"
            + ''.join(f', {k}={v}' for k, v in m.get('env', {}).items()) + '; '
            f"load average at start {tuple(round(x, 2) for x in m['loadavg_start'])}, "
            f"at end {tuple(round(x, 2) for x in m['loadavg_end'])}; "
            f"{result['warmup']} warm-up + {result['runs']} timed runs per model, interleaved; "
            f"timer: {'wall clock' if result['timer'] == 'wall' else 'process CPU time'}; "
            f"mmltm kernels: {result.get('kernels', 'unknown')}.\n"
            f"FLOPs: mmengine FlopAnalyzer (whole model in mode='tensor'); latency: "
            f"backbone on a tensor, whole model in mode='predict'; memory: "
            + ('CUDA max_memory_allocated' if result['device'].startswith('cuda')
               else 'RSS increase over one forward in a fresh process') + '.'
            + (' Detector heads fixed (--fix-proposals): no NMS (sort only), R-CNN '
               'score_thr 0, so both models run their heads on max_per_img '
               'proposals/detections.'
               if result.get('fixed_proposals') else '')
            + (' Timed under torch.compile (first call = compilation, in the "first call" '
               'column; FLOPs and memory of the eager models).'
               if result.get('compiled') else ''))
    out = [head, '', markdown_tables(result['records'], result['ratios'])]
    if result['overhead']:
        out += ['', 'Mask module + merge + unmerge vs FFN, first merging block of each grid '
                '("merging free": attention + FFN(N\') over attention + FFN(N), the bound '
                'for a mask module that cost nothing):', '',
                overhead_table(result['overhead'])]
    if result.get('bounds'):
        out += ['', 'What merging can buy at best, estimated inside whole baseline forwards: '
                'the share of time in norm2 + FFN of the blocks that merge, and the '
                'LTM/baseline latency ratio if that part shrank exactly with N\'/N and the '
                'mask module, merge and unmerge cost nothing:', '',
                bounds_table(result['bounds'])]
    return '\n'.join(out)


# --------------------------------------------------------------------------
# sweep_ratio.py
# --------------------------------------------------------------------------
def sweep_table(rows: List[Dict]) -> str:
    """Rows of :func:`~.sweep.sweep_ratios` (relative: to the baseline row
    if there is one, else to the series' largest ratio); "latency / FLOPs"
    is the paired latency ratio over the FLOPs ratio (1: compute-bound)."""
    header = ['series', 'ratio', 'params (M)', 'GFLOPs/img', 'FLOPs rel.',
              'latency ms, median [IQR]', 'latency rel.', 'paired rel., median [IQR]',
              'latency / FLOPs']
    out = []
    for r in rows:
        paired = ('-' if r.get('paired_rel') is None else
                  f"{r['paired_rel']:.3f} [{r['paired_q1']:.3f}-{r['paired_q3']:.3f}]")
        out.append([r.get('series', r.get('mode')), fmt_opt(r['compression_ratio'], '.2f'),
                     f"{r['params'] / 1e6:.2f}", f"{r['gflops']:.3f}", f"{r['flops_rel']:.3f}",
                     f"{r['latency_ms']:.1f} [{r['q1_ms']:.1f}-{r['q3_ms']:.1f}]",
                     f"{r['latency_rel']:.3f}", paired,
                     fmt_opt(r['paired_rel'] / r['flops_rel'] if r.get('paired_rel') else None)])
    return md_table(header, out)


# --------------------------------------------------------------------------
# get_flops.py
# --------------------------------------------------------------------------
def paper_flops_table(results: List[Dict]) -> str:
    """Classifier params/FLOPs, baseline vs LTM, next to the paper's figures
    (``paper_params``, ``paper_flops``, ``paper_ltm_flops``); a row with a
    ``baseline_error`` / ``ltm_error`` shows the error."""
    header = ['model', 'input', 'params M (paper)', 'baseline GFLOPs (paper, Δ)',
              'LTM GFLOPs (paper, Δ)', 'LTM / baseline (paper)', 'compression_ratio']
    rows = []
    for r in results:
        if 'baseline_error' in r or 'ltm_error' in r:
            err = r.get('baseline_error') or r.get('ltm_error')
            rows.append([r['name'], r['size'], f'error: {err}'] + [''] * 4)
            continue
        b, l = r['baseline_flops'], r['ltm_flops']
        db = 100 * (b / r['paper_flops'] - 1)
        dl = 100 * (l / r['paper_ltm_flops'] - 1)
        rows.append([
            r['name'], f"{r['size']}²", f"{r['ltm_params']:.2f} ({r['paper_params']})",
            f"{b:.3f} ({r['paper_flops']}, {db:+.1f}%)",
            f"{l:.3f} ({r['paper_ltm_flops']}, {dl:+.1f}%)",
            f"{l / b:.3f} ({r['paper_ltm_flops'] / r['paper_flops']:.3f})",
            fmt_opt(r['ltm_ratio'], 'g', '—')])
    return md_table(header, rows)


def dense_flops_table(results: List[Dict]) -> str:
    """Backbone and whole-model FLOPs of detection / segmentation pairs
    (:func:`~.flops.part_flops` results in G, keys ``{role}_{part}_flops``)."""
    header = ['model', 'input (padded)', 'part', 'params M', 'baseline GFLOPs', 'LTM GFLOPs',
              'LTM / baseline', 'compression_ratio']
    rows = []
    for r in results:
        h, w = r['size']
        ph, pw = r['ltm_input']
        for part in ('backbone', 'model'):
            b, l = r[f'baseline_{part}_flops'], r[f'ltm_{part}_flops']
            rows.append([r['name'], f'{h}x{w} ({ph}x{pw})', part,
                         f"{r[f'ltm_{part}_params']:.2f}", f'{b:.2f}', f'{l:.2f}',
                         f'{l / b:.3f}', fmt_opt(r['ltm_ratio'], 'g', '—')])
    return md_table(header, rows)


def breakdown_table(results: List[Dict]) -> str:
    """The backbone's share of dense models' FLOPs and what it bounds
    (:func:`~.flops.amdahl_bound`): ``results`` as ``get_flops.py --dense
    --breakdown`` measures them (``baseline_breakdown`` in FLOPs,
    ``ltm_backbone_flops`` / ``baseline_backbone_flops`` and the model
    FLOPs in G, ``bound``)."""
    header = ['model', 'input (padded)', 'baseline GFLOPs by part', 'backbone share',
              'LTM backbone FLOPs ratio', 'whole-model ratio, Amdahl', 'whole-model ratio, '
              'counted', 'max end-to-end speed-up at that ratio', 'with a free backbone']
    rows = []
    for r in results:
        (h, w), (ph, pw) = r['size'], r['ltm_input']
        parts = ', '.join(f'{k} {v / 1e9:.4g}' for k, v in r['baseline_breakdown'].items()
                          if k != 'total' and (v or k != 'other'))
        b = r['bound']
        rows.append([r['name'], f'{h}x{w} ({ph}x{pw})', parts, f"{r['backbone_share']:.3f}",
                     f"{r['ltm_backbone_flops'] / r['baseline_backbone_flops']:.3f}",
                     f"{b['whole_ratio']:.3f}",
                     f"{r['ltm_model_flops'] / r['baseline_model_flops']:.3f}",
                     f"{b['speedup']:.3f}x", f"{b['free_speedup']:.2f}x"])
    return md_table(header, rows)
