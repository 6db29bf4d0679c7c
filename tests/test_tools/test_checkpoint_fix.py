"""The torch >= 2.6 checkpoint-loading fix (mmltm.engine.checkpoint)."""
import pickle

import numpy as np
import pytest
import torch
from mmengine.logging import MessageHub
from mmengine.runner import CheckpointLoader
from mmengine.runner.checkpoint import (_load_checkpoint, load_from_http,
                                        save_checkpoint)
from mmengine.utils import digit_version

import mmltm  # noqa: F401
from mmltm.engine import (UnreadableCheckpointError, checkpoint_fix_installed,
                          install_checkpoint_fix, uninstall_checkpoint_fix)
from mmltm.engine.checkpoint import load_from_local

# ``import mmltm`` does not install it (tests/test_engine checks that in a
# fresh process); the tools and this module install it explicitly
install_checkpoint_fix()

TORCH_RESTRICTS = digit_version(torch.__version__) >= digit_version('2.6.0')


def _runner_like_checkpoint(path):
    """What mmengine's Runner writes: tensors plus a meta with a
    message-hub state (HistoryBuffer objects) and numpy values."""
    hub = MessageHub.get_instance('mmltm_test_checkpoint_fix')
    hub.update_scalar('train/loss', 0.5)
    hub.update_info('iter', 7)
    save_checkpoint(
        dict(
            meta=dict(iter=7, seed=np.int64(3), message_hub=hub.state_dict()),
            state_dict=dict(weight=torch.arange(4.))), str(path))


def test_fix_installed_by_explicit_call():
    uninstall_checkpoint_fix()
    try:
        assert not checkpoint_fix_installed()
    finally:
        install_checkpoint_fix()
    assert CheckpointLoader._get_checkpoint_loader(
        'work_dirs/x/iter_2.pth') is load_from_local
    # idempotent
    install_checkpoint_fix()
    assert checkpoint_fix_installed()


def test_truncated_checkpoint_names_the_file(tmp_path):
    path = tmp_path / 'iter_7.pth'
    _runner_like_checkpoint(path)
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])
    with pytest.raises(UnreadableCheckpointError) as err:
        _load_checkpoint(str(path), map_location='cpu')
    msg = str(err.value)
    assert msg.startswith(f'checkpoint {path} ({len(data) // 2} bytes) '
                          'cannot be read: RuntimeError: ')
    assert 'truncated / corrupt' in msg


def test_local_runner_checkpoint_loads(tmp_path):
    path = tmp_path / 'iter_7.pth'
    _runner_like_checkpoint(path)
    ckpt = _load_checkpoint(str(path), map_location='cpu')
    assert ckpt['meta']['iter'] == 7
    assert int(ckpt['meta']['seed']) == 3
    assert torch.equal(ckpt['state_dict']['weight'], torch.arange(4.))
    hub = ckpt['meta']['message_hub']
    assert hub['runtime_info']['iter'] == 7


@pytest.mark.skipif(not TORCH_RESTRICTS, reason='torch < 2.6 loads all')
def test_mmengine_alone_fails_without_fix(tmp_path):
    """The trap the fix exists for: mmengine 0.10.7 + torch >= 2.6."""
    path = tmp_path / 'iter_7.pth'
    _runner_like_checkpoint(path)
    uninstall_checkpoint_fix()
    try:
        assert not checkpoint_fix_installed()
        with pytest.raises(pickle.UnpicklingError, match='weights_only'):
            _load_checkpoint(str(path), map_location='cpu')
    finally:
        install_checkpoint_fix()
    assert checkpoint_fix_installed()


def test_missing_file_and_remote_schemes(tmp_path):
    with pytest.raises(FileNotFoundError, match='nope.pth'):
        _load_checkpoint(str(tmp_path / 'nope.pth'))
    # URLs keep mmengine's loader (torch's safe default)
    assert CheckpointLoader._get_checkpoint_loader(
        'https://example.com/a.pth') is load_from_http
