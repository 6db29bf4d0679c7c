"""Bad checkpoints get clear errors, checkpoints are written atomically, and a
killed + resumed toy run ends with the same losses as an uninterrupted one
(CheckpointGuardHook, mmltm.engine.checkpoint, tools/train.py)."""
import os
import os.path as osp
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner import Runner
from mmengine.runner.checkpoint import _load_checkpoint

from mmltm.engine import (ATOMIC_BACKEND, AtomicLocalBackend,
                          UnreadableCheckpointError, install_checkpoint_fix)
from mmltm.engine.hooks.checkpoint_guard_hook import (
    CheckpointGuardHook, newest_readable_checkpoint)

REPO = Path(__file__).resolve().parents[2]
TOY_CLS = 'configs/toy/ltm_swin_t_in1k_toy.py'


@pytest.fixture(scope='module')
def toy_imagenet() -> str:
    from mmltm.datasets.toy import ensure_toy_data
    return ensure_toy_data(str(REPO / 'data' / 'toy'),
                           which='imagenet')['imagenet']


@pytest.fixture
def in_repo(monkeypatch):
    monkeypatch.chdir(REPO)  # the tools read data/ relative to the repo


def train_main(argv):
    """``python tools/train.py ARGV``, in this process."""
    import runpy
    return runpy.run_path(str(REPO / 'tools' / 'train.py'))['main'](argv)


def small_toy_cfg(work_dir, data_root, epochs=3) -> Config:
    """The toy LTM-Swin classification config (IB, Mixup/CutMix) on 8
    images of 64x64, batch 4: 2 iterations an epoch, a checkpoint and a
    validation (2 images) every epoch, the IB term on from epoch 1."""
    cfg = Config.fromfile(str(REPO / TOY_CLS))
    cfg.work_dir = str(work_dir)
    cfg.log_level = 'WARNING'
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[key].dataset.data_root = data_root
        for step in cfg[key].dataset.pipeline:
            if step.type == 'RandomResizedCrop':
                step.scale = 64
            elif step.type == 'CenterCrop':
                step.crop_size = 64
            elif step.type == 'ResizeEdge':
                step.scale = 64
    cfg.train_dataloader.dataset.indices = 8
    cfg.train_dataloader.batch_size = 4
    cfg.val_dataloader.dataset.indices = 2
    cfg.train_cfg.max_epochs = epochs
    # validate after every epoch: validation must not shift the training RNG
    cfg.train_cfg.val_interval = 1
    cfg.custom_hooks[0].warmup_ratio = 0.34
    cfg.custom_hooks[0].num_input_samples = 8
    cfg.custom_hooks.append(dict(type='mmltm.CheckpointGuardHook'))
    cfg.default_hooks.checkpoint.interval = 1
    cfg.default_hooks.checkpoint.max_keep_ckpts = 3
    cfg.default_hooks.logger.interval = 1
    return cfg


class _Killed(Exception):
    pass


def _kill_at(runner, epoch, iteration):
    """Make the run die at ``(epoch, iteration)``, as a killed job would."""
    from mmengine.hooks import Hook

    class Kill(Hook):

        def before_train_iter(self, runner, batch_idx, data_batch=None):
            if runner.epoch == epoch and runner.iter == iteration:
                raise _Killed()

    runner.register_hook(Kill(), priority='HIGHEST')


def _losses(runner):
    return list(runner.message_hub.get_scalar('train/loss').data[0])


@pytest.fixture(scope='module')
def uninterrupted(toy_imagenet, tmp_path_factory):
    install_checkpoint_fix()
    init_default_scope('mmpretrain')
    work_dir = tmp_path_factory.mktemp('uninterrupted')
    runner = Runner.from_cfg(small_toy_cfg(work_dir, toy_imagenet))
    runner.train()
    return work_dir, runner, _losses(runner)


