"""Measured cost of an (LTM) model against a baseline, in one process.

For every part (the backbone alone and/or the whole classifier, detector or
segmentor), input size and batch size it measures, for the model of CONFIG
and the model of ``--baseline``:

* parameters;
* FLOPs per image with mmengine's ``FlopAnalyzer`` (its default op set:
  convolutions, linear layers / matmuls, norms, upsampling; element-wise ops
  such as GELU, softmax, the LTM mask module's gathers and the residual adds
  are not counted, for either model). The counter traces the real forward,
  so it sees the reduced token count N' of every merged FFN. The whole model
  is counted in ``mode='tensor'`` (the network without post-processing, as
  mmdet's and mmseg's ``get_flops.py`` do);
* latency: ``--warmup`` untimed runs, then ``--runs`` timed runs per model,
  the two models interleaved A B B A ... so that drift (other jobs, clock
  changes) hits both alike; median and inter-quartile range in ms, under
  ``torch.inference_mode``, threads pinned with ``torch.set_num_threads``.
  The whole model runs in ``mode='predict'`` on a dummy data sample (all
  post-processing included); the backbone on a ``(B, 3, H, W)`` tensor;
* peak memory of one forward: on CUDA ``torch.cuda.max_memory_allocated``
  minus the memory allocated before it; on CPU the resident-set (RSS)
  increase of a fresh sub-process over one forward (the kernel's RSS
  high-water mark VmHWM, reset just before the forward through
  ``/proc/self/clear_refs``, minus the RSS before it; where that reset is
  not allowed, a 1 ms RSS sampler and ``ru_maxrss``; glibc is told to
  return freed large blocks to the OS so that RSS tracks live tensors).
  ``--memory none`` skips it.

``--overhead`` adds, for LTM backbones with mmcv FFNs (LTM-Swin), the time
of the mask module + merge and of unmerge + residual add against the FFN time
they save, per grid, and an estimate of the best latency ratio merging can
reach: the baseline's time share in the parts that run on merged tokens,
measured inside whole forwards (:func:`merging_bound`). ``--kernels off``
runs the LTM mask module in its PyTorch reference code instead of mmltm's
compiled CPU kernels.

It prints a markdown table of the measurements and one of the ratios
CONFIG / baseline (FLOPs, median latency, the median of the per-pair latency
ratios with its IQR, and latency ratio / FLOPs ratio), and can write all of
it as JSON. Random weights are used (no checkpoint is loaded): cost does not
depend on the weights, except a detector's post-processing, which depends on
how many boxes survive (the table gives the number of detections).

Example::

    python tools/analysis_tools/benchmark.py configs/mask_rcnn_ltm_swin_t_coco.py \\
        --baseline configs/mask_rcnn_swin_t_coco.py --sizes 224 800x1333 \\
        --batch 1 --runs 20 --threads 2 --part both
"""
import argparse
import gc
import json
import math
import os
import platform
import re
import resource
import subprocess
import sys
import threading
import time
from functools import partial
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn

SCOPES = ('mmdet', 'mmseg', 'mmpretrain')
PARTS = ('backbone', 'model')


# --------------------------------------------------------------------------
# building
# --------------------------------------------------------------------------
def parse_size(text: str) -> Tuple[int, int]:
    """``'224'`` -> (224, 224); ``'800x1333'`` -> (H=800, W=1333)."""
    try:
        parts = [int(p) for p in str(text).lower().split('x')]
    except ValueError:
        parts = []
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2 or min(parts) < 1:
        raise ValueError(f'size {text!r} is not allowed: give S or HxW with '
                         f'positive integers, e.g. 224 or 800x1333')
    return parts[0], parts[1]


def size_str(hw: Tuple[int, int]) -> str:
    return f'{hw[0]}x{hw[1]}'


def load_config(path: str, cfg_options: Optional[dict] = None):
    """The config with ``cfg_options`` merged; ``mmltm`` is imported."""
    import mmltm  # noqa: F401  (registers the LTM models everywhere)
    from mmengine.config import Config
    cfg = Config.fromfile(path)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    return cfg


