"""Toy ImageNet pretraining with the IB objective through mmpretrain's Runner,
then the chain pretrain -> checkpoint -> LTM-Swin Mask R-CNN backbone."""
import os.path as osp
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner import Runner

REPO = Path(__file__).resolve().parents[2]
TOY_CFG = REPO / 'configs' / 'toy' / 'ltm_swin_t_in1k_toy.py'
DET_CFG = REPO / 'configs' / 'toy' / 'mask_rcnn_ltm_swin_t_toy.py'
pytestmark = pytest.mark.slow
#: nats of val label NLL the 3-epoch toy model must gain over an untrained
#: one (which scores log(4) = 1.386 at chance)
NLL_MARGIN = 0.05


@pytest.fixture(scope='module')
def toy_imagenet() -> str:
    from mmltm.datasets.toy import ensure_toy_data
    return ensure_toy_data(str(REPO / 'data' / 'toy'),
                           which='imagenet')['imagenet']


def _toy_cfg(work_dir, data_root, epochs=3, warmup_ratio=0.34,
             num_images=16, batch_size=4, img_size=64) -> Config:
    """The toy config, smaller still (images, data, epochs) for tests."""
    cfg = Config.fromfile(str(TOY_CFG))
    cfg.work_dir = str(work_dir)
    cfg.log_level = 'WARNING'
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[key].dataset.data_root = data_root
        for step in cfg[key].dataset.pipeline:
            if step.type in ('RandomResizedCrop', 'CenterCrop'):
                step[{'RandomResizedCrop': 'scale',
                      'CenterCrop': 'crop_size'}[step.type]] = img_size
            elif step.type == 'ResizeEdge':
                step.scale = img_size
    cfg.train_dataloader.dataset.indices = num_images
    cfg.train_dataloader.batch_size = batch_size
    cfg.train_cfg.max_epochs = epochs
    cfg.train_cfg.val_interval = epochs
    cfg.custom_hooks[0].warmup_ratio = warmup_ratio
    cfg.custom_hooks[0].num_input_samples = num_images
    cfg.default_hooks.checkpoint.interval = epochs
    cfg.default_hooks.logger.interval = 1
    return cfg


def _record_refreshes(runner):
    head = runner.model.head
    records = []
    original = head.set_output_clusters

    def record(centroids, q):
        records.append((runner.epoch, runner.iter, centroids.clone(),
                        q.clone()))
        original(centroids, q)

    head.set_output_clusters = record
    return records


def _record_initial_mask_params(runner):
    """The token_merger parameters right before training (after init)."""
    from mmengine.hooks import Hook
    initial = {}

    class Record(Hook):

        def before_train(self, runner):
            initial.update({
                k: v.detach().clone()
                for k, v in runner.model.state_dict().items()
                if 'token_merger' in k
            })

    runner.register_hook(Record(), priority='HIGHEST')
    return initial


def _top1_and_nll(model, loader):
    """Share of images whose arg-max prediction is the label (%), and the
    mean negative log-probability of the label (nats)."""
    model.eval()
    correct = total = 0
    nll = 0.0
    with torch.no_grad():
        for data in loader:
            for sample in model.val_step(data):
                label = sample.gt_label.item()
                correct += int(sample.pred_label.item() == label)
                nll -= torch.log(sample.pred_score[label]).item()
                total += 1
    return 100.0 * correct / total, nll / total


def _identity_merger_prefixes(backbone, img_size):
    """Mask-module parameter prefixes of the Swin blocks whose map is too
    small to merge at ``img_size`` (their merger is the identity, so it
    gets no gradient; issue 11 removes such parameters)."""
    h = w = img_size // 4
    prefixes = []
    for i, stage in enumerate(backbone.stages):
        for j, block in enumerate(stage.blocks):
            merger = getattr(block, 'token_merger', None)
            if merger is not None and merger.is_identity((h, w)):
                prefixes.append(f'stages.{i}.blocks.{j}.token_merger.')
        h, w = (h + 1) // 2, (w + 1) // 2
    return tuple(prefixes)


