#!/usr/bin/env python
"""Merge tokens in a trained dense model without retraining: mean ± std.

The baseline checkpoints that ``compare_merging.py`` trained (one per
seed, ``WORK_DIR/<task>/baseline/seed<S>/``) are evaluated again with the
LTM backbone of the task swapped in, at the LTM config's ratio, once per
merging variant (``merge_mode`` / ``merge_scope`` / ``compression_ratio``
as in ``compare_merging.py``'s ``VARIANTS``). Nothing is trained: the
mask-module weights are the random initial ones of the variant (seeded
with the run's seed; a baseline built as an LTM backbone at ratio 1 holds
unused mask-module weights, which are dropped from its checkpoint first,
so that e.g. ``pool``'s frozen step is not replaced by a learned one), so
this measures what a merging variant costs when dropped into an
existing model, e.g. whether attention on merged tokens (``'stage'``)
hurts more than merging in the FFN only (``'ffn'``) at equal FLOPs.

The ``dense`` row evaluates the same checkpoints through the same path
with ``compression_ratio=1.0`` (no merging): it must equal the training
run's own final score, which is checked.

Examples::

    python tools/analysis_tools/training_free_merging.py --work-dir work_dirs/compare_merging
    python tools/analysis_tools/training_free_merging.py --tasks cls --variants ltm ltm_stage
"""
import argparse
import contextlib
import io
import json
import os
import os.path as osp
import sys
from typing import Dict, List, Optional, Sequence

HERE = osp.dirname(osp.abspath(__file__))
REPO = osp.dirname(osp.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, osp.join(REPO, 'tools'))
sys.path.insert(0, REPO)

from compare_merging import (DEFAULT_TASKS, TASKS, VARIANTS, check_lines, mean_std,  # noqa: E402
                             variant_options)

#: the variants that need no training of their own (the baseline row is
#: the checkpoint as trained, evaluated without merging)
MERGING_VARIANTS = [v for v in VARIANTS if v != 'baseline']
DENSE = 'dense'
#: a ``dense`` re-evaluation must match the training run's score this closely
DENSE_TOLERANCE = 1e-3


def checkpoint_of(run_dir: str) -> str:
    """The checkpoint named by mmengine's ``last_checkpoint`` file of a run."""
    marker = osp.join(run_dir, 'last_checkpoint')
    if not osp.isfile(marker):
        raise FileNotFoundError(
            f'{run_dir} has no last_checkpoint: train the baselines first '
            '(compare_merging.py --variants baseline)')
    with open(marker) as f:
        path = f.read().strip()
    if not osp.isfile(path):  # the run directory was moved: same file name
        path = osp.join(run_dir, osp.basename(path))
    if not osp.isfile(path):
        raise FileNotFoundError(f'checkpoint {path} of {run_dir} not found')
    return path


#: the attribute under which every LTM block keeps its mask module
MASK_MODULE_KEY = '.token_merger.'


def mask_free_checkpoint(src: str, dst: str) -> str:
    """Write ``src`` without its mask-module weights to ``dst`` (again only
    when ``src`` is newer, e.g. a retrained baseline)."""
    if osp.isfile(dst) and osp.getmtime(dst) >= osp.getmtime(src):
        return dst
    import torch
    from mmengine.runner.checkpoint import _load_checkpoint

    from mmltm.engine import install_checkpoint_fix
    install_checkpoint_fix()
    ckpt = _load_checkpoint(src, map_location='cpu')
    state = ckpt['state_dict'] if isinstance(ckpt.get('state_dict'), dict) else ckpt
    state = {k: v for k, v in state.items() if MASK_MODULE_KEY not in k}
    os.makedirs(osp.dirname(dst), exist_ok=True)
    torch.save(dict(state_dict=state, meta=dict(source=src)), dst + '.tmp')
    os.replace(dst + '.tmp', dst)
    return dst


def _flat(prefix: str, value) -> List[str]:
    """``key=value`` strings for ``--cfg-options`` (dicts as dotted keys)."""
    if isinstance(value, dict):
        return [o for k, v in value.items() for o in _flat(f'{prefix}.{k}', v)]
    if isinstance(value, (list, tuple)):
        inner = ','.join(_flat('', v)[0][1:] for v in value)
        return [f'{prefix}=' + (f'[{inner}]' if isinstance(value, list) else f'({inner},)')]
    return [f'{prefix}={value}']


def eval_options(task: str, variant: str, seed: int,
                 extra: Sequence[str] = ()) -> List[str]:
    """``--cfg-options`` for the task's baseline config: every key of the
    LTM config's backbone (the LTM backbones subclass the baselines' and
    take their arguments), then the variant's overrides (``dense``: ratio
    1.0), then ``extra`` (the user's ``--cfg-options``); later keys win."""
    from mmengine.config import Config
    backbone = Config.fromfile(osp.join(REPO, TASKS[task]['ltm'])).model.backbone.to_dict()
    options = [f'randomness.seed={seed}'] + _flat('model.backbone', backbone)
    if variant == DENSE:
        return options + ['model.backbone.compression_ratio=1.0'] + list(extra)
    return options + variant_options(task, variant) + list(extra)