def fix_detector_workload(cfg) -> bool:
    """Make a two-stage detector's head work independent of the weights.

    With random (or merely different) weights two detectors keep different
    numbers of proposals and detections, and their NMS costs depend on the
    boxes, so their heads would do different work. Here the RPN and the
    R-CNN skip NMS (mmcv's ``batched_nms`` with ``nms_cfg=None`` only sorts
    by score) and the R-CNN's score threshold is 0: the RoI heads always run
    on ``rpn.max_per_img`` proposals and the mask head on ``rcnn.max_per_img``
    detections, and the two detectors differ in their backbones only.
    Returns whether anything was changed.
    """
    test_cfg = cfg.model.get('test_cfg') or {}
    changed = False
    for stage in ('rpn', 'rcnn'):
        stage_cfg = test_cfg.get(stage)
        if stage_cfg is not None and 'nms' in stage_cfg:
            stage_cfg['nms'] = None
            changed = True
    rcnn = test_cfg.get('rcnn')
    if rcnn is not None and 'score_thr' in rcnn:
        rcnn['score_thr'] = 0.0
        changed = True
    return changed


def config_scope(cfg) -> str:
    scope = cfg.get('default_scope', None)
    if scope is None:
        scope = 'mmdet'
    if scope not in SCOPES:
        raise ValueError(f'default_scope={scope!r} is not supported; allowed: {list(SCOPES)}')
    return scope


def build_model(cfg, device: str = 'cpu') -> nn.Module:
    """Build ``cfg.model`` in its library (from ``default_scope``), in eval
    mode with random weights (``init_weights`` is not called, so nothing is
    downloaded)."""
    scope = config_scope(cfg)
    model_cfg = cfg.model.copy()
    if cfg.get('data_preprocessor') is not None:  # mmpretrain keeps it outside
        model_cfg.setdefault('data_preprocessor', cfg.get('data_preprocessor'))
    if scope == 'mmdet':
        from mmdet.registry import MODELS
        from mmdet.utils import register_all_modules
    elif scope == 'mmseg':
        from mmseg.registry import MODELS
        from mmseg.utils import register_all_modules
    else:
        from mmpretrain.registry import MODELS
        from mmpretrain.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    model = MODELS.build(model_cfg)
    model.scope = scope
    return model.to(device).eval()


def make_batch(model: nn.Module, hw: Tuple[int, int], batch: int,
               seed: int = 0, images: Optional[List[torch.Tensor]] = None) -> Dict:
    """A pre-processed batch of ``batch`` random ``HxW`` uint8 images (or of
    ``images``, ``(3, H, W)`` uint8 BGR as ``LoadImageFromFile`` gives them)
    with the data samples the model's ``predict`` needs (as a test pipeline
    would make them)."""
    H, W = hw
    g = torch.Generator().manual_seed(seed)
    imgs = images if images is not None else [
        torch.randint(0, 256, (3, H, W), generator=g, dtype=torch.uint8)
        for _ in range(batch)]
    batch = len(imgs)
    meta = dict(img_shape=(H, W), ori_shape=(H, W))
    if model.scope == 'mmdet':
        from mmdet.structures import DetDataSample
        samples = [DetDataSample(metainfo=dict(meta, scale_factor=(1.0, 1.0)))
                   for _ in range(batch)]
    elif model.scope == 'mmseg':
        from mmseg.structures import SegDataSample
        samples = [SegDataSample(metainfo=meta) for _ in range(batch)]
    else:
        from mmpretrain.structures import DataSample
        samples = [DataSample(metainfo=meta) for _ in range(batch)]
    with torch.no_grad():
        return model.data_preprocessor(dict(inputs=imgs, data_samples=samples), False)


class _TensorMode(nn.Module):
    """``model(inputs, data_samples, mode='tensor')`` as a one-input module
    (what ``FlopAnalyzer`` traces)."""

    def __init__(self, model: nn.Module, data_samples) -> None:
        super().__init__()
        self.model = model
        self.data_samples = data_samples

    def forward(self, inputs: torch.Tensor):
        return self.model(inputs, self.data_samples, mode='tensor')


def count_flops(module: nn.Module, inputs: torch.Tensor) -> int:
    """FLOPs of ``module(inputs)`` with mmengine's ``FlopAnalyzer``
    (default op handles; see the module docstring)."""
    from mmengine.analysis import FlopAnalyzer
    with torch.no_grad():
        fa = FlopAnalyzer(module, (inputs, ))
        fa.unsupported_ops_warnings(False)
        fa.uncalled_modules_warnings(False)
        return int(fa.total())


def count_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def part_runner(model: nn.Module, part: str, data: Dict) -> Callable[[], object]:
    """A no-argument callable running ``part`` once on ``data``."""
    if part == 'backbone':
        x = data['inputs']
        return lambda: model.backbone(x)
    if part == 'model':
        x, samples = data['inputs'], data['data_samples']
        return lambda: model(x, samples, mode='predict')
    raise ValueError(f'part={part!r}; allowed: {list(PARTS)}')