@pytest.fixture(scope='module')
def pretrained(toy_imagenet, tmp_path_factory):
    """3 toy epochs (4 iterations each): CE only in epoch 0, IB after."""
    from mmltm.engine import install_checkpoint_fix
    install_checkpoint_fix()  # the Mask R-CNN test loads a Runner ckpt
    init_default_scope('mmpretrain')
    work_dir = tmp_path_factory.mktemp('ltm_in1k_toy')
    runner = Runner.from_cfg(_toy_cfg(work_dir, toy_imagenet))
    records = _record_refreshes(runner)
    initial = _record_initial_mask_params(runner)
    runner.train()
    history = runner.message_hub.get_scalar('train/loss_ib').data[0]
    bound = runner.message_hub.get_scalar('train/ib_bound').data[0]
    metrics = runner.val()
    ckpt = osp.join(str(work_dir), 'epoch_3.pth')
    return dict(runner=runner, records=records, loss_ib=list(history),
                ib_bound=list(bound), metrics=metrics, ckpt=ckpt,
                initial_mask_params=initial)


def test_toy_pretraining_reports_top1(pretrained):
    """The reported top-1 is the arg-max accuracy on the val images, and
    the trained model beats an untrained one of the same config."""
    metrics = pretrained['metrics']
    assert set(metrics) == {'accuracy/top1'}
    runner = pretrained['runner']
    top1 = metrics['accuracy/top1']
    by_hand, nll = _top1_and_nll(runner.model, runner.val_dataloader)
    assert top1 == pytest.approx(by_hand)
    from mmpretrain.registry import MODELS
    torch.manual_seed(123)
    model_cfg = runner.cfg.model.copy()
    model_cfg.setdefault('data_preprocessor', runner.cfg.data_preprocessor)
    untrained = MODELS.build(model_cfg)
    untrained.init_weights()
    untrained_top1, untrained_nll = _top1_and_nll(untrained,
                                                  runner.val_dataloader)
    print(f'\n[toy LTM-Swin in1k, 3 epochs] top-1 {top1:.1f} vs untrained '
          f'{untrained_top1:.1f}; label NLL {nll:.3f} vs {untrained_nll:.3f}')
    assert top1 > untrained_top1
    assert nll < untrained_nll - NLL_MARGIN
    assert osp.isfile(pretrained['ckpt'])


def test_ib_term_is_off_during_warmup_then_on(pretrained):
    loss_ib = pretrained['loss_ib']
    assert len(loss_ib) == 12  # 3 epochs x 4 iterations, logged every iter
    assert all(v == 0.0 for v in loss_ib[:4])  # epoch 0: CE only
    assert all(v != 0.0 for v in loss_ib[4:])
    # ib_bound is only reported once tables exist (8 iterations), and the
    # weighted term is 0.1 x the bound
    bound = pretrained['ib_bound']
    assert len(bound) == 8
    for weighted, raw in zip(loss_ib[4:], bound):
        assert weighted == pytest.approx(0.1 * raw, rel=1e-4)


def test_ib_gradient_ratio_is_logged_every_epoch(pretrained):
    """IBClusterHook logs ||grad IB|| / ||grad CE|| on the token_merger
    parameters once per epoch: 0 in the CE-only epoch, finite > 0 after;
    exactly 0 when ib_weight is 0."""
    runner = pretrained['runner']
    ratios = list(runner.message_hub.get_scalar('train/ib_grad_ratio')
                  .data[0])
    assert len(ratios) == 3 and ratios[0] == 0.0
    assert all(0 < r < float('inf') for r in ratios[1:]), ratios
    from mmltm.engine.hooks import IBClusterHook
    hook = [h for h in runner.hooks if isinstance(h, IBClusterHook)][0]
    batch = next(iter(runner.train_dataloader))
    head = runner.model.head
    assert head.ib_active
    assert 0 < hook.log_gradient_ratio(runner, batch) < float('inf')
    head.ib_weight = 0.0
    try:
        assert hook.log_gradient_ratio(runner, batch) == 0.0
    finally:
        head.ib_weight = 0.1


