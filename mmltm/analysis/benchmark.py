"""A model (or variants of it) against a baseline, in one process: params, FLOPs, interleaved
latency, peak memory, and optionally the per-block overhead of the mask
module and the free-merging estimate (what ``tools/analysis_tools/
benchmark.py`` runs and prints).

Random weights are used (no checkpoint is loaded): cost does not depend on
the weights, except a detector's post-processing, which depends on how many
boxes survive (:func:`~.models.fix_detector_workload` fixes it).
"""
import os
import time
from functools import partial
from typing import Callable, Dict, List, Optional, Sequence

import torch
import torch.nn as nn

from .flops import part_flops, part_params
from .machine import kernels_state, machine_info
from .memory import measure_peak_memory
from .models import (PARTS, build_model, default_sizes, fix_detector_workload, load_config,
                     make_batch, num_detections, parse_size, part_runner, size_str)
from .overhead import block_overhead, has_ffn_blocks, merging_bound
from .tables import fmt_ms
from .timing import latency_ratios, summarize, time_interleaved
from .variants import parse_variants


def ratio_row(part: str, size: str, batch: int, a: Dict, b: Dict,
              model: str = 'ltm') -> Dict:
    """Model / baseline ratios of one (part, size, batch) cell from the two
    records (``flops``, ``latency``, ``times_s``, ``peak_mem_bytes``).

    Besides the FLOPs ratio and the latency ratios (of the medians, and the
    median and quartiles of the per-round ratios) it gives each latency
    ratio over the FLOPs ratio (``latency_over_flops``,
    ``paired_over_flops``: 1 is the compute-bound limit, where time falls
    exactly with the FLOPs) and the speed-up ``1 / paired median``.

    Args:
        part, size, batch: the cell.
        a: the record of the model measured.
        b: the record of the baseline.
        model: the name of the model measured (its variant).
    """
    fr = a['flops'] / b['flops']
    lat = latency_ratios(a['times_s'], b['times_s'])
    mem = (a['peak_mem_bytes'] / b['peak_mem_bytes']
           if a['peak_mem_bytes'] and b['peak_mem_bytes'] else None)
    paired = lat['paired_latency_ratio']['median']
    return dict(part=part, size=size, batch=batch, model=model, flops_ratio=fr, **lat,
                latency_over_flops=lat['latency_ratio'] / fr,
                paired_over_flops=paired / fr, speedup=1 / paired, memory_ratio=mem)


