"""mmltm.analysis.merging_stats and tools/analysis_tools/merging_stats.py:
how much the merging depends on the image (issue 12's acceptance), with
random weights and on a trained toy checkpoint."""
import subprocess
import sys
from pathlib import Path
from typing import List

import pytest
import torch
import torch.nn.functional as F

import mmltm  # noqa: F401  (registers the backbones)
from mmltm.analysis.merging_stats import assignment_stats, format_assignment_stats
from mmltm.registry import MODELS

REPO = Path(__file__).resolve().parents[2]
SHAPES_LTM = 'configs/toy/ltm_swin_t_shapes_toy.py'
MOBILEVIT_LTM = 'configs/toy/ltm_mobilevit_xs_in1k_toy.py'
TOOL = 'tools/analysis_tools/merging_stats.py'
SMALL_SWIN = dict(type='LTMSwinTransformer', embed_dims=32, depths=(2, 2, 2, 2),
                  num_heads=(1, 2, 4, 8))


def two_images(size: int = 224) -> torch.Tensor:
    torch.manual_seed(0)
    layout = F.interpolate(torch.randn(2, 3, 8, 8), size=(size, size), mode='bilinear',
                           align_corners=False)
    return layout + F.avg_pool2d(torch.randn(2, 3, size + 8, size + 8), 9, 1)


def test_fixed_grid_changes_nothing_and_the_learned_mask_moves_tokens():
    torch.manual_seed(0)
    grid_rows = assignment_stats(MODELS.build(dict(SMALL_SWIN, merge_mode='grid')),
                                 two_images())
    # 56, 28, 14, 7: every stage merges at the default ratio, both blocks
    assert [(r['stage'], r['block']) for r in grid_rows] == [
        (s, b) for s in range(4) for b in range(2)]
    assert all(r['changed'] == 0 and r['crossed'] == 0 for r in grid_rows)
    torch.manual_seed(0)
    ltm_rows = assignment_stats(MODELS.build(SMALL_SWIN), two_images())
    assert len(ltm_rows) == 8
    assert min(r['changed'] for r in ltm_rows) > 0.05, format_assignment_stats(ltm_rows)
    assert min(r['crossed'] for r in ltm_rows) > 0.05
    assert ltm_rows[0]['grid'] == (56, 56) and ltm_rows[0]['merged_grid'] == (46, 48)
    text = format_assignment_stats(ltm_rows)
    assert '| 0 | 0 | 56x56 -> 46x48 |' in text


def test_stats_need_exactly_two_images():
    model = MODELS.build(SMALL_SWIN)
    with pytest.raises(ValueError, match=r'expected two images'):
        assignment_stats(model, torch.zeros(3, 3, 64, 64))


def shapes_pair() -> List[str]:
    """Two toy shapes validation images of different classes."""
    from mmltm.datasets.toy import ensure_toy_data
    ensure_toy_data(str(REPO / 'data' / 'toy'), which='shapes')
    images = sorted(str(p) for p in (REPO / 'data' / 'toy' / 'shapes' / 'val').rglob('*.png'))
    return [images[0], next(p for p in images if Path(p).parent != Path(images[0]).parent)]


def test_tool_calibrates_batch_norm_of_random_weights_only(tmp_path, load_tool):
    tool = load_tool(TOOL)
    pair = shapes_pair()
    # random-weight MobileViT: the initial BatchNorm statistics hide the
    # image from the last stage; those of the two images bring it back
    raw = tool.main([MOBILEVIT_LTM, 'none', *pair, '--size', '256'])
    assert min(r['changed'] for r in raw if r['stage'] == 4) < 0.10, \
        format_assignment_stats(raw)
    rows = tool.main([MOBILEVIT_LTM, 'none', *pair, '--size', '256', '--calibrate-bn'])
    assert len(rows) == 9  # the 2 + 4 + 3 transformer layers of MobileViT-XS
    assert min(r['changed'] for r in rows) >= 0.10, format_assignment_stats(rows)
    with pytest.raises(ValueError, match=r'--calibrate-bn .* CHECKPOINT=none only'):
        tool.main([MOBILEVIT_LTM, str(tmp_path / 'a.pth'), *pair, '--calibrate-bn'])


@pytest.mark.parametrize('config,options,checkpoint,size,blocks', [
    # one epoch of the toy shapes classification (24 updates of LTM-Swin-T
    # at 64 x 64), no validation
    (SHAPES_LTM, ['train_cfg.max_epochs=1', 'train_cfg.val_interval=2',
                  'default_hooks.checkpoint.interval=1'], 'epoch_1.pth', '224', 4),
    # the toy ImageNet schedule of LTM-MobileViT-XS (10 epochs of 6 updates
    # at 112 x 112, ~30 s), at its own size and at 256 x 256
    (MOBILEVIT_LTM, ['train_cfg.val_interval=11'], 'epoch_10.pth', '112 256', 9),
])
def test_trained_toy_checkpoint_still_merges_by_image(tmp_path, load_tool, config, options,
                                                      checkpoint, size, blocks):
    """A trained toy checkpoint, then the tool on two shapes validation
    images: every merging block sends >= 10 % of the tokens to a different
    merged token for the two images (issue 12), and the trained mask still
    differs from the fixed grid."""
    from mmltm.datasets.toy import ensure_toy_data
    ensure_toy_data(str(REPO / 'data' / 'toy'), which=('shapes', 'imagenet'))
    work_dir = tmp_path / 'run'
    proc = subprocess.run(
        [sys.executable, 'tools/train.py', config, '--work-dir', str(work_dir),
         '--cfg-options', *options],
        cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    assert (work_dir / checkpoint).is_file()
    tool = load_tool(TOOL)
    pair = shapes_pair()
    for side in size.split():
        rows = tool.main([config, str(work_dir / checkpoint), *pair, '--size', side])
        assert len(rows) >= blocks, format_assignment_stats(rows)
        assert min(r['changed'] for r in rows) >= 0.10, format_assignment_stats(rows)
        assert min(r['crossed'] for r in rows) >= 0.10, format_assignment_stats(rows)