def test_killed_and_resumed_run_equals_uninterrupted(
        uninterrupted, toy_imagenet, tmp_path, caplog):
    """Killed in epoch 2 after epoch_2.pth was written, and epoch_2.pth is
    then truncated (a kill during the save without atomic writes): --resume
    names it, resumes from epoch_1.pth, and all 6 losses equal those of the
    uninterrupted run."""
    _, full_runner, full = uninterrupted
    assert len(full) == 6 and len(set(full)) == 6
    # the IB hook's ib_grad_ratio (measured each epoch) leaves the RNG alone
    ratios = list(full_runner.message_hub.get_scalar(
        'train/ib_grad_ratio').data[0])
    assert len(ratios) == 3 and ratios[0] == 0.0 and ratios[1] > 0

    init_default_scope('mmpretrain')
    runner = Runner.from_cfg(small_toy_cfg(tmp_path, toy_imagenet))
    _kill_at(runner, epoch=2, iteration=4)
    with pytest.raises(_Killed):
        runner.train()
    last = tmp_path / 'epoch_2.pth'
    assert (tmp_path / 'last_checkpoint').read_text() == str(last)
    # the checkpoint hook wrote through the atomic backend, leaving no temp
    ckpt_hook = [h for h in runner.hooks
                 if type(h).__name__ == 'CheckpointHook'][0]
    assert ckpt_hook.backend_args == dict(backend=ATOMIC_BACKEND)
    assert not [n for n in os.listdir(tmp_path) if n.endswith('.tmp')]
    size = last.stat().st_size
    with open(last, 'r+b') as handle:
        handle.truncate(size // 2)

    init_default_scope('mmpretrain')
    cfg = small_toy_cfg(tmp_path, toy_imagenet)
    cfg.resume = True
    cfg.log_level = 'INFO'
    resumed = Runner.from_cfg(cfg)
    resumed.train()
    log = (tmp_path / resumed.timestamp / f'{resumed.timestamp}.log'
           ).read_text()
    assert (f'CheckpointGuardHook: skipping unreadable checkpoint {last} '
            '(') in log
    assert (f'resuming from {tmp_path / "epoch_1.pth"}, the newest readable '
            'checkpoint') in log
    assert 'resumed epoch: 1, iter: 2' in log
    assert 'restored the python, numpy and torch RNG states' in log
    again = _losses(resumed)
    assert len(again) == 6
    torch.testing.assert_close(
        torch.tensor(again), torch.tensor(full), rtol=0, atol=1e-6)


def test_without_rng_restore_the_resumed_losses_differ(
        uninterrupted, toy_imagenet):
    """The check above can fail: resuming the uninterrupted run's
    epoch_2.pth with the RNG restore switched off draws other augmentations
    and gives another last-epoch loss."""
    work_dir, _, full = uninterrupted
    init_default_scope('mmpretrain')
    cfg = small_toy_cfg(work_dir, toy_imagenet)
    cfg.custom_hooks[-1]['restore_rng'] = False
    cfg.resume = True
    cfg.load_from = str(work_dir / 'epoch_2.pth')
    cfg.work_dir = str(work_dir / 'no_rng')
    runner = Runner.from_cfg(cfg)
    runner.train()
    again = _losses(runner)
    assert again[:4] == full[:4]  # from the checkpoint's message hub
    assert max(abs(a - b) for a, b in zip(again[4:], full[4:])) > 1e-4


def test_explicit_unreadable_resume_names_the_file(toy_imagenet, tmp_path,
                                                   in_repo):
    bad = tmp_path / 'iter_3.pth'
    bad.write_text('not a checkpoint\n')
    with pytest.raises(UnreadableCheckpointError) as err:
        train_main([TOY_CLS, '--work-dir', str(tmp_path),
                                 '--resume', str(bad)])
    msg = str(err.value)
    assert msg.startswith(f'cannot resume from {bad}: ')
    assert 'resume from the newest readable checkpoint' in msg


def test_text_file_as_checkpoint_names_the_path(toy_imagenet, tmp_path,
                                                in_repo):
    text = tmp_path / 'weights.pth'
    text.write_text('hello, I am no checkpoint\n')
    install_checkpoint_fix()
    with pytest.raises(UnreadableCheckpointError,
                       match=r'^checkpoint .*weights\.pth \(26 bytes\) '
                       r'cannot be read: UnpicklingError: .*It is not a file '
                       r'written by torch\.save'):
        _load_checkpoint(str(text), map_location='cpu')
    # the same through tools/train.py (load_from); fails before training
    with pytest.raises(UnreadableCheckpointError, match=str(text)):
        train_main([
            TOY_CLS, '--work-dir',
            str(tmp_path), '--cfg-options', f'load_from={text}'
        ])


def _resnet18_like(path):
    g = torch.Generator().manual_seed(0)
    state = {
        'conv1.weight': torch.randn(64, 3, 7, 7, generator=g),
        'bn1.weight': torch.ones(64),
        'bn1.bias': torch.zeros(64),
        'layer1.0.conv1.weight': torch.randn(64, 64, 3, 3, generator=g),
        'layer4.1.conv2.weight': torch.randn(512, 512, 3, 3, generator=g),
        'fc.weight': torch.randn(1000, 512, generator=g),
        'fc.bias': torch.zeros(1000),
    }
    torch.save(state, str(path))


@pytest.mark.parametrize('partial', [False, True], ids=['strict', 'partial'])
def test_load_from_with_no_matching_key_is_an_error(toy_imagenet, tmp_path,
                                                    in_repo, partial):
    """A ResNet-18 state dict as load_from: nothing loads, so even
    --allow-partial-load refuses it, naming the keys."""
    ckpt = tmp_path / 'resnet18.pth'
    _resnet18_like(ckpt)
    argv = [TOY_CLS, '--work-dir', str(tmp_path),
            '--cfg-options', f'load_from={ckpt}']
    if partial:
        argv.append('--allow-partial-load')
    with pytest.raises(RuntimeError) as err:
        train_main(argv)
    msg = str(err.value)
    assert msg.startswith(f'checkpoint {ckpt} does not match the model of '
                          'this config (IBImageClassifier): ')
    assert 'keys are missing from it: [backbone.* (' in msg
    assert 'head.* (' in msg
    assert ('it has 7 keys the model does not: [bn1.* (2), conv1.* (1), '
            'fc.* (2), layer1.* (1), layer4.* (1)]') in msg
    assert 'fc.weight' in msg
    assert msg.endswith('Not one model key loads from it: is it a '
                        'checkpoint of another model?')


def test_partial_load_needs_the_flag(uninterrupted, tmp_path, in_repo):
    """A backbone-only checkpoint: an error naming the head keys without
    the flag; with --allow-partial-load (or allow_partial_load=True) the
    backbone loads and the missing keys are logged."""
    work_dir, _, _ = uninterrupted
    full = torch.load(work_dir / 'epoch_3.pth', weights_only=False)
    backbone = {k: v for k, v in full['state_dict'].items()
                if k.startswith('backbone.')}
    ckpt = tmp_path / 'backbone_only.pth'
    torch.save(dict(state_dict=backbone), str(ckpt))

    from mmengine.model import BaseModel
    init_default_scope('mmpretrain')
    cfg = Config.fromfile(str(REPO / TOY_CLS))
    from mmpretrain.registry import MODELS
    model = MODELS.build(cfg.model)
    assert isinstance(model, BaseModel)

    class FakeRunner:
        _resume = False
        _load_from = str(ckpt)

        def __init__(self, allow):
            self.model = model
            self.cfg = Config(dict(allow_partial_load=allow))

    checkpoint = torch.load(ckpt, weights_only=False)
    with pytest.raises(RuntimeError) as err:
        CheckpointGuardHook().after_load_checkpoint(FakeRunner(False),
                                                    checkpoint)
    msg = str(err.value)
    assert 'keys are missing from it: [head.* (' in msg
    assert 'backbone' not in msg.split('missing from it:')[1]
    assert 'pass --allow-partial-load (tools/train.py) or set ' \
           'allow_partial_load = True in the config' in msg
    # allowed on purpose: no error (the missing head keys are logged)
    CheckpointGuardHook().after_load_checkpoint(FakeRunner(True), checkpoint)
    CheckpointGuardHook(allow_partial_load=True).after_load_checkpoint(
        FakeRunner(False), checkpoint)
    with pytest.raises(ValueError, match="allow_partial_load='yes'"):
        CheckpointGuardHook().after_load_checkpoint(FakeRunner('yes'),
                                                    checkpoint)


def test_atomic_backend_keeps_the_old_file_when_a_write_fails(
        tmp_path, monkeypatch):
    target = tmp_path / 'iter_1.pth'
    backend = AtomicLocalBackend()
    backend.put(b'old checkpoint', target)
    assert target.read_bytes() == b'old checkpoint'

    def killed(src, dst):
        raise KeyboardInterrupt('killed while saving')

    monkeypatch.setattr(os, 'replace', killed)
    with pytest.raises(KeyboardInterrupt):
        backend.put(b'new, complete checkpoint', target)
    monkeypatch.undo()
    assert target.read_bytes() == b'old checkpoint'
    assert os.listdir(tmp_path) == ['iter_1.pth']  # no temp file left
    backend.put_text('new', tmp_path / 'last_checkpoint')
    assert (tmp_path / 'last_checkpoint').read_text() == 'new'


def test_newest_readable_checkpoint(tmp_path):
    for n in (1, 2, 10):
        torch.save(dict(meta=dict(iter=n), state_dict={}),
                   str(tmp_path / f'iter_{n}.pth'))
    (tmp_path / 'best_acc_iter_10.pth').write_text('x')  # never resumed
    assert newest_readable_checkpoint(str(tmp_path)) == (
        str(tmp_path / 'iter_10.pth'), [])
    (tmp_path / 'iter_10.pth').write_bytes(b'PK\x03\x04 truncated')
    chosen, skipped = newest_readable_checkpoint(str(tmp_path))
    assert chosen == str(tmp_path / 'iter_2.pth')
    assert len(skipped) == 1
    assert skipped[0].startswith(f'{tmp_path / "iter_10.pth"} (')
    # last_checkpoint's target comes first, even if it is older
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'iter_1.pth'))
    assert newest_readable_checkpoint(str(tmp_path))[0] == str(
        tmp_path / 'iter_1.pth')
    assert newest_readable_checkpoint(str(tmp_path / 'none')) == (None, [])
    assert not osp.exists(tmp_path / 'none')