def part_flops(model: nn.Module, part: str, data: Dict) -> int:
    """FLOPs of one image (the first of ``data``) through ``part``."""
    x = data['inputs'][:1]
    if part == 'backbone':
        return count_flops(model.backbone, x)
    return count_flops(_TensorMode(model, data['data_samples'][:1]), x)


def part_params(model: nn.Module, part: str) -> int:
    return count_params(model.backbone if part == 'backbone' else model)


def num_detections(result) -> Optional[int]:
    """Instances in a detector's predictions (None for other tasks)."""
    if isinstance(result, list) and result and hasattr(result[0], 'pred_instances'):
        return int(sum(len(r.pred_instances) for r in result))
    return None


# --------------------------------------------------------------------------
# timing
# --------------------------------------------------------------------------
def _sync(device: str) -> None:
    if device.startswith('cuda'):
        torch.cuda.synchronize()


TIMERS = {'wall': time.perf_counter, 'cpu': time.process_time}


def time_interleaved(fns: Sequence[Callable[[], object]], runs: int, warmup: int,
                     device: str = 'cpu', timer: str = 'wall') -> List[List[float]]:
    """Seconds of each of ``fns`` over ``runs`` rounds; each round runs all of
    them, in forward order in even rounds and backward in odd ones (A B, B A,
    ...), so that a slow spell costs every function alike. ``warmup``
    untimed rounds come first. The garbage collector is off while timing.

    ``timer='wall'`` measures elapsed time; ``'cpu'`` the CPU time of this
    process (all its threads, user + system): time spent waiting for a core
    that other jobs hold does not count, so on a shared machine it is the
    steadier measure of the work done (use it with one thread: with more,
    threads spinning at barriers count too)."""
    clock = TIMERS[timer]
    if runs < 1 or warmup < 0:
        raise ValueError(f'runs={runs} must be >= 1 and warmup={warmup} >= 0')
    times: List[List[float]] = [[] for _ in fns]
    with torch.inference_mode():
        for _ in range(warmup):
            for fn in fns:
                fn()
        _sync(device)
        gc.collect()
        gc.disable()
        try:
            for i in range(runs):
                order = range(len(fns)) if i % 2 == 0 else reversed(range(len(fns)))
                for j in order:
                    t0 = clock()
                    fns[j]()
                    _sync(device)
                    times[j].append(clock() - t0)
        finally:
            gc.enable()
    return times


def summarize(seconds: Sequence[float]) -> Dict[str, float]:
    """Median and quartiles, in milliseconds."""
    ms = np.asarray(seconds) * 1e3
    q1, med, q3 = np.percentile(ms, [25, 50, 75])
    return dict(median_ms=float(med), q1_ms=float(q1), q3_ms=float(q3),
                iqr_ms=float(q3 - q1), runs=len(ms))


def paired_ratio(a: Sequence[float], b: Sequence[float]) -> Dict[str, float]:
    """Median and IQR of the per-round ratios a_i / b_i."""
    r = np.asarray(a) / np.asarray(b)
    q1, med, q3 = np.percentile(r, [25, 50, 75])
    return dict(median=float(med), q1=float(q1), q3=float(q3))


# --------------------------------------------------------------------------
# memory
# --------------------------------------------------------------------------
def _rss_bytes() -> int:
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')


def _reset_rss_high_water_mark() -> bool:
    """Reset this process's VmHWM (Linux >= 4.0: ``5`` to ``clear_refs``).
    False where the kernel or the sandbox does not allow it."""
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
        return True
    except OSError:
        return False


def _rss_high_water_mark() -> int:
    with open('/proc/self/status') as f:
        return int(re.search(r'VmHWM:\s+(\d+) kB', f.read()).group(1)) * 1024


