"""End-to-end checks of tools/train.py, tools/test.py, tools/dist_train.sh
and of mmdet's own tools/train.py on our toy configs (real Runner, real
CocoMetric / IoUMetric, a few iterations each on the toy data).

Every run is a subprocess from the repo root, as a user would type it; the
metrics each run printed are echoed (``pytest -s`` shows them).
"""
import os
import os.path as osp
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
PY = sys.executable
SEG_LTM = 'configs/toy/upernet_ltm_swin_t_toy.py'
DET_LTM = 'configs/toy/mask_rcnn_ltm_swin_t_toy.py'

# two iterations, validation after the second, a checkpoint every iteration
SHORT = [
    'train_cfg.max_iters=2', 'train_cfg.val_interval=2',
    'default_hooks.checkpoint.interval=1',
    'default_hooks.checkpoint.max_keep_ckpts=3',
    'default_hooks.logger.interval=1'
]
# the detection runs validate on 4 of the 16 toy val images (CocoMetric
# still scores against all 16: the rest count as misses)
DET_VAL = ['val_dataloader.dataset.indices=4']
DET_TEST = ['test_dataloader.dataset.indices=4']
METRIC_RE = re.compile(
    r'((?:coco/)?(?:bbox|segm)_mAP(?:_50|_75)?|mIoU|aAcc|mAcc): '
    r'(-?[\d.]+)')


def run(cmd, timeout=300, env=None):
    full_env = dict(os.environ, **(env or {}))
    proc = subprocess.run(
        cmd,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env)
    proc.log = proc.stdout + proc.stderr
    return proc


def ok(proc):
    if proc.returncode != 0:
        pytest.fail(f'{proc.args} exited {proc.returncode}:\n'
                    f'{proc.log[-6000:]}')
    return proc


def metrics_of(log):
    """The last value logged for each metric."""
    return {k: float(v) for k, v in METRIC_RE.findall(log)}


def assert_same_seg_metrics(metrics, reference):
    """mIoU, mAcc and aAcc agree to the 2 decimals that mmseg logs."""
    for key in ('mIoU', 'mAcc', 'aAcc'):
        assert metrics[key] == pytest.approx(reference[key], abs=0.011), key


def short_train(cmd, work_dir, extra=(), env=None):
    """``cmd --work-dir W --cfg-options SHORT extra`` (``cmd``: a train tool
    and its positional arguments) must succeed and leave the iteration-2
    checkpoint; returns the run and its metrics."""
    proc = ok(
        run([*cmd, '--work-dir', str(work_dir), '--cfg-options', *SHORT,
             *extra],
            env=env))
    assert (Path(work_dir) / 'iter_2.pth').is_file()
    return proc, metrics_of(proc.log)


@pytest.fixture
def in_repo():
    """Run in the repo root, as the tools expect (relative data paths)."""
    cwd = os.getcwd()
    os.chdir(REPO)
    yield
    os.chdir(cwd)


@pytest.fixture(scope='module')
def toy_data():
    from mmltm.datasets.toy import ensure_toy_data
    return ensure_toy_data(str(REPO / 'data' / 'toy'))


@pytest.fixture(scope='module')
def seg_run(toy_data, tmp_path_factory):
    """tools/train.py on the LTM UperNet toy config: 2 iters + val."""
    work_dir = tmp_path_factory.mktemp('seg')
    proc, _ = short_train([PY, 'tools/train.py', SEG_LTM], work_dir)
    return work_dir, proc


@pytest.fixture(scope='module')
def det_run(toy_data, tmp_path_factory):
    """mmdet's *own* tools/train.py (shipped in mmdet/.mim/tools) on the LTM
    Mask R-CNN toy config: mmltm enters only through the config's
    custom_imports, as it would for any mmdet user."""
    import mmdet
    mmdet_train = osp.join(osp.dirname(mmdet.__file__), '.mim', 'tools',
                           'train.py')
    assert osp.isfile(mmdet_train)
    work_dir = tmp_path_factory.mktemp('det')
    proc, _ = short_train([PY, mmdet_train, DET_LTM], work_dir, DET_VAL)
    return work_dir, proc


