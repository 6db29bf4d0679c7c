"""tools/analysis_tools/training_free_merging.py: the options it builds and
one evaluation through them."""
import json
import os.path as osp
import sys

import pytest
import torch

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, osp.join(REPO, 'tools', 'analysis_tools'))
sys.path.insert(0, osp.join(REPO, 'tools'))

import training_free_merging as tfm  # noqa: E402
from compare_merging import TASKS, load_config  # noqa: E402


@pytest.mark.parametrize('task', sorted(TASKS))
@pytest.mark.parametrize('variant', ['ltm_stage', 'pool25', tfm.DENSE])
def test_options_put_the_ltm_backbone_into_the_baseline_config(task, variant):
    from mmengine.config import Config
    cfg = load_config(TASKS[task]['baseline'], tfm.eval_options(task, variant, 3))
    ltm = Config.fromfile(osp.join(REPO, TASKS[task]['ltm'])).model.backbone.to_dict()
    got = cfg.model.backbone.to_dict()
    expected = dict(ltm, **dict(
        ltm_stage=dict(merge_mode='ltm', merge_scope='stage',
                       compression_ratio=float(TASKS[task]['stage_ratio'])),
        pool25=dict(merge_mode='grid', init_step=0.001, compression_ratio=0.25,
                    merger_cfg=dict(learnable_step=False)),
        dense=dict(compression_ratio=1.0))[variant])
    # every key of the LTM backbone (nested dicts and tuples included) with
    # the variant's overrides; keys only the baseline has may stay
    assert {k: got[k] for k in expected} == expected
    assert cfg.randomness.seed == 3
    # the heads are the baseline's, untouched
    base = Config.fromfile(osp.join(REPO, TASKS[task]['baseline'])).model.to_dict()
    assert {k: v for k, v in cfg.model.to_dict().items() if k != 'backbone'} == \
        {k: v for k, v in base.items() if k != 'backbone'}


def test_dense_evaluation_through_the_ltm_backbone_equals_the_baseline(tmp_path):
    """A random-weight cls baseline checkpoint scores the same evaluated as
    it is and through the swapped-in LTM backbone at ratio 1; pool25 runs."""
    import test as test_tool
    from mmengine.config import Config
    from mmltm.registry import MODELS  # noqa: F401  (registers the models)
    from mmpretrain.registry import MODELS as PRETRAIN_MODELS

    torch.manual_seed(0)
    cfg = Config.fromfile(osp.join(REPO, TASKS['cls']['baseline']))
    model = PRETRAIN_MODELS.build(cfg.model)
    run = tmp_path / 'cls' / 'baseline' / 'seed0'
    run.mkdir(parents=True)
    torch.save(dict(state_dict=model.state_dict(), meta={}), run / 'epoch_1.pth')
    (run / 'last_checkpoint').write_text(str(run / 'epoch_1.pth'))
    metric = TASKS['cls']['metric']
    few = 'test_dataloader.dataset.indices=48'  # the first 48 val images
    own = test_tool.main([osp.join(REPO, TASKS['cls']['baseline']), str(run / 'epoch_1.pth'),
                          '--work-dir', str(tmp_path / 'own'), '--cfg-options', few])[metric]
    (run / 'result.json').write_text(json.dumps(dict(value=own)))
    argv = ['--work-dir', str(tmp_path), '--tasks', 'cls', '--seeds', '0', '--variants',
            'pool25', '--out-json', str(tmp_path / 'r.json'), '--cfg-options', few]
    args = tfm.parse_args(argv)
    assert tfm.main(argv) == 0
    rows = {r['variant']: r['value'] for r in json.loads((tmp_path / 'r.json').read_text())}
    assert rows[tfm.DENSE] == pytest.approx(own, abs=1e-6)
    assert set(rows) == {tfm.DENSE, 'pool25'} and args.out_dir == str(tmp_path / 'training_free')
    # the baseline (an LTM backbone at ratio 1) holds unused mask-module
    # weights; the evaluations use the variants' own initial ones instead
    assert any(tfm.MASK_MODULE_KEY in k for k in model.state_dict())
    used = torch.load(tmp_path / 'training_free' / 'cls' / 'baseline_seed0.pth')['state_dict']
    assert not any(tfm.MASK_MODULE_KEY in k for k in used)
    assert set(used) == {k for k in model.state_dict() if tfm.MASK_MODULE_KEY not in k}
    # a second call reuses the stored evaluations
    (run / 'epoch_1.pth').unlink()
    assert tfm.main(argv) == 0


def test_a_missing_baseline_run_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match='compare_merging.py --variants baseline'):
        tfm.checkpoint_of(str(tmp_path / 'cls' / 'baseline' / 'seed0'))


def test_an_option_without_a_value_is_refused():
    with pytest.raises(SystemExit):
        tfm.parse_args(['--cfg-options', 'test_dataloader.dataset.indices'])


def test_summary_checks_the_known_worse_model_against_the_unmerged_checkpoints():
    # seg_shapes as measured (README): pool25 loses 25 mIoU, ltm 1.3
    dense, pool25, ltm, tome = [62.69, 59.32, 60.39], [36.15, 36.88, 35.25], \
        [61.36, 58.22, 58.81], [61.23, 58.42, 59.71]
    results = {}
    for variant, values in [(tfm.DENSE, dense), ('pool25', pool25), ('ltm', ltm),
                            ('tome', tome)]:
        results.update({('seg_shapes', variant, s): v for s, v in enumerate(values)})
    text = tfm.summarise(results, ['seg_shapes'], ['ltm', 'tome', 'pool25'])
    assert '| pool25 | 36.093 ± 0.816 (n=3) | -24.707 ± 2.084 |' in text
    assert 'seg_shapes: pool25 36.093 vs dense 60.800 - 2 std (1.722) = 57.356: ' \
           'discriminates' in text
    assert "seg_shapes: ltm beats by more than one std: none (of ['tome'])" in text
    # a worse model within 2 std of the unmerged checkpoints is not seen
    results.update({('seg_shapes', 'pool25', s): v - 2.0 for s, v in enumerate(dense)})
    assert 'pool25 58.800 vs dense 60.800 - 2 std (1.722) = 57.356: does NOT discriminate' \
        in tfm.summarise(results, ['seg_shapes'], ['pool25'])