def evaluate(task: str, variant: str, seed: int, args: argparse.Namespace) -> float:
    """The metric of the seed's baseline checkpoint with ``variant``'s merging."""
    import test as test_tool  # tools/test.py
    run_dir = osp.join(args.work_dir, task, 'baseline', f'seed{seed}')
    out_dir = osp.join(args.out_dir, task, variant, f'seed{seed}')
    result_file = osp.join(out_dir, 'result.json')
    if osp.isfile(result_file) and not args.rerun:
        with open(result_file) as f:
            return float(json.load(f)['value'])
    ckpt = mask_free_checkpoint(checkpoint_of(run_dir),
                                osp.join(args.out_dir, task, f'baseline_seed{seed}.pth'))
    log = io.StringIO()
    with contextlib.redirect_stdout(log):
        metrics = test_tool.main([osp.join(REPO, TASKS[task]['baseline']),
                                  ckpt, '--work-dir', out_dir, '--init-mask-modules',
                                  '--cfg-options',
                                  *eval_options(task, variant, seed, args.cfg_options)])
    metric = TASKS[task]['metric']
    if metric not in metrics:
        raise RuntimeError(f'{task}/{variant}/seed{seed}: no {metric!r} in {sorted(metrics)}')
    with open(result_file, 'w') as f:
        json.dump(dict(task=task, variant=variant, seed=seed, value=float(metrics[metric])), f)
    return float(metrics[metric])


def trained_score(task: str, seed: int, work_dir: str) -> float:
    """The final score the baseline training run itself logged."""
    path = osp.join(work_dir, task, 'baseline', f'seed{seed}', 'result.json')
    with open(path) as f:
        return float(json.load(f)['value'])


def summarise(results: Dict[tuple, float], tasks: List[str], variants: List[str]) -> str:
    """Markdown table: mean ± std over seeds and the mean paired change vs
    dense; then compare_merging's checks with ``dense`` as the baseline
    (does a known-worse variant score more than 2 std below it; which
    variants ``ltm`` beats by more than one std)."""
    stats: Dict[tuple, tuple] = {}
    head = ' | '.join(f'{t}: {TASKS[t]["metric"]} | change vs dense' for t in tasks)
    lines = [f'| variant | {head} |', '|---' * (2 * len(tasks) + 1) + '|']
    for v in [DENSE] + variants:
        cells = []
        for t in tasks:
            seeds = sorted(s for (tt, vv, s) in results if tt == t and vv == v)
            vals = [results[t, v, s] for s in seeds]
            diffs = [results[t, v, s] - results[t, DENSE, s] for s in seeds
                     if (t, DENSE, s) in results]
            if not vals:
                cells += ['-', '-']
                continue
            mean, std = mean_std(vals)
            stats[t, v] = (mean, std, len(vals))
            cells.append(f'{mean:.3f} ± {std:.3f} (n={len(vals)})')
            cells.append('{:+.3f} ± {:.3f}'.format(*mean_std(diffs)) if diffs else '-')
        lines.append(f'| {v} | ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines + [''] + check_lines(stats, tasks, variants, baseline=DENSE))


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--tasks', nargs='+', choices=sorted(TASKS), default=list(DEFAULT_TASKS))
    parser.add_argument('--variants', nargs='+', choices=MERGING_VARIANTS,
                        default=MERGING_VARIANTS)
    parser.add_argument('--seeds', nargs='+', type=int, default=[0, 1, 2])
    parser.add_argument('--work-dir', default='work_dirs/compare_merging',
                        help="compare_merging.py's work dir (the baseline checkpoints)")
    parser.add_argument('--out-dir', default=None,
                        help='where the evaluations write (default: WORK_DIR/training_free)')
    parser.add_argument('--threads', type=int, default=2, help='torch threads')
    parser.add_argument('--out-json', default=None, help='write all results here')
    parser.add_argument('--rerun', action='store_true',
                        help='evaluate again (default: reuse OUT_DIR/<task>/<variant>/seed<S>/result.json)')
    parser.add_argument('--cfg-options', nargs='+', default=[], metavar='KEY=VALUE',
                        help='more overrides of every evaluation, e.g. '
                        'test_dataloader.dataset.indices=48 (the first 48 images)')
    args = parser.parse_args(argv)
    bad = [o for o in args.cfg_options if '=' not in o]
    if bad:
        parser.error(f'--cfg-options {bad}: each must be KEY=VALUE')
    if args.threads < 1:
        parser.error(f'--threads={args.threads} must be positive')
    if len(set(args.seeds)) < len(args.seeds):
        parser.error(f'--seeds {args.seeds} repeats a seed')
    args.out_dir = args.out_dir or osp.join(args.work_dir, 'training_free')
    return args


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    import torch
    torch.set_num_threads(args.threads)
    results: Dict[tuple, float] = {}
    for t in args.tasks:
        for s in args.seeds:
            for v in [DENSE] + args.variants:
                results[t, v, s] = evaluate(t, v, s, args)
                print(f'{t} seed {s} {v}: {TASKS[t]["metric"]} = {results[t, v, s]:.4f}',
                      flush=True)
            trained = trained_score(t, s, args.work_dir)
            if abs(results[t, DENSE, s] - trained) > DENSE_TOLERANCE * max(1.0, abs(trained)):
                raise RuntimeError(
                    f'{t} seed {s}: the dense re-evaluation gives {results[t, DENSE, s]:.4f}, '
                    f'the training run logged {trained:.4f}: the evaluation path differs')
    print(f'\n## Training-free merging of the trained baselines ({len(args.seeds)} seeds, '
          f'random mask-module weights)\n')
    print(summarise(results, args.tasks, args.variants))
    if args.out_json:
        with open(args.out_json, 'w') as f:
            json.dump([dict(task=t, variant=v, seed=s, value=x)
                       for (t, v, s), x in results.items()], f, indent=1)
    return 0


if __name__ == '__main__':
    sys.exit(main())
