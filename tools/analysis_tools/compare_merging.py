#!/usr/bin/env python
"""Compare merging variants on the toy tasks, with seeds: mean ± std.

Every (task, variant, seed) is one ``tools/train.py`` run in its own
process (same config, same schedule, only the backbone's merging and
``randomness.seed`` change), so the variants differ in nothing else. The
final validation metric of each run is read from mmengine's
``vis_data/scalars.json``; results are kept per run in
``WORK_DIR/<task>/<variant>/seed<S>/result.json``, so an interrupted
comparison continues where it stopped (``--rerun`` trains again).

Variants (all at the LTM config's ``compression_ratio`` unless named):

* ``baseline``: the non-LTM config (plain Swin-T);
* ``ltm``: the learned per-image mask module (``merge_mode='ltm'``);
* ``grid``: the fixed grid with its learned step (``merge_mode='grid'``);
* ``pool``: the fixed grid with the step frozen near 0, i.e. uniform
  pooling of every cell;
* ``tome``: ToMe's training-free bipartite matching;
* ``pool25``: uniform pooling at ``compression_ratio=0.25``: a known-worse
  model; a task *discriminates* only if it scores below the baseline by
  more than 2 std of the seed spread (the larger std of the two);
* ``ltm_stage``: ``ltm`` with ``merge_scope='stage'`` (the blocks after a
  stage's merging block run attention on the merged grid), at the ratio
  whose FLOPs equal ``ltm``'s within 0.01 on the task's input size
  (``stage_ratio`` of the task, measured with mmengine's counter: 64 x 64
  shapes: 0.7 gives 0.947x in both scopes; 256 x 256 COCO / ADE: 'ffn' 0.7
  gives 0.878x, 'stage' 0.76 gives 0.869x; ``--flops`` prints these
  backbone ratios for every variant of the chosen tasks);
* ``pool25_stage``: ``pool25`` with ``merge_scope='stage'``: the known-worse
  model in the scope where merging reaches attention.

Tasks: ``cls`` (toy shapes classification), ``det`` / ``seg`` (toy
Mask R-CNN / UperNet on the toy COCO / ADE20K sets, which cannot see
``pool25``), and ``det_shapes`` / ``seg_shapes``: the same models on the
shapes images densely labelled (``coco_shapes`` / ``ade_shapes``), as
probes of a pretrained backbone: each run loads the ``cls`` checkpoint of
its variant and seed (``pretrain``; that run is trained first when it is
missing) and keeps the backbone frozen, so the heads cannot make up for
what a merge lost.

Examples::

    python tools/analysis_tools/compare_merging.py                  # cls det seg, 3 seeds
    python tools/analysis_tools/compare_merging.py --tasks det --seeds 0 1 2 3 4
    python tools/analysis_tools/compare_merging.py --variants baseline ltm --max-iters 20
    python tools/analysis_tools/compare_merging.py --jobs 2 --threads 1   # 2 runs at a time
    python tools/analysis_tools/compare_merging.py --tasks seg_shapes --flops  # FLOPs, no training
"""
import argparse
import concurrent.futures
import glob
import json
import os
import os.path as osp
import statistics
import subprocess
import sys
import time
import warnings
from typing import Dict, List, Optional

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

#: the toy tasks: LTM config, its baseline, the metric compared, the
#: 'stage' ratio of ``ltm_stage``, the input size (square side) its FLOPs
#: are matched at (``--flops``: the test pipeline's input) and, for a
#: fine-tuned task, the task whose checkpoint of the same variant and seed
#: its backbone starts from (``pretrain``)
TASKS: Dict[str, Dict[str, str]] = {
    'cls': dict(ltm='configs/toy/ltm_swin_t_shapes_toy.py',
                baseline='configs/toy/swin_t_shapes_toy.py', metric='accuracy/top1',
                stage_ratio='0.7', size='56'),
    'det': dict(ltm='configs/toy/mask_rcnn_ltm_swin_t_toy.py',
                baseline='configs/toy/mask_rcnn_swin_t_toy.py', metric='coco/bbox_mAP',
                stage_ratio='0.76', size='256'),
    'seg': dict(ltm='configs/toy/upernet_ltm_swin_t_toy.py',
                baseline='configs/toy/upernet_swin_t_toy.py', metric='mIoU',
                stage_ratio='0.76', size='256'),
    'det_shapes': dict(ltm='configs/toy/mask_rcnn_ltm_swin_t_coco_shapes_toy.py',
                       baseline='configs/toy/mask_rcnn_swin_t_coco_shapes_toy.py',
                       metric='coco/bbox_mAP', stage_ratio='0.7', size='64',
                       pretrain='cls'),
    'seg_shapes': dict(ltm='configs/toy/upernet_ltm_swin_t_ade_shapes_toy.py',
                       baseline='configs/toy/upernet_swin_t_ade_shapes_toy.py',
                       metric='mIoU', stage_ratio='0.7', size='64', pretrain='cls'),
}