def measure_peak_memory_here(fn: Callable[[], object], device: str) -> int:
    """Peak extra bytes of one call of ``fn`` in this process (see the module
    docstring: CUDA allocator peak, or RSS on CPU)."""
    gc.collect()
    if device.startswith('cuda'):
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        with torch.inference_mode():
            fn()
        torch.cuda.synchronize()
        return int(torch.cuda.max_memory_allocated() - base)
    base = _rss_bytes()
    if _reset_rss_high_water_mark():
        # the kernel's own high-water mark, reset to the current RSS: exact,
        # and blind to nothing (a sampler thread can starve while the
        # forward's worker threads hold both cores)
        with torch.inference_mode():
            fn()
        return int(max(0, _rss_high_water_mark() - base))
    # fallback: sample RSS every millisecond and take ru_maxrss if it grew
    maxrss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    peak = [base]
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], _rss_bytes())
            time.sleep(0.001)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        with torch.inference_mode():
            fn()
    finally:
        stop.set()
        sampler.join()
    maxrss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    top = max(peak[0], maxrss_after if maxrss_after > maxrss_before else 0)
    return int(max(0, top - base))


def memory_probe_env(threads: int) -> Dict[str, str]:
    """The environment of a CPU memory probe: a fresh process whose large
    allocations are fresh ``mmap`` s and are returned to the OS when freed,
    so that its RSS follows its live tensors. (In a long-lived process, such
    as a test run, freed memory can stay resident and be reused unseen.)"""
    return dict(os.environ, MALLOC_MMAP_THRESHOLD_='65536', MALLOC_TRIM_THRESHOLD_='65536',
                OMP_NUM_THREADS=str(threads))


def measure_peak_memory(config: str, cfg_options: Optional[dict], part: str,
                        hw: Tuple[int, int], batch: int, threads: int,
                        device: str, fix_proposals: bool = False) -> Optional[int]:
    """Peak extra bytes of one forward of ``part``: in this process on CUDA,
    in a fresh sub-process on CPU (RSS high-water marks cannot be reset)."""
    job = dict(config=config, cfg_options=cfg_options, part=part, size=list(hw),
               batch=batch, threads=threads, device=device, fix_proposals=fix_proposals)
    if device.startswith('cuda'):
        return _probe(job)
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), '--probe-memory',
                           json.dumps(job)], capture_output=True, text=True,
                          env=memory_probe_env(threads))
    for line in proc.stdout.splitlines()[::-1]:
        if line.startswith('PEAK_BYTES '):
            return int(line.split()[1])
    print(f'memory probe failed ({config}, {part}, {size_str(hw)}, b{batch}):\n'
          f'{proc.stderr[-2000:]}', file=sys.stderr)
    return None


def _probe(job: Dict) -> int:
    torch.set_num_threads(job['threads'])
    cfg = load_config(job['config'], job['cfg_options'])
    if job.get('fix_proposals'):
        fix_detector_workload(cfg)
    model = build_model(cfg, job['device'])
    data = make_batch(model, tuple(job['size']), job['batch'])
    return measure_peak_memory_here(part_runner(model, job['part'], data), job['device'])


# --------------------------------------------------------------------------
# per-block overhead of the mask module (LTM backbones with mmcv FFNs)
# --------------------------------------------------------------------------
def merging_blocks(backbone: nn.Module) -> List[Tuple[str, nn.Module]]:
    """Blocks with a ``token_merger`` and an mmcv ``ffn``/``norm2`` (LTM-Swin)."""
    return [(name, m) for name, m in backbone.named_modules()
            if hasattr(m, 'token_merger') and hasattr(m, 'ffn') and hasattr(m, 'norm2')
            and hasattr(m, 'attn')]


def block_inputs(backbone: nn.Module, blocks: List[Tuple[str, nn.Module]],
                 x: torch.Tensor) -> Dict[str, Tuple[torch.Tensor, Tuple[int, int]]]:
    """``{name: (tokens, grid)}``: what each of ``blocks`` receives in one
    forward of ``backbone`` on ``x`` (captured with forward pre-hooks)."""
    captured: Dict[str, Tuple[torch.Tensor, Tuple[int, int]]] = {}

    def record(mod, args, name):  # a pre-hook must return None (or new args)
        captured.setdefault(name, (args[0].detach(), tuple(args[1])))

    hooks = [blk.register_forward_pre_hook(partial(record, name=name)) for name, blk in blocks]
    try:
        with torch.inference_mode():
            backbone(x)
    finally:
        for h in hooks:
            h.remove()
    return captured


