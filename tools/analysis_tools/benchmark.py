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
measured inside whole forwards (``mmltm.analysis.overhead.merging_bound``). ``--compile`` times every
model under ``torch.compile`` (the first, untimed call compiles; its time
is printed as "first call"). ``--kernels off``
runs the LTM mask module in its PyTorch reference code instead of mmltm's
compiled CPU kernels.

The measuring code is the library :mod:`mmltm.analysis` (this file is its
command line). It prints a markdown table of the measurements and one of the ratios
CONFIG / baseline (FLOPs, median latency, the median of the per-pair latency
ratios with its IQR, and latency ratio / FLOPs ratio), and can write all of
it as JSON. ``--variants`` measures several variants of CONFIG in the same
interleaved run, each against the baseline: ``MODE[/SCOPE][@RATIO]``, e.g.
``ltm/ffn ltm/stage@default tome`` (merge mode, ``merge_scope`` and
``compression_ratio`` of the backbone; ``default`` is the backbone's own
default ratio). The ratio table gives, per variant, the FLOPs ratio, the
latency ratio of the medians, the median [IQR] of the per-round ratios,
each latency ratio over the FLOPs ratio (1 is the compute-bound limit;
issue 13's acceptance asks for <= 1.03) and the speed-up 1 / paired
median. Random weights are used (no checkpoint is loaded): cost does not
depend on the weights, except a detector's post-processing, which depends on
how many boxes survive (the table gives the number of detections).

Example::

    python tools/analysis_tools/benchmark.py configs/mask_rcnn_ltm_swin_t_coco.py \\
        --baseline configs/mask_rcnn_swin_t_coco.py --sizes 224 800x1333 \\
        --batch 1 --runs 20 --threads 2 --part both

    # both merge scopes and ToMe vs mmdet's Swin-T, whole Mask R-CNN
    python tools/analysis_tools/benchmark.py \\
        configs/ltm_swin/mask-rcnn_ltm-swin-t-p4-w7_fpn_1x_coco.py \\
        --baseline configs/ltm_swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py \\
        --variants ltm/ffn ltm/stage@default tome --sizes 800x1333 --part model \\
        --fix-proposals --memory none
"""
import argparse
import json
from typing import Dict, Optional

from mmltm.analysis.benchmark import run_benchmark
from mmltm.analysis.models import parse_size
from mmltm.analysis.tables import benchmark_report
from mmltm.analysis.timing import TIMERS


def parse_args(argv=None):
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(
        description='Params, FLOPs, latency and memory of a model vs a baseline')
    parser.add_argument('config', help='config of the model to measure (e.g. LTM)')
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
    parser.add_argument('--variants', nargs='+', metavar='MODE[/SCOPE][@RATIO]',
                        help='measure these variants of CONFIG, each against the baseline, '
                        'all interleaved: merge mode (ltm, grid, tome), merge scope (ffn, '
                        'stage) and compression ratio (a number or "default"), e.g. '
                        'ltm/ffn ltm/stage@default tome (default: CONFIG as it is)')
    parser.add_argument('--compile', action='store_true',
                        help='time every model under torch.compile (default inductor; the '
                        'first call compiles, its time is the "first call" column; FLOPs '
                        'and memory are of the eager models)')
    parser.add_argument('--compile-dynamic', choices=['auto', 'true', 'false'],
                        default='auto', help="torch.compile's dynamic= (auto: None, "
                        "torch's default)")
    parser.add_argument('--out-json', help='write all measurements to this JSON file')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings of both configs, key=value')
    args = parser.parse_args(argv)
    if any(b < 1 for b in args.batch):
        parser.error(f'--batch {args.batch}: batch sizes must be >= 1')
    if args.threads < 1:
        parser.error(f'--threads {args.threads} must be >= 1')
    if args.variants:
        from mmltm.analysis.variants import parse_variants
        try:
            parse_variants(args.variants)
        except ValueError as err:
            parser.error(f'--variants: {err}')
    return args


def compile_wrap(dynamic: str = 'auto'):
    """``torch.compile`` (with ``dynamic`` ``'auto'`` -> None, ``'true'``,
    ``'false'``) as the ``wrap`` of :func:`run_benchmark`."""
    import torch
    flag = {'auto': None, 'true': True, 'false': False}[dynamic]
    return lambda module: torch.compile(module, dynamic=flag)


def main(argv=None) -> Optional[Dict]:
    args = parse_args(argv)
    for s in args.sizes or ():
        parse_size(s)  # a bad size fails before any model is built
    result = run_benchmark(
        args.config, args.baseline, sizes=args.sizes, batches=args.batch, runs=args.runs,
        warmup=args.warmup, threads=args.threads, part=args.part, device=args.device,
        timer=args.timer, memory=args.memory, fix_proposals=args.fix_proposals,
        overhead=args.overhead, kernels=args.kernels, cfg_options=args.cfg_options,
        wrap=compile_wrap(args.compile_dynamic) if args.compile else None,
        variants=args.variants)
    print()
    print(benchmark_report(result))
    if args.out_json:
        with open(args.out_json, 'w') as f:
            json.dump(result, f, indent=1)
        print(f'\nwrote {args.out_json}')
    return result


if __name__ == '__main__':
    main()