#: the tasks of the README's seeds table (the default of ``--tasks``); the
#: dense shapes probes are opt-in: they cannot see a known-worse model either
DEFAULT_TASKS = ('cls', 'det', 'seg')

_POOL = ['model.backbone.merge_mode=grid', 'model.backbone.init_step=0.001',
         'model.backbone.merger_cfg.learnable_step=False']
#: variant -> (config key in TASKS, --cfg-options)
VARIANTS: Dict[str, tuple] = {
    'baseline': ('baseline', []),
    'ltm': ('ltm', ['model.backbone.merge_mode=ltm']),
    'grid': ('ltm', ['model.backbone.merge_mode=grid']),
    'pool': ('ltm', _POOL),
    'tome': ('ltm', ['model.backbone.merge_mode=tome']),
    'pool25': ('ltm', _POOL + ['model.backbone.compression_ratio=0.25']),
    'ltm_stage': ('ltm', ['model.backbone.merge_mode=ltm', 'model.backbone.merge_scope=stage',
                          'model.backbone.compression_ratio={stage_ratio}']),
    'pool25_stage': ('ltm', _POOL + ['model.backbone.merge_scope=stage',
                                     'model.backbone.compression_ratio=0.25']),
}

#: the known-worse variants: each must score below the baseline by > 2 std
KNOWN_WORSE = ('pool25', 'pool25_stage')


def variant_options(task: str, variant: str) -> List[str]:
    """The ``--cfg-options`` of ``variant`` on ``task`` (task-specific
    values such as the 'stage' ratio filled in)."""
    return [o.format(**TASKS[task]) for o in VARIANTS[variant][1]]


def load_config(config: str, options: List[str]):
    """``config`` (relative to the repo) with ``key=value`` ``options``
    merged, parsed as ``tools/train.py`` / ``tools/test.py`` parse
    ``--cfg-options``."""
    from mmengine.config import Config, DictAction
    parser = argparse.ArgumentParser()
    parser.add_argument('--options', nargs='*', action=DictAction, default={})
    cfg = Config.fromfile(osp.join(REPO, config))
    cfg.merge_from_dict(parser.parse_args(['--options', *options]).options)
    return cfg


def variant_config(task: str, variant: str):
    """The loaded config of ``variant`` on ``task`` (its ``--cfg-options``
    merged, as ``tools/train.py`` merges them)."""
    return load_config(TASKS[task][VARIANTS[variant][0]], variant_options(task, variant))


def backbone_flops(task: str, variant: str) -> int:
    """Backbone FLOPs (mmengine's counter, multiply-adds) of ``variant`` on
    one ``size`` x ``size`` image of ``task``, random weights."""
    import torch
    from mmltm.analysis.flops import count_flops
    from mmltm.analysis.models import build_model
    size = int(TASKS[task]['size'])
    with warnings.catch_warnings():  # the libraries' deprecation notes, per model
        warnings.simplefilter('ignore')
        model = build_model(variant_config(task, variant), default_scope='mmpretrain')
        return count_flops(model.backbone, torch.randn(1, 3, size, size))