def block_overhead(model: nn.Module, hw: Tuple[int, int], batch: int, runs: int,
                   warmup: int, device: str = 'cpu', timer: str = 'wall') -> List[Dict]:
    """For the first merging block of every grid: time of the mask module
    with the merge (``token_merger.merge``: one kernel when the compiled
    kernels are in use), the unmerge with the residual add (``unmerge_add``),
    the FFN on N' and on N tokens, and attention, measured interleaved on the
    block's real input at this size."""
    from mmltm.ops import unmerge_add
    blocks = merging_blocks(model.backbone)
    captured = block_inputs(model.backbone, blocks, torch.randn(batch, 3, *hw, device=device))
    rows, seen = [], set()
    for name, blk in blocks:
        if name not in captured:
            continue
        x_in, grid = captured[name]
        if grid in seen or blk.token_merger.is_identity(grid):
            continue
        seen.add(grid)
        with torch.inference_mode():
            z = x_in + blk.attn(blk.norm1(x_in), grid)
            mask, zm = blk.token_merger.merge(z, grid, None)
            delta = blk.ffn.layers(blk.norm2(zm))
        fns = dict(
            mask_merge=lambda: blk.token_merger.merge(z, grid, None),
            unmerge_add=lambda: unmerge_add(z, delta, mask),
            ffn_merged=lambda: blk.ffn.layers(blk.norm2(zm)),
            ffn_full=lambda: blk.ffn.layers(blk.norm2(z)),
            attn=lambda: blk.attn(blk.norm1(x_in), grid))
        t = time_interleaved(list(fns.values()), runs, warmup, device, timer)
        med = {k: summarize(v)['median_ms'] for k, v in zip(fns, t)}
        # the base block's residual add is not timed: the overhead is an
        # upper bound by that add
        overhead = med['mask_merge'] + med['unmerge_add']
        saving = med['ffn_full'] - med['ffn_merged']
        rows.append(dict(block=name, grid=size_str(grid), N=grid[0] * grid[1],
                         N_merged=mask.num_merged, C=z.shape[-1], batch=batch,
                         **{f'{k}_ms': v for k, v in med.items()},
                         overhead_ms=overhead, ffn_saving_ms=saving,
                         overhead_over_saving=overhead / saving if saving > 0 else float('inf'),
                         block_base_ms=med['attn'] + med['ffn_full'],
                         block_ltm_ms=med['attn'] + med['ffn_merged'] + overhead,
                         block_free_merge=(med['attn'] + med['ffn_merged']) /
                         (med['attn'] + med['ffn_full'])))
    return rows


def _has_ffn_blocks(base: nn.Module, ltm: nn.Module) -> bool:
    """Whether every merging block of ``ltm`` has a baseline twin of the same
    name with ``norm2`` and ``ffn`` (e.g. Swin vs LTM-Swin)."""
    names = [name for name, _ in merging_blocks(ltm)]
    mods = dict(base.named_modules())
    return bool(names) and all(
        name in mods and hasattr(mods[name], 'norm2') and hasattr(mods[name], 'ffn')
        for name in names)


def merging_bound(ltm: nn.Module, base: nn.Module, hw: Tuple[int, int], batch: int,
                  runs: int, warmup: int, device: str = 'cpu', timer: str = 'wall') -> Dict:
    """What merging can buy at best, estimated inside whole forwards.

    Times ``norm2`` + ``ffn`` (the part an LTM block runs on N' tokens) of
    every baseline block whose LTM counterpart merges, with forward hooks,
    while the baseline backbone runs whole forwards. If that part shrank
    exactly with the token count N'/N and the mask module, merge and unmerge
    cost nothing, the LTM backbone would take

        bound = 1 - sum_b t_b (1 - N'_b / N_b) / T

    of the baseline's time T: about the latency ratio merging can reach on
    this machine (the un-merged attention, stem and patch merging stay as
    they are). An estimate, not a hard bound: a smaller FFN also leaves the
    caches warmer for the rest, and single runs are noisy. Isolated timings
    of the parts (:func:`block_overhead`) run with hot caches and understate
    the attention's share; this measures it inside real forwards.
    """
    clock = TIMERS[timer]
    blocks = merging_blocks(ltm.backbone)
    x = torch.randn(batch, 3, *hw, device=device)
    captured = block_inputs(ltm.backbone, blocks, x)
    kept = {}
    for name, blk in blocks:
        grid = captured[name][1] if name in captured else None
        if grid is None or blk.token_merger.is_identity(grid):
            continue
        merger = blk.token_merger
        n_kept = (math.prod(merger.merged_grid(grid)) if hasattr(merger, 'merged_grid')
                  else merger.num_keep(grid))
        kept[name] = n_kept / (grid[0] * grid[1])
    run_base = lambda: base.backbone(x)  # noqa: E731
    time_interleaved([run_base], 1, warmup, device, timer)  # warm-up, no hooks yet
    spent = {name: 0.0 for name in kept}
    started: Dict[str, float] = {}

    def start(mod, args, name):
        started[name] = clock()

    def stop(mod, args, out, name):
        spent[name] += clock() - started[name]

    hooks = []
    for name in kept:
        blk = base.backbone.get_submodule(name)
        hooks.append(blk.norm2.register_forward_pre_hook(partial(start, name=name)))
        hooks.append(blk.ffn.register_forward_hook(partial(stop, name=name)))
    try:
        total = sum(time_interleaved([run_base], runs, 0, device, timer)[0])
    finally:
        for h in hooks:
            h.remove()
    shrinking = sum(spent.values())
    saving = sum(spent[name] * (1 - kept[name]) for name in kept)
    return dict(size=size_str(hw), batch=batch, blocks=len(kept),
                shrinking_share=shrinking / total, bound=1 - saving / total)