def run_benchmark(config: str, baseline: Optional[str] = None,
                  sizes: Optional[Sequence[str]] = None, batches: Sequence[int] = (1, ),
                  runs: int = 20, warmup: int = 3, threads: int = 2, part: str = 'both',
                  device: str = 'cpu', timer: str = 'wall', memory: str = 'auto',
                  fix_proposals: bool = False, overhead: bool = False,
                  kernels: str = 'auto', cfg_options: Optional[dict] = None,
                  wrap: Optional[Callable[[nn.Module], nn.Module]] = None,
                  variants: Optional[Sequence[str]] = None,
                  log=partial(print, flush=True)) -> Dict:
    """Measure the model of ``config`` (or several variants of it) and of
    ``baseline``, all interleaved in one process.

    Args:
        config: config of the model measured (role ``'ltm'``).
        baseline: config of the reference (role ``'baseline'``), or None.
        sizes: ``S`` / ``HxW`` strings (default: :func:`~.models.default_sizes`).
        batches: batch sizes.
        runs: timed rounds per cell (all models interleaved).
        warmup: untimed rounds.
        threads: ``torch.set_num_threads``.
        part: ``'backbone'``, ``'model'`` or ``'both'``.
        device: ``'cpu'`` or ``'cuda[:i]'``.
        timer: ``'wall'`` or ``'cpu'`` (see :data:`~.timing.TIMERS`).
        memory: ``'auto'`` measures peak memory, ``'none'`` skips it.
        fix_proposals: apply :func:`~.models.fix_detector_workload`.
        overhead: add :func:`~.overhead.block_overhead` rows (of the first
            model measured) and, with a baseline of the same block layout,
            :func:`~.overhead.merging_bound`.
        kernels: see :func:`~.machine.kernels_state`.
        cfg_options: overrides applied to every config.
        wrap: applied to the timed module of every model (e.g.
            ``torch.compile``; FLOPs and memory are of the unwrapped ones).
        variants: ``MODE[/SCOPE][@RATIO]`` specs (:mod:`.variants`): one
            model of ``config`` per spec, each its own role (its spec) and
            each compared with the baseline; None measures ``config`` as it
            is (role ``'ltm'``).
        log: called with one progress line per measured model and cell.

    Returns:
        ``machine``, ``records`` (one per model and cell, with
        ``first_call_s``: the first, untimed call, which compiles under
        ``torch.compile``), ``ratios`` (one per model and cell with a
        baseline), ``overhead``, ``bounds`` and the settings.
    """
    if part not in PARTS + ('both', ):
        raise ValueError(f"part={part!r}; allowed: {list(PARTS) + ['both']}")
    if memory not in ('auto', 'none'):
        raise ValueError(f"memory={memory!r}; allowed: ['auto', 'none']")
    # (role, config, cfg_options, name)
    base_name = os.path.splitext(os.path.basename(config))[0]
    if variants:
        specs = [(v.name, config, v.cfg_options(cfg_options), f'{base_name} [{v.name}]')
                 for v in parse_variants(variants)]
    else:
        specs = [('ltm', config, cfg_options, base_name)]
    if baseline:
        specs.append(('baseline', baseline, cfg_options,
                      os.path.splitext(os.path.basename(baseline))[0]))
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    info = machine_info(threads)
    kernels_desc = kernels_state(kernels)
    names, models, options, fixed = {}, {}, {}, False
    for role, path, opts, name in specs:
        cfg = load_config(path, opts)
        if fix_proposals:
            fixed = fix_detector_workload(cfg) or fixed
        try:
            models[role] = build_model(cfg, device)
        except Exception as err:
            raise RuntimeError(f'building {role!r} ({path}, overrides {opts}) failed: '
                               f'{type(err).__name__}: {err}') from err
        names[role], options[role] = name, opts
    paths = {role: path for role, path, _, _ in specs}
    measured = [role for role in models if role != 'baseline']
    first = models[measured[0]]
    sizes_hw = [parse_size(s) for s in (sizes or default_sizes(first.scope))]
    parts = list(PARTS) if part == 'both' else [part]
    records: List[Dict] = []
    ratios: List[Dict] = []
    for p in parts:
        for hw in sizes_hw:
            for batch in batches:
                data = {role: make_batch(m, hw, batch) for role, m in models.items()}
                fns = [part_runner(models[role], p, data[role], wrap) for role in models]
                first_s, outs = [], []
                with torch.inference_mode():
                    for role, fn in zip(models, fns):
                        t0 = time.perf_counter()
                        outs.append(fn())
                        first_s.append(time.perf_counter() - t0)
                        if wrap is not None:  # compilation can take minutes: say so
                            log(f'[{p} {size_str(hw)} b{batch}] {names[role]}: first call '
                                f'(compiles) {first_s[-1]:.1f} s')
                times = time_interleaved(fns, runs, warmup, device, timer)
                cell = {}
                for (role, model), t, out, t1 in zip(models.items(), times, outs, first_s):
                    rec = dict(part=p, size=size_str(hw), batch=batch, role=role,
                               name=names[role], params=part_params(model, p),
                               flops=part_flops(model, p, data[role]),
                               latency=summarize(t), times_s=t, first_call_s=t1,
                               detections=num_detections(out) if p == 'model' else None,
                               peak_mem_bytes=None)
                    if memory != 'none':
                        rec['peak_mem_bytes'] = measure_peak_memory(
                            paths[role], options[role], p, hw, batch, threads, device,
                            fix_proposals)
                    records.append(rec)
                    cell[role] = rec
                    log(f"[{p} {size_str(hw)} b{batch}] {names[role]}: "
                        f"{rec['flops'] / 1e9:.3f} GFLOPs/img, {fmt_ms(rec['latency'])} ms")
                if 'baseline' in cell:
                    for role in measured:  # logged now: a long run may not reach the end
                        r = ratio_row(p, size_str(hw), batch, cell[role], cell['baseline'], role)
                        ratios.append(r)
                        q = r['paired_latency_ratio']
                        log(f"[{p} {size_str(hw)} b{batch}] {role} / baseline: FLOPs "
                            f"{r['flops_ratio']:.3f}, latency {r['latency_ratio']:.3f}, paired "
                            f"{q['median']:.3f} [{q['q1']:.3f}-{q['q3']:.3f}], paired / FLOPs "
                            f"{r['paired_over_flops']:.3f}")
    overhead_rows, bounds = [], []
    if overhead:
        lead = measured[0]
        for hw in sizes_hw:
            for batch in batches:
                overhead_rows += block_overhead(first, hw, batch, runs, warmup, device, timer)
                if 'baseline' in models and has_ffn_blocks(models['baseline'].backbone,
                                                           first.backbone):
                    bound = merging_bound(first, models['baseline'], hw, batch, runs,
                                          warmup, device, timer)
                    cell = [r for r in ratios if r['part'] == 'backbone' and r['model'] == lead
                            and r['size'] == bound['size'] and r['batch'] == batch]
                    if cell:
                        bound['flops_ratio'] = cell[0]['flops_ratio']
                        bound['latency_ratio'] = cell[0]['latency_ratio']
                    bounds.append(bound)
    info['loadavg_end'] = os.getloadavg()
    return dict(machine=info, device=device, runs=runs, warmup=warmup, timer=timer,
                fixed_proposals=fixed, kernels=kernels_desc, configs=paths,
                variants=list(measured), compiled=wrap is not None,
                records=records, ratios=ratios, overhead=overhead_rows, bounds=bounds)