def test_hook_refreshes_clusters_every_epoch_after_warmup(pretrained):
    records = pretrained['records']
    head = pretrained['runner'].model.head
    assert [(epoch, it) for epoch, it, _, _ in records] == [(1, 4), (2, 8)]
    (_, _, c1, q1), (_, _, c2, q2) = records
    assert not torch.allclose(c1, c2)  # features moved, so did the clusters
    for q in (q1, q2):
        assert q.shape == (4, 4)
        torch.testing.assert_close(q.sum(0), torch.ones(4))
    # the head keeps the last refresh (unit-norm centroids) as buffers
    torch.testing.assert_close(head.ib_q, q2)
    torch.testing.assert_close(head.ib_output_centroids,
                               torch.nn.functional.normalize(c2, dim=1))
    assert bool(head.ib_input_ready) and bool(head.ib_output_ready)
    assert head.ib_input_centroids.abs().sum() > 0


def test_checkpoint_holds_tables_and_loads_into_mask_rcnn_backbone(
        pretrained):
    ckpt = torch.load(pretrained['ckpt'], map_location='cpu',
                      weights_only=False)
    state = ckpt['state_dict']
    assert {'head.ib_q', 'head.ib_output_centroids',
            'head.ib_input_centroids'} <= set(state)
    backbone = {k[len('backbone.'):]: v for k, v in state.items()
                if k.startswith('backbone.')}

    init_default_scope('mmdet')
    from mmdet.registry import MODELS
    cfg = Config.fromfile(str(DET_CFG))
    cfg.model.backbone.init_cfg = dict(
        type='Pretrained', checkpoint=pretrained['ckpt'], prefix='backbone.')
    detector = MODELS.build(cfg.model)
    detector.init_weights()
    det_state = detector.backbone.state_dict()

    unexpected = set(backbone) - set(det_state)
    missing = set(det_state) - set(backbone)
    assert not unexpected, unexpected
    # only the per-stage output norms a dense backbone adds (a classifier
    # returns stage 3 only): they start from their init, as with mmdet's own
    # ImageNet Swin weights
    assert missing == {f'norm{i}.{p}' for i in range(3)
                       for p in ('weight', 'bias')}, missing
    for key, value in backbone.items():
        assert torch.equal(det_state[key], value), key
    # the trained mask-module parameters came along, and every one of them
    # was trained (differs from its value before training)
    mask_keys = sorted(k for k in backbone if 'token_merger' in k)
    assert mask_keys
    initial = pretrained['initial_mask_params']
    assert sorted(k[len('backbone.'):] for k in initial) == mask_keys
    identity = _identity_merger_prefixes(
        pretrained['runner'].model.backbone, img_size=64)
    trainable = [k for k in mask_keys if not k.startswith(identity)]
    assert trainable
    unchanged = [k for k in trainable
                 if torch.equal(backbone[k], initial['backbone.' + k])]
    assert not unchanged, unchanged


def test_iteration_based_refresh(toy_imagenet, tmp_path):
    """Iteration-based loops refresh every ``interval`` iterations."""
    init_default_scope('mmpretrain')
    cfg = _toy_cfg(tmp_path, toy_imagenet, warmup_ratio=0.25, num_images=8)
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=4,
                         val_interval=100)
    cfg.param_scheduler = []
    cfg.custom_hooks[0].interval = 2
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook',
                                        by_epoch=False, interval=100)
    cfg.log_processor = dict(by_epoch=False)
    runner = Runner.from_cfg(cfg)
    records = _record_refreshes(runner)
    runner.train()
    assert [it for _, it, _, _ in records] == [1, 3]
    loss_ib = runner.message_hub.get_scalar('train/loss_ib').data[0]
    assert loss_ib[0] == 0.0 and all(v != 0.0 for v in loss_ib[1:])


def test_hook_rejects_a_plain_head_and_bad_args(toy_imagenet, tmp_path):
    from mmltm.engine.hooks import IBClusterHook
    with pytest.raises(ValueError, match=r'warmup_ratio=1.0 must be in \[0, 1\)'):
        IBClusterHook(warmup_ratio=1.0)
    with pytest.raises(ValueError, match='interval=0'):
        IBClusterHook(interval=0)
    init_default_scope('mmpretrain')
    cfg = Config.fromfile(str(REPO / 'configs' / 'toy' / 'swin_t_in1k_toy.py'))
    cfg.work_dir = str(tmp_path)
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[key].dataset.data_root = toy_imagenet
    runner = Runner.from_cfg(cfg)
    with pytest.raises(TypeError, match='IBLinearClsHead.*LinearClsHead'):
        IBClusterHook().before_train(runner)