# --------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------
def machine_info(threads: int) -> Dict:
    model_name = platform.processor() or platform.machine()
    try:
        out = subprocess.run(['lscpu'], capture_output=True, text=True).stdout
        for line in out.splitlines():
            if line.startswith('Model name:'):
                model_name = line.split(':', 1)[1].strip()
    except OSError:
        pass
    env = {k: os.environ[k] for k in ('OMP_NUM_THREADS', 'OMP_WAIT_POLICY', 'GOMP_SPINCOUNT',
                                      'MALLOC_MMAP_THRESHOLD_', 'LD_PRELOAD') if k in os.environ}
    return dict(cpu=model_name, machine=platform.machine(), logical_cpus=os.cpu_count(),
                torch_threads=torch.get_num_threads(), requested_threads=threads,
                torch=torch.__version__, env=env, loadavg_start=os.getloadavg())


def _fmt_ms(s: Dict) -> str:
    return f"{s['median_ms']:.1f} [{s['q1_ms']:.1f}-{s['q3_ms']:.1f}]"


def _mb(b: Optional[int]) -> str:
    return '-' if b is None else f'{b / 2**20:.0f}'


def markdown_tables(records: List[Dict], ratios: List[Dict]) -> str:
    lines = ['| part | size | batch | model | params (M) | GFLOPs/img | latency ms, median [IQR] '
             '| ms/img | peak mem (MB) | dets |',
             '|---|---|---|---|---|---|---|---|---|---|']
    for r in records:
        lines.append(
            f"| {r['part']} | {r['size']} | {r['batch']} | {r['name']} | "
            f"{r['params'] / 1e6:.2f} | {r['flops'] / 1e9:.3f} | {_fmt_ms(r['latency'])} | "
            f"{r['latency']['median_ms'] / r['batch']:.1f} | {_mb(r['peak_mem_bytes'])} | "
            f"{'-' if r.get('detections') is None else r['detections']} |")
    if ratios:
        lines += ['', '| part | size | batch | FLOPs ratio | latency ratio (medians) '
                  '| paired latency ratio, median [IQR] | latency ratio / FLOPs ratio '
                  '| memory ratio |', '|---|---|---|---|---|---|---|---|']
        for r in ratios:
            p = r['paired_latency_ratio']
            mem = '-' if r['memory_ratio'] is None else f"{r['memory_ratio']:.3f}"
            lines.append(
                f"| {r['part']} | {r['size']} | {r['batch']} | {r['flops_ratio']:.3f} | "
                f"{r['latency_ratio']:.3f} | {p['median']:.3f} [{p['q1']:.3f}-{p['q3']:.3f}] | "
                f"{r['latency_over_flops']:.3f} | {mem} |")
    return '\n'.join(lines)