# ------------------------------------------- a tiny mmengine-only runner
class _NoisyData(torch.utils.data.Dataset):
    """Augmentation from python's and numpy's global RNGs."""

    def __len__(self):
        return 8

    def __getitem__(self, i):
        import random

        import numpy as np
        x = torch.full((4, ), float(i)) + np.random.rand() + random.random()
        return dict(inputs=x / 8, target=torch.tensor(float(i % 2)))


def _tiny_runner(work_dir, by_epoch, name, resume=False, kill=None,
                 guard=True, load_from=None):
    from mmengine.hooks import Hook
    from mmengine.model import BaseModel

    class Tiny(BaseModel):
        """Dropout and noise: torch's global RNG."""

        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(4, 1)
            self.drop = torch.nn.Dropout(0.5)

        def forward(self, inputs, target, mode='tensor'):
            out = self.fc(self.drop(inputs)).squeeze(1)
            out = out + 0.1 * torch.randn(inputs.shape[0])
            if mode == 'loss':
                return dict(loss=((out - target)**2).mean())
            return [out]

    class Kill(Hook):

        def before_train_iter(self, runner, batch_idx, data_batch=None):
            if runner.iter == kill:
                raise _Killed()

    from mmengine.evaluator import BaseMetric

    class Count(BaseMetric):
        default_prefix = 'count'

        def process(self, data_batch, data_samples):
            self.results.append(1)

        def compute_metrics(self, results):
            return dict(n=len(results))

    torch.manual_seed(0)  # the model is built before the Runner seeds
    hooks = [CheckpointGuardHook()] if guard else []
    if kill is not None:
        hooks.append(Kill())
    loader = dict(dataset=_NoisyData(),
                  sampler=dict(type='DefaultSampler', shuffle=True),
                  batch_size=2, num_workers=0,
                  collate_fn=dict(type='default_collate'))
    train_cfg = (dict(by_epoch=True, max_epochs=4, val_interval=1)
                 if by_epoch else
                 dict(by_epoch=False, max_iters=16, val_interval=3))
    return Runner(
        model=Tiny(), work_dir=str(work_dir), train_dataloader=loader,
        val_dataloader=loader, val_evaluator=[Count()], val_cfg=dict(),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
        train_cfg=train_cfg,
        default_hooks=dict(
            checkpoint=dict(type='CheckpointHook', by_epoch=by_epoch,
                            interval=1 if by_epoch else 4)),
        log_processor=dict(by_epoch=by_epoch), custom_hooks=hooks,
        randomness=dict(seed=0), experiment_name=name, resume=resume,
        load_from=load_from, log_level='WARNING')


