"""tools/analysis_tools/compare_merging.py: metric reading and the summary."""
import importlib.util
import json
import os
import os.path as osp
import subprocess

import pytest

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
_spec = importlib.util.spec_from_file_location(
    'compare_merging', osp.join(REPO, 'tools', 'analysis_tools', 'compare_merging.py'))
compare = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(compare)


def test_final_metric_is_the_last_logged_value(tmp_path):
    vis = tmp_path / '20260101_000000' / 'vis_data'
    vis.mkdir(parents=True)
    lines = [{'loss': 1.0, 'step': 1}, {'coco/bbox_mAP': 0.25, 'step': 50},
             {'loss': 0.5, 'step': 60}, {'coco/bbox_mAP': 0.375, 'step': 100}]
    (vis / 'scalars.json').write_text('\n'.join(json.dumps(x) for x in lines))
    assert compare.final_metric(str(tmp_path), 'coco/bbox_mAP') == 0.375
    with pytest.raises(RuntimeError, match=r"no 'mIoU' was logged under"):
        compare.final_metric(str(tmp_path), 'mIoU')


def _results(task, variant, values):
    return [dict(task=task, variant=variant, seed=i, value=v) for i, v in enumerate(values)]


def test_summary_gives_mean_std_and_checks_the_known_worse_model():
    results = (_results('det', 'baseline', [0.50, 0.52, 0.54]) +   # mean .52, std .02
               _results('det', 'ltm', [0.60, 0.62, 0.64]) +
               _results('det', 'grid', [0.50, 0.51, 0.52]) +
               _results('det', 'pool25', [0.47, 0.48, 0.49]))      # .48 = .52 - 2 std
    text = compare.summarise(results, ['det'], ['baseline', 'ltm', 'grid', 'pool25'])
    assert '| baseline | 0.520 ± 0.020 (n=3) |' in text
    assert '| ltm | 0.620 ± 0.020 (n=3) |' in text
    # 0.48 is not below 0.52 - 2 * 0.02 = 0.48: strictly below is required
    assert 'does NOT discriminate' in text
    assert "ltm beats by more than one std: ['grid']" in text
    for r, v in zip(results[-3:], (0.40, 0.41, 0.42)):
        r['value'] = v
    assert 'det: pool25 0.410 vs baseline 0.520 - 2 std (0.020) = 0.480: discriminates' in \
        compare.summarise(results, ['det'], ['baseline', 'pool25'])
    # a baseline that repeats itself does not separate a noisy worse model:
    # the spread is the larger std (here pool25's, 0.1)
    tight = (_results('det', 'baseline', [0.554, 0.554, 0.555]) +
             _results('det', 'pool25', [0.44, 0.54, 0.64]))
    assert 'det: pool25 0.540 vs baseline 0.554 - 2 std (0.100) = 0.354: does NOT discriminate' \
        in compare.summarise(tight, ['det'], ['baseline', 'pool25'])
    # the stage-scope known-worse model is checked too, and never counted as a rival of ltm
    results += _results('det', 'pool25_stage', [0.49, 0.50, 0.51])
    text = compare.summarise(results, ['det'], ['baseline', 'ltm', 'grid', 'pool25_stage'])
    assert 'det: pool25_stage 0.500 vs baseline 0.520 - 2 std (0.020) = 0.480: does NOT discriminate' in text
    assert "(of ['grid'])" in text


def test_variants_only_change_the_backbone_and_use_the_configs_that_exist():
    for task, spec in compare.TASKS.items():
        assert osp.exists(osp.join(REPO, spec['ltm'])) and osp.exists(osp.join(REPO, spec['baseline']))
    for name, (config_key, _) in compare.VARIANTS.items():
        assert config_key in ('ltm', 'baseline')
        for task in compare.TASKS:
            options = compare.variant_options(task, name)
            assert all(o.startswith('model.backbone.') for o in options), name
            assert not any('{' in o for o in options), options  # every value filled in
    # 'stage' runs at its task's equal-FLOPs ratio, the known-worse one at 0.25
    assert 'model.backbone.compression_ratio=0.76' in compare.variant_options('det', 'ltm_stage')
    assert 'model.backbone.compression_ratio=0.7' in compare.variant_options('cls', 'ltm_stage')
    assert 'model.backbone.merge_scope=stage' in compare.variant_options('seg', 'pool25_stage')
    assert 'model.backbone.compression_ratio=0.25' in compare.variant_options('seg', 'pool25_stage')


def test_summary_only_reads_stored_results_and_names_the_missing_runs(tmp_path, capsys):
    for seed, value in enumerate([0.50, 0.52, 0.54]):
        run_dir = tmp_path / 'det' / 'baseline' / f'seed{seed}'
        run_dir.mkdir(parents=True)
        (run_dir / 'result.json').write_text(json.dumps(
            dict(task='det', variant='baseline', seed=seed, value=value)))
    code = compare.main(['--tasks', 'det', '--variants', 'baseline', 'ltm', '--seeds', '0', '1',
                         '2', '--work-dir', str(tmp_path), '--summary-only'])
    printed = capsys.readouterr().out
    assert code == 1  # ltm was never trained: nothing is trained now either
    assert '| baseline | 0.520 ± 0.020 (n=3) |' in printed
    assert '| ltm | - |' in printed
    assert '3 of 6 runs have no stored result: det/ltm/seed0, det/ltm/seed1, det/ltm/seed2' in printed
    assert not (tmp_path / 'det' / 'ltm').exists()