def _md_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A markdown table; floats as given by the caller (pre-formatted strings)."""
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    lines += ['| ' + ' | '.join(str(c) for c in row) + ' |' for row in rows]
    return '\n'.join(lines)


def overhead_table(rows: List[Dict]) -> str:
    header = ['block', 'grid', "N -> N'", 'C', 'batch', 'mask + merge ms', 'unmerge + add ms',
              "FFN(N') ms", 'FFN(N) ms', 'attn ms', 'overhead / FFN saving',
              'block LTM / base', 'same, merging free']
    return _md_table(header, [
        [r['block'], r['grid'], f"{r['N']} -> {r['N_merged']}", r['C'], r['batch'],
         f"{r['mask_merge_ms']:.3f}", f"{r['unmerge_add_ms']:.3f}", f"{r['ffn_merged_ms']:.3f}",
         f"{r['ffn_full_ms']:.3f}", f"{r['attn_ms']:.3f}", f"{r['overhead_over_saving']:.2f}",
         f"{r['block_ltm_ms'] / r['block_base_ms']:.3f}", f"{r['block_free_merge']:.3f}"]
        for r in rows])


def bounds_table(rows: List[Dict]) -> str:
    def fmt(v: Optional[float]) -> str:
        return '-' if v is None else f'{v:.3f}'

    header = ['size', 'batch', 'blocks', 'norm2 + FFN share of the baseline',
              'latency ratio with free merging (estimate)', 'FLOPs ratio',
              'estimate / FLOPs ratio', 'measured latency ratio']
    return _md_table(header, [
        [r['size'], r['batch'], r['blocks'], fmt(r['shrinking_share']), fmt(r['bound']),
         fmt(r.get('flops_ratio')),
         fmt(r['bound'] / r['flops_ratio'] if r.get('flops_ratio') else None),
         fmt(r.get('latency_ratio'))]
        for r in rows])


def default_sizes(scope: str) -> List[str]:
    return {'mmdet': ['224', '800x1333'], 'mmseg': ['224', '512']}.get(scope, ['224'])


def kernels_state(setting: str = 'auto') -> str:
    """Apply ``--kernels`` (here and, through the environment, in the memory
    probes) and describe which code runs the LTM mask module."""
    from mmltm.ops import fused
    if setting == 'off':
        os.environ['MMLTM_FUSED_OPS'] = '0'
        fused.set_fused_ops(False)
        return 'off (PyTorch reference code, --kernels off)'
    if not fused.fused_ops_available():
        return 'NOT built (PyTorch reference code)'
    if not fused.fused_ops_enabled():
        return 'off (PyTorch reference code, MMLTM_FUSED_OPS=0)'
    return 'compiled CPU kernels (float32 CPU inference; reference code elsewhere)'


def run_benchmark(args) -> Dict:
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = args.device
    info = machine_info(args.threads)
    kernels = kernels_state(getattr(args, 'kernels', 'auto'))
    configs = [('ltm', args.config)] + ([('baseline', args.baseline)] if args.baseline else [])
    names = {}
    models = {}
    fixed = False
    for role, path in configs:
        cfg = load_config(path, args.cfg_options)
        if args.fix_proposals:
            fixed = fix_detector_workload(cfg) or fixed
        models[role] = build_model(cfg, device)
        names[role] = os.path.splitext(os.path.basename(path))[0]
    scope = models['ltm'].scope
    sizes = [parse_size(s) for s in (args.sizes or default_sizes(scope))]
    parts = list(PARTS) if args.part == 'both' else [args.part]
    records, ratios = [], []
    for part in parts:
        for hw in sizes:
            for batch in args.batch:
                data = {role: make_batch(m, hw, batch) for role, m in models.items()}
                fns = [part_runner(models[role], part, data[role]) for role in models]
                with torch.inference_mode():
                    outs = [fn() for fn in fns]
                times = time_interleaved(fns, args.runs, args.warmup, device, args.timer)
                cell = {}
                for (role, model), t, out in zip(models.items(), times, outs):
                    rec = dict(part=part, size=size_str(hw), batch=batch, role=role,
                               name=names[role], params=part_params(model, part),
                               flops=part_flops(model, part, data[role]),
                               latency=summarize(t), times_s=t,
                               detections=num_detections(out) if part == 'model' else None,
                               peak_mem_bytes=None)
                    if args.memory != 'none':
                        path = args.config if role == 'ltm' else args.baseline
                        rec['peak_mem_bytes'] = measure_peak_memory(
                            path, args.cfg_options, part, hw, batch, args.threads, device,
                            args.fix_proposals)
                    records.append(rec)
                    cell[role] = rec
                    print(f"[{part} {size_str(hw)} b{batch}] {names[role]}: "
                          f"{rec['flops'] / 1e9:.3f} GFLOPs/img, {_fmt_ms(rec['latency'])} ms",
                          flush=True)
                if 'baseline' in cell:
                    a, b = cell['ltm'], cell['baseline']
                    fr = a['flops'] / b['flops']
                    lr = a['latency']['median_ms'] / b['latency']['median_ms']
                    mem = (a['peak_mem_bytes'] / b['peak_mem_bytes']
                           if a['peak_mem_bytes'] and b['peak_mem_bytes'] else None)
                    ratios.append(dict(part=part, size=size_str(hw), batch=batch, flops_ratio=fr,
                                       latency_ratio=lr,
                                       paired_latency_ratio=paired_ratio(a['times_s'],
                                                                         b['times_s']),
                                       latency_over_flops=lr / fr, memory_ratio=mem))
    overhead, bounds = [], []
    if args.overhead:
        for hw in sizes:
            for batch in args.batch:
                overhead += block_overhead(models['ltm'], hw, batch, args.runs, args.warmup,
                                           device, args.timer)
                if 'baseline' in models and \
                        _has_ffn_blocks(models['baseline'].backbone, models['ltm'].backbone):
                    bound = merging_bound(models['ltm'], models['baseline'], hw, batch,
                                          args.runs, args.warmup, device, args.timer)
                    cell = [r for r in ratios if r['part'] == 'backbone'
                            and r['size'] == bound['size'] and r['batch'] == batch]
                    if cell:
                        bound['flops_ratio'] = cell[0]['flops_ratio']
                        bound['latency_ratio'] = cell[0]['latency_ratio']
                    bounds.append(bound)
    info['loadavg_end'] = os.getloadavg()
    return dict(machine=info, device=device, runs=args.runs, warmup=args.warmup, timer=args.timer,
                fixed_proposals=fixed, kernels=kernels,
                configs={r: p for r, p in configs}, records=records, ratios=ratios,
                overhead=overhead, bounds=bounds)


def report(result: Dict) -> str:
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
               if result.get('fixed_proposals') else ''))
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


def parse_args(argv=None):
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(
        description='Params, FLOPs, latency and memory of a model vs a baseline')
    parser.add_argument('config', nargs='?', help='config of the model to measure (e.g. LTM)')
    parser.add_argument('--baseline', help='config of the baseline model')
    parser.add_argument('--sizes', nargs='+', help='input sizes, S or HxW (default: 224 for '
                        'classification, 224 800x1333 for detection, 224 512 for segmentation)')
    parser.add_argument('--batch', type=int, nargs='+', default=[1], help='batch sizes')
    parser.add_argument('--runs', type=int, default=20, help='timed runs per model')
    parser.add_argument('--warmup', type=int, default=3, help='untimed runs per model')
    parser.add_argument('--threads', type=int, default=2, help='torch.set_num_threads')
    parser.add_argument('--part', choices=['backbone', 'model', 'both'], default='both')
    parser.add_argument('--device', default='cpu', help='cpu or cuda[:i]')
    parser.add_argument('--timer', choices=sorted(TIMERS), default='wall',
                        help='wall: elapsed time; cpu: process CPU time (steadier on a '
                        'shared machine, use with --threads 1)')
    parser.add_argument('--memory', choices=['auto', 'none'], default='auto',
                        help='measure peak memory (auto) or skip it (none)')
    parser.add_argument('--fix-proposals', action='store_true',
                        help='detectors: no NMS (sort only) and R-CNN score_thr 0, so that '
                        'both models run their heads on the same number of boxes')
    parser.add_argument('--overhead', action='store_true',
                        help='also time mask module / merge / unmerge vs FFN per grid')
    parser.add_argument('--kernels', choices=['auto', 'off'], default='auto',
                        help="auto: mmltm's compiled CPU kernels where they apply; off: "
                        'the PyTorch reference code only (MMLTM_FUSED_OPS=0)')
    parser.add_argument('--out-json', help='write all measurements to this JSON file')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings of both configs, key=value')
    parser.add_argument('--probe-memory', help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.probe_memory is None and args.config is None:
        parser.error('the config argument is required')
    if any(b < 1 for b in args.batch):
        parser.error(f'--batch {args.batch}: batch sizes must be >= 1')
    if args.threads < 1:
        parser.error(f'--threads {args.threads} must be >= 1')
    return args


def main(argv=None) -> Optional[Dict]:
    args = parse_args(argv)
    if args.probe_memory is not None:
        print(f'PEAK_BYTES {_probe(json.loads(args.probe_memory))}', flush=True)
        return None
    if args.sizes:
        for s in args.sizes:
            parse_size(s)
    result = run_benchmark(args)
    print()
    print(report(result))
    if args.out_json:
        with open(args.out_json, 'w') as f:
            json.dump(result, f, indent=1)
        print(f'\nwrote {args.out_json}')
    return result


if __name__ == '__main__':
    main()
