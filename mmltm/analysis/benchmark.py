"""A model against a baseline, in one process: params, FLOPs, interleaved
latency, peak memory, and optionally the per-block overhead of the mask
module and the free-merging estimate (what ``tools/analysis_tools/
benchmark.py`` runs and prints).

Random weights are used (no checkpoint is loaded): cost does not depend on
the weights, except a detector's post-processing, which depends on how many
boxes survive (:func:`~.models.fix_detector_workload` fixes it).
"""
import os
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


def ratio_row(part: str, size: str, batch: int, a: Dict, b: Dict) -> Dict:
    """Model / baseline ratios of one (part, size, batch) cell from the two
    records (``flops``, ``latency``, ``times_s``, ``peak_mem_bytes``)."""
    fr = a['flops'] / b['flops']
    lat = latency_ratios(a['times_s'], b['times_s'])
    mem = (a['peak_mem_bytes'] / b['peak_mem_bytes']
           if a['peak_mem_bytes'] and b['peak_mem_bytes'] else None)
    return dict(part=part, size=size, batch=batch, flops_ratio=fr, **lat,
                latency_over_flops=lat['latency_ratio'] / fr, memory_ratio=mem)


def run_benchmark(config: str, baseline: Optional[str] = None,
                  sizes: Optional[Sequence[str]] = None, batches: Sequence[int] = (1, ),
                  runs: int = 20, warmup: int = 3, threads: int = 2, part: str = 'both',
                  device: str = 'cpu', timer: str = 'wall', memory: str = 'auto',
                  fix_proposals: bool = False, overhead: bool = False,
                  kernels: str = 'auto', cfg_options: Optional[dict] = None,
                  wrap: Optional[Callable[[nn.Module], nn.Module]] = None,
                  log=partial(print, flush=True)) -> Dict:
    """Measure the model of ``config`` (and of ``baseline``).

    Args:
        config: config of the model measured (role ``'ltm'``).
        baseline: config of the reference (role ``'baseline'``), or None.
        sizes: ``S`` / ``HxW`` strings (default: :func:`~.models.default_sizes`).
        batches: batch sizes.
        runs: timed rounds per cell (both models interleaved).
        warmup: untimed rounds.
        threads: ``torch.set_num_threads``.
        part: ``'backbone'``, ``'model'`` or ``'both'``.
        device: ``'cpu'`` or ``'cuda[:i]'``.
        timer: ``'wall'`` or ``'cpu'`` (see :data:`~.timing.TIMERS`).
        memory: ``'auto'`` measures peak memory, ``'none'`` skips it.
        fix_proposals: apply :func:`~.models.fix_detector_workload`.
        overhead: add :func:`~.overhead.block_overhead` rows and, with a
            baseline of the same block layout, :func:`~.overhead.merging_bound`.
        kernels: see :func:`~.machine.kernels_state`.
        cfg_options: overrides applied to both configs.
        wrap: applied to the timed module of both models (e.g.
            ``torch.compile``; FLOPs and memory are of the unwrapped ones).
        log: called with one progress line per measured model and cell.

    Returns:
        ``machine``, ``records`` (one per model and cell), ``ratios`` (one
        per cell with a baseline), ``overhead``, ``bounds`` and the settings.
    """
    if part not in PARTS + ('both', ):
        raise ValueError(f"part={part!r}; allowed: {list(PARTS) + ['both']}")
    if memory not in ('auto', 'none'):
        raise ValueError(f"memory={memory!r}; allowed: ['auto', 'none']")
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    info = machine_info(threads)
    kernels_desc = kernels_state(kernels)
    configs = [('ltm', config)] + ([('baseline', baseline)] if baseline else [])
    names, models, fixed = {}, {}, False
    for role, path in configs:
        cfg = load_config(path, cfg_options)
        if fix_proposals:
            fixed = fix_detector_workload(cfg) or fixed
        models[role] = build_model(cfg, device)
        names[role] = os.path.splitext(os.path.basename(path))[0]
    sizes_hw = [parse_size(s) for s in (sizes or default_sizes(models['ltm'].scope))]
    parts = list(PARTS) if part == 'both' else [part]
    records: List[Dict] = []
    ratios: List[Dict] = []
    for p in parts:
        for hw in sizes_hw:
            for batch in batches:
                data = {role: make_batch(m, hw, batch) for role, m in models.items()}
                fns = [part_runner(models[role], p, data[role], wrap) for role in models]
                with torch.inference_mode():
                    outs = [fn() for fn in fns]
                times = time_interleaved(fns, runs, warmup, device, timer)
                cell = {}
                for (role, model), t, out in zip(models.items(), times, outs):
                    rec = dict(part=p, size=size_str(hw), batch=batch, role=role,
                               name=names[role], params=part_params(model, p),
                               flops=part_flops(model, p, data[role]),
                               latency=summarize(t), times_s=t,
                               detections=num_detections(out) if p == 'model' else None,
                               peak_mem_bytes=None)
                    if memory != 'none':
                        rec['peak_mem_bytes'] = measure_peak_memory(
                            dict(configs)[role], cfg_options, p, hw, batch, threads, device,
                            fix_proposals)
                    records.append(rec)
                    cell[role] = rec
                    log(f"[{p} {size_str(hw)} b{batch}] {names[role]}: "
                        f"{rec['flops'] / 1e9:.3f} GFLOPs/img, {fmt_ms(rec['latency'])} ms")
                if 'baseline' in cell:
                    ratios.append(ratio_row(p, size_str(hw), batch, cell['ltm'],
                                            cell['baseline']))
    overhead_rows, bounds = [], []
    if overhead:
        for hw in sizes_hw:
            for batch in batches:
                overhead_rows += block_overhead(models['ltm'], hw, batch, runs, warmup, device,
                                                timer)
                if 'baseline' in models and has_ffn_blocks(models['baseline'].backbone,
                                                           models['ltm'].backbone):
                    bound = merging_bound(models['ltm'], models['baseline'], hw, batch, runs,
                                          warmup, device, timer)
                    cell = [r for r in ratios if r['part'] == 'backbone'
                            and r['size'] == bound['size'] and r['batch'] == batch]
                    if cell:
                        bound['flops_ratio'] = cell[0]['flops_ratio']
                        bound['latency_ratio'] = cell[0]['latency_ratio']
                    bounds.append(bound)
    info['loadavg_end'] = os.getloadavg()
    return dict(machine=info, device=device, runs=runs, warmup=warmup, timer=timer,
                fixed_proposals=fixed, kernels=kernels_desc, configs=dict(configs),
                records=records, ratios=ratios, overhead=overhead_rows, bounds=bounds)
