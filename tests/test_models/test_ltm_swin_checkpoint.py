"""Loading Swin checkpoints into LTM-Swin, and tools/model_converters/swin2ltm.py."""
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from mmdet.models.backbones import SwinTransformer

from mmltm.models.backbones import LTMSwinTransformer

REPO = Path(__file__).resolve().parents[2]
SMALL = dict(embed_dims=32, depths=(2, 2, 2, 2), num_heads=(1, 2, 4, 8))


@pytest.fixture()
def mmdet_swin_ckpt(tmp_path):
    """A checkpoint as mmdet saves a detector: 'backbone.'-prefixed keys."""
    torch.manual_seed(1)
    base = SwinTransformer(**SMALL)
    base.init_weights()
    state = {f'backbone.{k}': v for k, v in base.state_dict().items()}
    state['neck.lateral_convs.0.conv.weight'] = torch.zeros(1)
    path = tmp_path / 'mask_rcnn_swin.pth'
    torch.save({'state_dict': state, 'meta': {'epoch': 12}}, path)
    return path, base


def test_mmdet_checkpoint_loads_with_only_merger_keys_missing(mmdet_swin_ckpt):
    path, base = mmdet_swin_ckpt
    ltm = LTMSwinTransformer(**SMALL, init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    ltm.init_weights()
    own = ltm.state_dict()
    for k, v in base.state_dict().items():
        assert torch.equal(own[k], v), k
    # through mmengine's generic loader (as a Runner does): no unexpected keys
    ltm2 = LTMSwinTransformer(**SMALL)
    result = ltm2.load_state_dict(base.state_dict(), strict=False)
    assert result.unexpected_keys == []
    assert all('token_merger' in k for k in result.missing_keys)


def test_checkpoint_of_another_model_is_a_clear_error(tmp_path):
    path = tmp_path / 'resnet.pth'
    torch.save({'state_dict': {'backbone.conv1.weight': torch.zeros(64, 3, 7, 7)}}, path)
    ltm = LTMSwinTransformer(**SMALL, init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    with pytest.raises(ValueError, match=r'does not match LTMSwinTransformer: \d+ parameter\(s\) missing'):
        ltm.init_weights()


def test_wrong_width_checkpoint_names_the_shape_mismatch(mmdet_swin_ckpt, tmp_path):
    path, _ = mmdet_swin_ckpt
    ltm = LTMSwinTransformer(embed_dims=64, depths=(2, 2, 2, 2), num_heads=(2, 4, 8, 16),
                             init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    with pytest.raises(ValueError, match=r'wrong shape \(e\.g\. patch_embed'):
        ltm.init_weights()


def test_swin2ltm_converter_reports_and_output_loads_strictly(mmdet_swin_ckpt, tmp_path):
    path, base = mmdet_swin_ckpt
    out = tmp_path / 'ltm.pth'
    proc = subprocess.run([sys.executable, 'tools/model_converters/swin2ltm.py', str(path), str(out)],
                          cwd=REPO, capture_output=True, text=True, check=True)
    assert 'source format: openmmlab' in proc.stdout
    # the mask-module entries of a freshly built LTM-Swin of these sizes:
    # proj and log_step per block
    fresh = LTMSwinTransformer(**SMALL)
    mask_keys = [k for k in fresh.state_dict() if 'token_merger' in k]
    assert len(mask_keys) == 2 * sum(len(s.blocks) for s in fresh.stages)
    assert f'added: {len(mask_keys)} token-merger parameters' in proc.stdout
    assert 'dropped: 1 keys' in proc.stdout and 'neck.lateral_convs.0.conv.weight' in proc.stdout
    state = torch.load(out, weights_only=True)['state_dict']
    ltm = LTMSwinTransformer(**SMALL)
    ltm.load_state_dict({k[len('backbone.'):]: v for k, v in state.items()}, strict=True)
    merger = ltm.stages[0].blocks[0].token_merger
    assert merger.step.item() == pytest.approx(1.0, rel=1e-6)  # the default eta


def test_swin2ltm_converts_official_layout(tmp_path):
    # an official-release-like state dict: layers.*, attn.qkv, mlp.fc1, head
    base = SwinTransformer(**SMALL)
    from mmdet.models.backbones.swin import swin_converter
    official = {
        'patch_embed.proj.weight': torch.zeros(32, 3, 4, 4),
        'layers.0.blocks.0.attn.qkv.weight': torch.zeros(96, 32),
        'layers.0.blocks.0.mlp.fc1.weight': torch.zeros(128, 32),
        'head.weight': torch.zeros(1000, 256),
    }
    assert swin_converter(official)  # mmdet's converter understands it
    src = tmp_path / 'official.pth'
    torch.save({'model': official}, src)
    proc = subprocess.run([sys.executable, 'tools/model_converters/swin2ltm.py', str(src),
                           str(tmp_path / 'o.pth')], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert 'source format: official' in proc.stdout
    assert 'backbone.stages.0.blocks.0.token_merger.log_step' in proc.stdout
    assert 'head.weight' in proc.stdout
    del base


def test_swin2ltm_rejects_missing_and_non_swin_files(tmp_path):
    bad = tmp_path / 'x.pth'
    torch.save({'foo': torch.zeros(1)}, bad)
    for src in (tmp_path / 'missing.pth', bad):
        proc = subprocess.run([sys.executable, 'tools/model_converters/swin2ltm.py', str(src),
                               str(tmp_path / 'o.pth')], cwd=REPO, capture_output=True, text=True)
        assert proc.returncode != 0
        assert ('not found' in proc.stderr) or ('no Swin keys' in proc.stderr)