def flops_table(tasks: List[str], variants: List[str]) -> str:
    """Markdown table: each variant's backbone FLOPs relative to the
    baseline's, per task (what ``--flops`` prints)."""
    lines = ['| variant | ' + ' | '.join(f'{t} ({TASKS[t]["size"]}²)' for t in tasks) + ' |',
             '|---' * (len(tasks) + 1) + '|']
    base = {t: backbone_flops(t, 'baseline') for t in tasks}
    for v in variants:
        cells = [f'{backbone_flops(t, v) / base[t]:.3f}x' for t in tasks]
        lines.append(f'| {v} | ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def final_metric(work_dir: str, metric: str) -> float:
    """The last logged value of ``metric`` in the run's ``scalars.json``."""
    files = sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json')))
    value = None
    for path in files:
        with open(path) as f:
            for line in f:
                record = json.loads(line)
                if metric in record:
                    value = float(record[metric])
    if value is None:
        raise RuntimeError(f'no {metric!r} was logged under {work_dir} '
                           f'(looked in {files or "no scalars.json"})')
    return value


def run_one(task: str, variant: str, seed: int, args: argparse.Namespace) -> Dict:
    """Train one (task, variant, seed) in a subprocess, or reuse its result."""
    work_dir = osp.join(args.work_dir, task, variant, f'seed{seed}')
    result_file = osp.join(work_dir, 'result.json')
    if osp.exists(result_file) and not args.rerun:
        with open(result_file) as f:
            return json.load(f)
    config = TASKS[task][VARIANTS[variant][0]]
    options = [f'randomness.seed={seed}'] + variant_options(task, variant)
    if 'pretrain' in TASKS[task]:
        options += [f'load_from={pretrained_checkpoint(task, variant, seed, args)}',
                    'allow_partial_load=True']  # only the backbone's keys match
    if args.max_iters is not None:
        options += [f'train_cfg.max_iters={args.max_iters}',
                    f'train_cfg.val_interval={args.max_iters}']
    cmd = [sys.executable, osp.join(REPO, 'tools', 'train.py'), config,
           '--work-dir', work_dir, '--cfg-options', *options]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads),
               MKL_NUM_THREADS=str(args.threads))
    os.makedirs(work_dir, exist_ok=True)
    start = time.perf_counter()
    with open(osp.join(work_dir, 'train.log'), 'w') as log:
        proc = subprocess.run(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        raise RuntimeError(f'{task}/{variant}/seed{seed} failed (exit {proc.returncode}); '
                           f'see {osp.join(work_dir, "train.log")}')
    result = dict(task=task, variant=variant, seed=seed, config=config, options=options,
                  metric=TASKS[task]['metric'],
                  value=final_metric(work_dir, TASKS[task]['metric']),
                  seconds=round(time.perf_counter() - start, 1), threads=args.threads)
    with open(result_file, 'w') as f:
        json.dump(result, f, indent=1)
    return result


def pretrained_checkpoint(task: str, variant: str, seed: int,
                          args: argparse.Namespace) -> str:
    """The final checkpoint of ``variant`` / ``seed`` on the task ``task``
    is fine-tuned from (its ``pretrain``), trained first when missing."""
    source = TASKS[task]['pretrain']
    run_one(source, variant, seed, args)
    work_dir = osp.join(args.work_dir, source, variant, f'seed{seed}')
    pointer = osp.join(work_dir, 'last_checkpoint')
    if not osp.exists(pointer):
        raise RuntimeError(f'{task}/{variant}/seed{seed} starts from the {source} run in '
                           f'{work_dir}, which saved no checkpoint ({pointer} is missing)')
    with open(pointer) as f:
        return f.read().strip()


def mean_std(values: List[float]) -> tuple:
    """``(mean, sample std)`` of ``values`` (std NaN for a single value)."""
    std = statistics.stdev(values) if len(values) > 1 else float('nan')
    return statistics.fmean(values), std


def summarise(results: List[Dict], tasks: List[str], variants: List[str]) -> str:
    """The markdown table (mean ± std over seeds) and the discrimination check."""
    lines = ['| variant | ' + ' | '.join(f'{t}: {TASKS[t]["metric"]}' for t in tasks) + ' |',
             '|---' * (len(tasks) + 1) + '|']
    stats: Dict[tuple, tuple] = {}
    for v in variants:
        cells = []
        for t in tasks:
            vals = [r['value'] for r in results if r['task'] == t and r['variant'] == v]
            if not vals:
                cells.append('-')
                continue
            mean, std = mean_std(vals)
            stats[t, v] = (mean, std, len(vals))
            cells.append(f'{mean:.3f} ± {std:.3f} (n={len(vals)})')
        lines.append(f'| {v} | ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines + [''] + check_lines(stats, tasks, variants))


def check_lines(stats: Dict[tuple, tuple], tasks: List[str], variants: List[str],
                baseline: str = 'baseline') -> List[str]:
    """Per task: does each known-worse variant score below ``baseline`` by
    more than 2 std, and which variants ``ltm`` beats by more than one std.
    ``stats`` maps ``(task, variant)`` to ``(mean, std, n)``."""
    notes = []
    for t in tasks:
        for worse in KNOWN_WORSE:
            if (t, baseline) in stats and (t, worse) in stats:
                (bm, bs, _), (pm, ps, _) = stats[t, baseline], stats[t, worse]
                # the seed spread is the larger of the two: a baseline that
                # happens to repeat itself must not make a noisy worse model
                # look separated
                spread = max(bs, ps)
                ok = pm < bm - 2 * spread
                notes.append(f'{t}: {worse} {pm:.3f} vs {baseline} {bm:.3f} - 2 std '
                             f'({spread:.3f}) = {bm - 2 * spread:.3f}: '
                             f'{"discriminates" if ok else "does NOT discriminate"}')
        if (t, 'ltm') in stats:
            lm, ls, _ = stats[t, 'ltm']
            others = [v for v in variants if v not in ('ltm', baseline) + KNOWN_WORSE
                      and (t, v) in stats]
            beats = [v for v in others if lm > stats[t, v][0] + max(ls, stats[t, v][1])]
            notes.append(f'{t}: ltm beats by more than one std: {beats or "none"} '
                         f'(of {others})')
    return notes


def stored_result(task: str, variant: str, seed: int, work_dir: str) -> Optional[Dict]:
    """The stored result of one run, or None when it has not finished."""
    path = osp.join(work_dir, task, variant, f'seed{seed}', 'result.json')
    if not osp.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def summarise_stored(runs: List[tuple], args: argparse.Namespace) -> int:
    """Print the table of the stored results (``--summary-only``); exit 1
    when runs are missing, naming them."""
    results, missing = [], []
    for t, v, s in runs:
        res = stored_result(t, v, s, args.work_dir)
        (results.append(res) if res is not None else missing.append(f'{t}/{v}/seed{s}'))
    print(f'\n## Merging variants on the toy tasks (stored results under {args.work_dir})\n')
    print(summarise(results, args.tasks, args.variants))
    if missing:
        print(f'\n{len(missing)} of {len(runs)} runs have no stored result: {", ".join(missing)}')
    return 1 if missing else 0


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--tasks', nargs='+', choices=sorted(TASKS), default=list(DEFAULT_TASKS))
    parser.add_argument('--variants', nargs='+', choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument('--seeds', nargs='+', type=int, default=[0, 1, 2])
    parser.add_argument('--max-iters', type=int, default=None,
                        help='override the toy schedule (quick checks only)')
    parser.add_argument('--threads', type=int, default=2, help='torch threads per run')
    parser.add_argument('--jobs', type=int, default=1,
                        help='runs trained at the same time (each with --threads)')
    parser.add_argument('--work-dir', default='work_dirs/compare_merging')
    parser.add_argument('--out-json', default=None, help='write all results here')
    parser.add_argument('--rerun', action='store_true', help='ignore stored results')
    parser.add_argument('--summary-only', action='store_true',
                        help='train nothing: summarise the stored results, list the missing runs')
    parser.add_argument('--flops', action='store_true',
                        help="train nothing: print each variant's backbone FLOPs relative to "
                        "the baseline's on each task's input size (mmengine's counter)")
    args = parser.parse_args(argv)
    if args.summary_only and args.rerun:
        parser.error('--summary-only and --rerun contradict each other')
    if args.flops and (args.summary_only or args.rerun):
        parser.error('--flops trains nothing: it goes with neither --summary-only nor --rerun')
    if args.max_iters is not None and args.max_iters < 1:
        parser.error(f'--max-iters={args.max_iters} must be positive')
    if args.threads < 1:
        parser.error(f'--threads={args.threads} must be positive')
    if args.jobs < 1:
        parser.error(f'--jobs={args.jobs} must be positive')
    if len(set(args.seeds)) < len(args.seeds):
        parser.error(f'--seeds {args.seeds} repeats a seed')
    return args


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    # seed-major order: an interrupted comparison has every variant of the
    # first seeds rather than all seeds of the first variants
    runs = [(t, v, s) for t in args.tasks for s in args.seeds for v in args.variants]
    if args.summary_only:
        return summarise_stored(runs, args)
    if args.flops:
        print(flops_table(args.tasks, args.variants))
        print("\nbackbone FLOPs / the baseline's, mmengine FlopAnalyzer (MACs), batch 1, "
              'random weights')
        return 0
    # the runs that fine-tuned tasks start from come first (all of them, also
    # when their own task is not asked for), so that two parallel jobs never
    # train the same one
    asked = set(runs)
    sources = {(TASKS[t]['pretrain'], v, s) for t, v, s in runs if 'pretrain' in TASKS[t]}
    first = [r for r in runs if r in sources] + sorted(sources - asked)
    phases = [first, [r for r in runs if r not in sources]]
    total = len(phases[0]) + len(phases[1])
    results, failed, done = [], 0, 0
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        for phase in phases:
            futures = [pool.submit(run_one, t, v, s, args) for t, v, s in phase]
            for future in concurrent.futures.as_completed(futures):
                done += 1
                try:
                    res = future.result()
                except RuntimeError as err:  # one failed run does not stop the others
                    failed += 1
                    print(f'[{done}/{total}] FAILED: {err}', flush=True)
                    continue
                if (res['task'], res['variant'], res['seed']) in asked:
                    results.append(res)  # (not the pretraining-only runs)
                print(f'[{done}/{total}] {res["task"]} {res["variant"]} seed '
                      f'{res["seed"]}: {res["metric"]} = {res["value"]:.4f} '
                      f'({res["seconds"]:.0f} s)', flush=True)
    print(f'\n## Merging variants on the toy tasks ({len(args.seeds)} seeds, '
          f'{args.threads} thread(s) per run, {args.jobs} run(s) at a time)\n')
    print(summarise(results, args.tasks, args.variants))
    if args.out_json:
        with open(args.out_json, 'w') as f:
            json.dump(results, f, indent=1)
    if failed:
        print(f'\n{failed} of {total} runs failed (see their train.log)')
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