def test_train_tool_seg_toy(seg_run, tmp_path):
    """The mIoU tools/train.py logs after iteration 2 is that of the
    iteration-2 weights: tools/test.py on iter_2.pth (the same 16 val
    images) reproduces it."""
    work_dir, proc = seg_run
    metrics = metrics_of(proc.log)
    print('\n[toy UperNet LTM-Swin, 2 iters, tools/train.py]', metrics)
    assert (work_dir / 'iter_2.pth').is_file()
    assert 'LTMSwinTransformer' in proc.log
    tested = metrics_of(ok(run([
        PY, 'tools/test.py', SEG_LTM, str(work_dir / 'iter_2.pth'),
        '--work-dir', str(tmp_path)])).log)
    assert_same_seg_metrics(metrics, tested)


def _evaluate_ground_truth(config, test_cfg_options=()):
    """The config's test_evaluator fed with the ground truth of its test
    set as the predictions (the evaluator and annotations agree)."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    cfg = Config.fromfile(str(REPO / config))
    cfg.merge_from_dict(dict(test_cfg_options))
    init_default_scope(cfg.default_scope)
    from mmengine.registry import DATASETS, METRICS
    cwd = os.getcwd()
    os.chdir(REPO)
    try:
        dataset = DATASETS.build(cfg.test_dataloader.dataset)
        metric = METRICS.build(cfg.test_evaluator)
    finally:
        os.chdir(cwd)
    metric.dataset_meta = dataset.metainfo
    samples = []
    for i in range(len(dataset)):
        if cfg.default_scope == 'mmseg':
            gt = dataset[i]['data_samples'].gt_sem_seg.data
            samples.append(dict(pred_sem_seg=dict(data=gt),
                                gt_sem_seg=dict(data=gt)))
        else:
            samples.append(_det_ground_truth(dataset, i))
    metric.process({}, samples)
    return metric.evaluate(len(samples))


def _det_ground_truth(dataset, index):
    """Boxes and masks of the COCO annotations of one image, as
    predictions with score 1 (original image coordinates)."""
    from pycocotools import mask as mask_util
    info = dataset.get_data_info(index)
    h, w = info['height'], info['width']
    boxes, labels, masks = [], [], []
    for inst in info['instances']:
        boxes.append(inst['bbox'])
        labels.append(inst['bbox_label'])
        seg = inst['mask']  # polygons, uncompressed or compressed RLE
        if isinstance(seg, list):
            seg = mask_util.merge(mask_util.frPyObjects(seg, h, w))
        elif isinstance(seg['counts'], list):
            seg = mask_util.frPyObjects(seg, h, w)
        masks.append(mask_util.decode(seg).astype(bool))
    return dict(
        img_id=info['img_id'],
        ori_shape=(h, w),
        pred_instances=dict(
            bboxes=torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
            scores=torch.ones(len(boxes)),
            labels=torch.tensor(labels, dtype=torch.long),
            masks=torch.from_numpy(np.stack(masks))
            if masks else torch.zeros(0, h, w, dtype=torch.bool)))


def test_ground_truth_scores_perfectly(toy_data):
    """A known reference for the toy evaluators: the ground truth as
    predictions gives mIoU 100 and bbox/segm mAP 1.0."""
    seg = _evaluate_ground_truth(SEG_LTM)
    assert seg['mIoU'] == pytest.approx(100.0)
    assert seg['aAcc'] == pytest.approx(100.0)
    det = _evaluate_ground_truth(DET_LTM)
    assert det['coco/bbox_mAP'] == pytest.approx(1.0)
    assert det['coco/segm_mAP'] == pytest.approx(1.0)


def test_mmdet_train_tool_det_toy(det_run):
    work_dir, proc = det_run
    metrics = metrics_of(proc.log)
    print('\n[toy Mask R-CNN LTM-Swin, 2 iters, mmdet tools/train.py]',
          metrics)
    assert 'coco/bbox_mAP' in metrics and 'coco/segm_mAP' in metrics
    assert (work_dir / 'iter_2.pth').is_file()


def test_test_tool_det(det_run, tmp_path):
    """tools/test.py on the iteration-2 checkpoint of mmdet's train tool
    reproduces the mAPs that training validated with (same 4 images)."""
    work_dir, train_proc = det_run
    trained = metrics_of(train_proc.log)
    out = tmp_path / 'preds.pkl'
    proc = ok(
        run([
            PY, 'tools/test.py', DET_LTM,
            str(work_dir / 'iter_2.pth'), '--work-dir',
            str(tmp_path), '--out',
            str(out), '--cfg-options', *DET_TEST
        ]))
    metrics = metrics_of(proc.log)
    print('\n[toy Mask R-CNN LTM-Swin, tools/test.py]', metrics)
    for key in ('coco/bbox_mAP', 'coco/segm_mAP', 'coco/bbox_mAP_50'):
        assert metrics[key] == pytest.approx(trained[key], abs=1e-3), key
    import pickle
    with open(out, 'rb') as f:
        preds = pickle.load(f)
    assert len(preds) == 4  # one per evaluated image
    assert 'pred_instances' in preds[0]


def test_resume(seg_run, tmp_path, in_repo):
    """--resume continues the iteration counter, weights and optimizer."""
    work_dir, _ = seg_run
    ckpt2 = torch.load(work_dir / 'iter_2.pth', weights_only=False)
    assert ckpt2['meta']['iter'] == 2

    # 1) the CLI: resume the latest checkpoint of the work_dir, train one
    # more iteration
    proc = ok(
        run([
            PY, 'tools/train.py', SEG_LTM, '--work-dir',
            str(work_dir), '--resume', '--cfg-options', *SHORT[2:],
            'train_cfg.max_iters=3', 'train_cfg.val_interval=100'
        ]))
    assert 'resumed epoch: 0, iter: 2' in proc.log
    # CheckpointGuardHook (added by tools/train.py): the RNG state travels
    assert set(ckpt2['meta']['rng_state']) >= {'python', 'numpy', 'torch'}
    assert (f'CheckpointGuardHook: resuming from {work_dir / "iter_2.pth"}'
            in proc.log)
    assert 'restored the python, numpy and torch RNG states' in proc.log
    ckpt3 = torch.load(work_dir / 'iter_3.pth', weights_only=False)
    assert ckpt3['meta']['iter'] == 3
    changed = [
        k for k, v in ckpt3['state_dict'].items()
        if v.is_floating_point() and not torch.equal(v, ckpt2['state_dict'][k])
    ]
    assert changed, 'the resumed run did not update any weight'

    # 2) what the Runner holds right after resuming an explicit checkpoint
    from mmengine.config import Config
    from mmengine.runner import Runner

    from mmltm.engine import install_checkpoint_fix, prepare_runner_cfg
    install_checkpoint_fix()  # what tools/train.py does first
    cfg = Config.fromfile(str(REPO / SEG_LTM))
    cfg.merge_from_dict({'train_cfg.max_iters': 3})
    prepare_runner_cfg(
        cfg,
        config_path=SEG_LTM,
        work_dir=str(tmp_path),
        resume=str(work_dir / 'iter_2.pth'))
    runner = Runner.from_cfg(cfg)
    runner.load_or_resume()
    assert runner.iter == 2
    state = runner.model.state_dict()
    for key, value in ckpt2['state_dict'].items():
        assert torch.equal(state[key], value), key
    steps = {
        int(s['step'])
        for s in runner.optim_wrapper.optimizer.state_dict()['state'].values()
    }
    assert steps == {2}


@pytest.mark.parametrize('config,extra,metric', [
    (SEG_LTM, [], 'mIoU'),
    (DET_LTM, DET_VAL, 'coco/bbox_mAP'),
], ids=['upernet', 'mask_rcnn'])
def test_dist_train_two_processes(toy_data, tmp_path, free_port, config, extra,
                                  metric):
    proc, metrics = short_train(['bash', 'tools/dist_train.sh', config, '2'],
                                tmp_path, extra,
                                env=dict(PORT=str(free_port), PYTHON=PY))
    assert 'Distributed training: True' in proc.log
    assert 'GPU number: 2' in proc.log  # mmengine's name for world size
    print(f'\n[toy {config}, 2 procs, dist_train.sh]', metrics)
    assert metric in metrics


def test_dist_test_two_processes(seg_run, tmp_path, free_port):
    """tools/dist_test.sh with 2 processes (gloo on CPU) scores the
    iteration-2 checkpoint as training's validation did: each process
    evaluates 8 of the 16 val images and the metric gathers both halves."""
    work_dir, train_proc = seg_run
    trained = metrics_of(train_proc.log)
    proc = ok(run(['bash', 'tools/dist_test.sh', SEG_LTM,
                   str(work_dir / 'iter_2.pth'), '2', '--work-dir',
                   str(tmp_path)],
                  env=dict(PORT=str(free_port), PYTHON=PY)))
    assert 'GPU number: 2' in proc.log
    metrics = metrics_of(proc.log)
    print('\n[toy UperNet LTM-Swin, 2 procs, dist_test.sh]', metrics)
    assert_same_seg_metrics(metrics, trained)


def test_missing_data_root_fails_early(tmp_path, in_repo, monkeypatch,
                                      load_tool):
    import mmengine.runner
    missing = str(tmp_path / 'coco') + '/'

    def no_runner(*args, **kwargs):
        raise AssertionError('the Runner was built before the data check')

    monkeypatch.setattr(mmengine.runner.Runner, 'from_cfg', no_runner)
    with pytest.raises(FileNotFoundError) as err:
        load_tool('tools/train.py').main([
            'configs/mask_rcnn_swin_t_coco.py', '--work-dir',
            str(tmp_path), '--cfg-options',
            f'train_dataloader.dataset.data_root={missing}',
            f'val_dataloader.dataset.data_root={missing}'
        ])
    msg = str(err.value)
    assert msg.startswith(f'data root {missing} not found')
    assert 'train_dataloader.dataset.data_root' in msg


def test_mismatched_checkpoint_is_refused(det_run, tmp_path, in_repo,
                                          load_tool):
    """A Mask R-CNN checkpoint is no UperNet checkpoint: tools/test.py
    names the missing keys instead of evaluating random heads."""
    work_dir, _ = det_run
    with pytest.raises(RuntimeError) as err:
        load_tool('tools/test.py').main([
            SEG_LTM,
            str(work_dir / 'iter_2.pth'), '--work-dir',
            str(tmp_path)
        ])
    msg = str(err.value)
    assert 'does not match the model of this config' in msg
    # the missing parts and the foreign ones are named
    assert 'decode_head.* (' in msg and 'auxiliary_head.* (' in msg
    assert 'roi_head.* (' in msg


def test_demo_reports_every_metric(toy_data, tmp_path, in_repo, capsys,
                                   load_tool):
    """tools/demo.py (the README's main job) on a 1-iteration schedule: the
    summary carries real numbers for both jobs (mmseg's IoUMetric returns
    numpy float32 scalars, which once came out as nan)."""
    import json
    import math
    demo = load_tool('tools/demo.py')
    out = tmp_path / 'demo.json'
    assert demo.main(['--max-iters', '1', '--work-dir', str(tmp_path),
                      '--out-json', str(out)]) == 0
    results = {r['job']: r['metrics'] for r in json.loads(out.read_text())}
    for job, keys in (('mask_rcnn', ('coco/bbox_mAP', 'coco/segm_mAP')),
                      ('upernet', ('mIoU', 'mAcc', 'aAcc'))):
        for key in keys:
            assert math.isfinite(results[job][key]), (job, key, results[job])
    summary = capsys.readouterr().out
    assert 'nan' not in summary.split('mmltm demo summary')[1]


@pytest.mark.parametrize('config,extra,metric', [
    ('configs/toy/mask_rcnn_ltm_vit_s_toy.py', DET_VAL, 'coco/bbox_mAP'),
    ('configs/toy/upernet_ltm_vit_s_toy.py', [], 'mIoU'),
    ('configs/toy/segformerhead_ltm_efficientvit_b1_toy.py', [], 'mIoU'),
], ids=['mask_rcnn_ltm_vit', 'upernet_ltm_vit', 'segformer_ltm_efficientvit'])
def test_other_ltm_backbones_train_and_evaluate_on_toy_data(
        toy_data, tmp_path, config, extra, metric):
    """LTM-ViT in Mask R-CNN / UperNet and LTM-EfficientViT in its ADE20K
    config: tools/train.py, two iterations, then the real metric."""
    _, metrics = short_train([PY, 'tools/train.py', config], tmp_path, extra)
    print(f'\n[{config}, 2 iters]', metrics)
    assert metric in metrics