def test_shapes_tasks_fine_tune_the_cls_checkpoints_of_the_same_variant():
    """det_shapes / seg_shapes train the toy Mask R-CNN / UperNet on the
    densely labelled shapes images (64 x 64, the cls task's data), starting
    from the cls checkpoint of the same variant, so at cls's 'stage'
    ratio; the old tasks keep their configs."""
    assert {'cls', 'det', 'seg', 'det_shapes', 'seg_shapes'} <= set(compare.TASKS)
    for new, old, toy_set in (('det_shapes', 'det', 'coco_shapes'),
                              ('seg_shapes', 'seg', 'ade_shapes')):
        spec, old_spec = compare.TASKS[new], compare.TASKS[old]
        assert spec['metric'] == old_spec['metric']
        assert (spec['pretrain'], spec['stage_ratio'], spec['size']) == (
            'cls', compare.TASKS['cls']['stage_ratio'], '64')
        for key in ('ltm', 'baseline'):
            assert spec[key] != old_spec[key]
        cfg = compare.variant_config(new, 'pool25_stage')
        assert cfg.train_dataloader.dataset.toy_set == toy_set
        assert cfg.model.backbone.merge_scope == 'stage'
        assert cfg.model.backbone.compression_ratio == 0.25
        assert cfg.model.backbone.merger_cfg.learnable_step is False
    assert compare.variant_config('det', 'baseline').model.backbone.type == 'SwinTransformer'
    assert compare.TASKS['seg']['ltm'] == 'configs/toy/upernet_ltm_swin_t_toy.py'
    assert not any('pretrain' in compare.TASKS[t] for t in ('cls', 'det', 'seg'))


def test_fine_tuned_task_trains_its_pretraining_run_first_and_loads_it(
        tmp_path, monkeypatch, capsys):
    """Each seg_shapes run starts from the cls run of its variant and seed:
    that run is trained first (once, also when cls is not asked for),
    its checkpoint given as ``load_from`` with partial loading; only the
    asked-for task is in the table."""
    calls = []

    def fake_run(cmd, cwd, env, stdout, stderr):
        work_dir = cmd[cmd.index('--work-dir') + 1]
        calls.append((work_dir, cmd))
        task = osp.relpath(work_dir, str(tmp_path)).split(osp.sep)[0]
        metric = compare.TASKS[task]['metric']
        vis = osp.join(work_dir, 'run', 'vis_data')
        os.makedirs(vis)
        with open(osp.join(vis, 'scalars.json'), 'w') as f:
            f.write(json.dumps({metric: 50.0 + len(calls), 'step': 1}))
        with open(osp.join(work_dir, 'last_checkpoint'), 'w') as f:
            f.write(osp.join(work_dir, 'epoch_8.pth'))
        return subprocess.CompletedProcess(cmd, 0)

    monkeypatch.setattr(compare.subprocess, 'run', fake_run)
    argv = ['--tasks', 'seg_shapes', '--variants', 'baseline', 'pool25',
            '--seeds', '0', '--work-dir', str(tmp_path), '--jobs', '2']
    assert compare.main(argv) == 0
    dirs = [osp.relpath(d, str(tmp_path)) for d, _ in calls]
    assert sorted(dirs[:2]) == ['cls/baseline/seed0', 'cls/pool25/seed0']
    assert sorted(dirs[2:]) == ['seg_shapes/baseline/seed0', 'seg_shapes/pool25/seed0']
    for work_dir, cmd in calls[2:]:
        source = work_dir.replace('seg_shapes', 'cls')
        assert f"load_from={osp.join(source, 'epoch_8.pth')}" in cmd
        assert 'allow_partial_load=True' in cmd
    out = capsys.readouterr().out
    assert 'seg_shapes: mIoU' in out and 'cls: accuracy/top1' not in out
    # stored: a second call trains nothing
    assert compare.main(argv) == 0 and len(calls) == 4


def test_flops_option_prints_backbone_ratios(capsys):
    """--flops trains nothing and prints each variant's backbone FLOPs over
    the baseline's: 1 for the baseline, below 1 for merging, and 'stage'
    at its task's ratio within 0.01 of the 'ffn' variant (the equal-FLOPs
    rule of ltm_stage)."""
    assert compare.main(['--tasks', 'cls', '--variants', 'baseline', 'ltm', 'ltm_stage',
                         'pool25', '--flops']) == 0
    rows = {line.split('|')[1].strip(): float(line.split('|')[2].strip().rstrip('x'))
            for line in capsys.readouterr().out.splitlines()
            if line.startswith('| ') and line.split('|')[2].strip().endswith('x')}
    assert rows['baseline'] == 1.0
    assert rows['pool25'] < rows['ltm'] < 1.0
    assert abs(rows['ltm_stage'] - rows['ltm']) <= 0.01
    with pytest.raises(SystemExit):
        compare.parse_args(['--flops', '--summary-only'])


def test_default_tasks_are_the_seeds_table_and_the_shapes_scenes_are_opt_in():
    assert compare.parse_args([]).tasks == ['cls', 'det', 'seg'] == list(compare.DEFAULT_TASKS)
    assert compare.parse_args(['--tasks', 'seg_shapes']).tasks == ['seg_shapes']
