"""Config preparation of tools/train.py and tools/test.py (fast, no
training): task from default_scope, CPU-only distributed settings, AMP,
resume and work_dir choices."""
from pathlib import Path

import pytest
from mmengine.config import Config

from mmltm.engine import prepare_runner_cfg, task_of_config
from mmltm.engine import runner_utils

REPO = Path(__file__).resolve().parents[2]
TOY = 'configs/toy/upernet_swin_t_toy.py'


def load(path=TOY):
    return Config.fromfile(str(REPO / path))


def test_task_of_config():
    assert task_of_config(load()) == 'mmseg'
    assert task_of_config(load('configs/toy/mask_rcnn_swin_t_toy.py')) == \
        'mmdet'
    cfg = load()
    cfg.default_scope = 'mmocr'
    with pytest.raises(ValueError, match="default_scope='mmocr'.*mmdet"):
        task_of_config(cfg)


def test_work_dir_resume_and_load_from():
    cfg = prepare_runner_cfg(load(), config_path=TOY)
    assert cfg.work_dir == './work_dirs/upernet_swin_t_toy'
    assert cfg.launcher == 'none' and not cfg.resume
    cfg = prepare_runner_cfg(
        load(), config_path=TOY, work_dir='w', resume='auto')
    assert cfg.work_dir == 'w' and cfg.resume and cfg.load_from is None
    cfg = prepare_runner_cfg(load(), config_path=TOY, resume='w/iter_2.pth')
    assert cfg.resume and cfg.load_from == 'w/iter_2.pth'
    cfg = prepare_runner_cfg(
        load(), config_path=TOY, load_from='c.pth', training=False)
    assert cfg.load_from == 'c.pth' and not cfg.resume


def test_cpu_distributed_settings(monkeypatch):
    monkeypatch.setattr(runner_utils, '_cuda_usable', lambda: False)
    cfg = prepare_runner_cfg(load(), config_path=TOY, launcher='pytorch')
    assert cfg.env_cfg.dist_cfg.backend == 'gloo'
    assert cfg.model_wrapper_cfg.type == 'MMDistributedDataParallel'
    assert cfg.model_wrapper_cfg.device_ids is None
    # one process: nothing to change
    cfg = prepare_runner_cfg(load(), config_path=TOY)
    assert cfg.env_cfg.dist_cfg.backend == 'nccl'
    assert 'model_wrapper_cfg' not in cfg
    # with CUDA mmengine's defaults stay
    monkeypatch.setattr(runner_utils, '_cuda_usable', lambda: True)
    cfg = prepare_runner_cfg(load(), config_path=TOY, launcher='pytorch')
    assert cfg.env_cfg.dist_cfg.backend == 'nccl'


def test_amp(monkeypatch):
    monkeypatch.setattr(runner_utils, '_cuda_usable', lambda: True)
    cfg = prepare_runner_cfg(load(), config_path=TOY, amp=True)
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
    assert cfg.optim_wrapper.loss_scale == 'dynamic'
    monkeypatch.setattr(runner_utils, '_cuda_usable', lambda: False)
    with pytest.raises(RuntimeError, match='optim_wrapper.type=OptimWrapper'):
        prepare_runner_cfg(load(), config_path=TOY, amp=True)
    # an AMP config can still be evaluated on CPU
    amp_cfg = load('configs/mask_rcnn_swin_t_3x_coco.py')
    assert amp_cfg.optim_wrapper.type == 'AmpOptimWrapper'
    prepare_runner_cfg(
        amp_cfg, config_path='x.py', load_from='c.pth', training=False)


def test_train_tool_adds_the_checkpoint_guard_once():
    import runpy
    add_guard_hook = runpy.run_path(str(REPO / 'tools' / 'train.py'))[
        'add_guard_hook']
    from mmltm.engine.hooks import CheckpointGuardHook
    cfg = load()
    before = list(cfg.get('custom_hooks') or [])
    add_guard_hook(cfg)
    assert cfg.custom_hooks[:-1] == before
    assert cfg.custom_hooks[-1] == dict(type='mmltm.CheckpointGuardHook')
    add_guard_hook(cfg)
    assert len(cfg.custom_hooks) == len(before) + 1
    for listed in ('CheckpointGuardHook', CheckpointGuardHook):
        cfg = load()
        cfg.custom_hooks = [dict(type=listed, allow_partial_load=True)]
        add_guard_hook(cfg)
        assert cfg.custom_hooks == [dict(type=listed,
                                         allow_partial_load=True)]