@pytest.mark.parametrize('by_epoch', [True, False], ids=['epoch', 'iter'])
def test_resume_is_exact_for_epoch_and_iteration_loops(tmp_path, by_epoch):
    """16 iterations with python/numpy augmentation, dropout and torch
    noise, validation in between; killed at iteration 10 and resumed from
    the checkpoint of iteration 8: the 16 losses are bit-identical. Without
    the RNG restore they are not."""
    install_checkpoint_fix()
    kind = 'epoch' if by_epoch else 'iter'
    full = _tiny_runner(tmp_path / 'a', by_epoch, f'a_{kind}')
    full.train()
    expected = _losses(full)
    killed = _tiny_runner(tmp_path / 'b', by_epoch, f'b_{kind}', kill=10)
    with pytest.raises(_Killed):
        killed.train()
    resumed = _tiny_runner(tmp_path / 'b', by_epoch, f'c_{kind}',
                           resume=True)
    resumed.train()
    assert resumed.iter == 16 and len(expected) == 16
    assert _losses(resumed) == expected
    ckpt = 'epoch_2.pth' if by_epoch else 'iter_8.pth'
    plain = _tiny_runner(tmp_path / 'n', by_epoch, f'n_{kind}', resume=True,
                         guard=False, load_from=str(tmp_path / 'a' / ckpt))
    plain.train()
    other = _losses(plain)
    assert other[:8] == expected[:8]
    assert max(abs(a - b) for a, b in zip(other[8:], expected[8:])) > 1e-3