def test_init_mask_modules_lets_only_mask_module_keys_be_missing():
    """A checkpoint trained without merging (no mask-module keys) fits an
    LTM backbone under ``init_mask_modules`` only; any other missing key
    still fails, and without the flag nothing may be missing."""
    import torch.nn as nn

    from mmltm.models.backbones import LTMVisionTransformer
    backbone = LTMVisionTransformer(arch='deit-tiny', img_size=32, patch_size=16,
                                    compression_ratio=0.5)
    model = nn.ModuleDict(dict(backbone=backbone))
    state = {k: v for k, v in model.state_dict().items() if 'token_merger' not in k}
    mask_keys = set(model.state_dict()) - set(state)
    assert mask_keys and all('.token_merger.' in k for k in mask_keys)
    with pytest.raises(RuntimeError, match='token_merger'):
        runner_utils.compare_state_dict_keys(model, state, 'baseline.pth')
    runner_utils.compare_state_dict_keys(model, state, 'baseline.pth',
                                         init_mask_modules=True)
    first = next(k for k in state if k.startswith('backbone.patch_embed'))
    state.pop(first)
    with pytest.raises(RuntimeError, match=r'1 of the model.*' + first.replace('.', r'\.')):
        runner_utils.compare_state_dict_keys(model, state, 'baseline.pth',
                                             init_mask_modules=True)


def test_close_dist_destroys_the_group(free_port):
    import torch.distributed as dist
    runner_utils.close_dist()  # no group: nothing to do
    assert not dist.is_initialized()
    dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{free_port}',
                            rank=0, world_size=1)
    assert dist.is_initialized()
    runner_utils.close_dist()
    assert not dist.is_initialized()


@pytest.mark.parametrize('tool', ['train', 'test'])
@pytest.mark.parametrize('outcome', ['returns', 'raises'])
def test_tools_close_the_process_group(tool, outcome, monkeypatch, tmp_path,
                                       free_port):
    """``--launcher pytorch`` on CPU: the tool trains / tests inside the gloo
    group it made, and destroys the group when the run ends, returned or
    raised (a group left to the interpreter's exit can abort a finished run;
    see close_dist)."""
    import runpy

    import mmengine.runner
    import torch.distributed as dist
    monkeypatch.setattr(runner_utils, '_cuda_usable', lambda: False)
    for key, value in dict(RANK='0', LOCAL_RANK='0', WORLD_SIZE='1',
                           MASTER_ADDR='127.0.0.1',
                           MASTER_PORT=str(free_port)).items():
        monkeypatch.setenv(key, value)
    seen = {}

    class FakeRunner:
        model = None

        @classmethod
        def from_cfg(cls, cfg):
            return cls()

        def run(self):
            seen['world_size'] = dist.get_world_size()
            seen['backend'] = dist.get_backend()
            if outcome == 'raises':
                raise RuntimeError('the run failed')
            return {}

        train = test = run

    monkeypatch.setattr(mmengine.runner, 'Runner', FakeRunner)
    main = runpy.run_path(str(REPO / 'tools' / f'{tool}.py'))['main']
    # no data and no checkpoint: the fake runner reads neither
    for name in ('check_data_roots', 'check_checkpoint_keys'):
        monkeypatch.setitem(main.__globals__, name, lambda *a, **k: None)
    checkpoint = tmp_path / 'ckpt.pth'  # read by the fake runner: never
    checkpoint.write_bytes(b'')
    argv = [TOY, *([str(checkpoint)] if tool == 'test' else []),
            '--work-dir', str(tmp_path), '--launcher', 'pytorch']
    if outcome == 'raises':
        with pytest.raises(RuntimeError, match='the run failed'):
            main(argv)
    else:
        main(argv)
    assert seen == dict(world_size=1, backend='gloo')
    assert not dist.is_initialized()


def test_runner_for_builds_the_configs_runner_type():
    """A config's ``runner_type`` is built from mmengine's RUNNERS registry
    (with the whole config), not replaced by the default Runner."""
    from mmengine.registry import RUNNERS

    @RUNNERS.register_module(name='MmltmTestRunner', force=True)
    class RecordingRunner:

        def __init__(self, cfg):
            self.cfg = cfg

        @classmethod
        def from_cfg(cls, cfg):
            return cls(cfg)

    cfg = prepare_runner_cfg(load(), config_path=TOY)
    cfg.runner_type = 'MmltmTestRunner'
    with runner_utils.runner_for(cfg) as runner:
        assert isinstance(runner, RecordingRunner)
        assert runner.cfg.work_dir == './work_dirs/upernet_swin_t_toy'
