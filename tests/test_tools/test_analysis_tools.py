"""tools/analysis_tools: benchmark, sweep_ratio, visualize_merging.

These check that the tools run and report what they claim (tables, CSV,
PNG, JSON, FLOP counts), on the toy configs at tiny sizes with 2 runs; they
say nothing about speed.
"""
import csv
import importlib.util
import json
import math
import os.path as osp
import sys

import numpy as np
import pytest
import torch

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOLS = osp.join(REPO, 'tools', 'analysis_tools')
TOY = osp.join(REPO, 'configs', 'toy')
CLS_LTM, CLS_BASE = osp.join(TOY, 'ltm_swin_t_in1k_toy.py'), osp.join(TOY, 'swin_t_in1k_toy.py')
DET_LTM, DET_BASE = (osp.join(TOY, 'mask_rcnn_ltm_swin_t_toy.py'),
                     osp.join(TOY, 'mask_rcnn_swin_t_toy.py'))


def _tool(name):
    key = f'mmltm_test_tool_{name}'
    if key not in sys.modules:
        spec = importlib.util.spec_from_file_location(key, osp.join(TOOLS, f'{name}.py'))
        module = importlib.util.module_from_spec(spec)
        sys.modules[key] = module
        spec.loader.exec_module(module)
    return sys.modules[key]


@pytest.fixture(scope='module')
def bm():
    return _tool('benchmark')


def test_parse_size(bm):
    assert bm.parse_size('224') == (224, 224)
    assert bm.parse_size('800x1333') == (800, 1333)
    for bad in ('0', 'axb', '1x2x3', '-4'):
        with pytest.raises(ValueError, match='give S or HxW'):
            bm.parse_size(bad)


class _BlockOnly(torch.nn.Module):
    def __init__(self, block, hw):
        super().__init__()
        self.block, self.hw = block, hw

    def forward(self, x):
        return self.block(x, self.hw)[0]


@pytest.mark.parametrize('mode', ['ltm', 'tome'])
def test_flop_count_of_one_block_matches_a_hand_count(bm, mode):
    from mmltm.models.backbones import LTMSwinTransformer
    from mmltm.ops import plan_merge_grid
    C, ratio, (h, w), ws = 32, 0.7, (14, 14), 7
    backbone = LTMSwinTransformer(embed_dims=C, depths=(1, ), num_heads=(2, ), strides=(4, ),
                                  out_indices=(0, ), compression_ratio=ratio,
                                  merge_mode=mode).eval()
    block = backbone.stages[0].blocks[0]
    N = h * w
    n_merged = (math.ceil(ratio * N) if mode == 'tome' else
                math.prod(plan_merge_grid(h, w, ratio)))
    flops = bm.count_flops(_BlockOnly(block, (h, w)), torch.randn(1, N, C))
    # mmengine: LayerNorm 5 per element, Linear in*out per token, matmul
    # m*k*n; element-wise ops, softmax and the mask module's gathers count 0
    hand = (5 * N * C                      # norm1, all N tokens
            + N * C * 3 * C + N * C * C    # qkv, proj
            + 2 * N * ws * ws * C          # q k^T and attn v in 7x7 windows
            + 5 * n_merged * C             # norm2 on the merged tokens
            + 2 * n_merged * C * 4 * C)    # fc1, fc2 on the merged tokens
    if mode == 'tome':  # one round of matching: ceil(49/2) x floor(49/2) per tile
        hand += (N // (ws * ws)) * 25 * 24 * C
    assert flops == hand
    # and the counter does see the reduction: full FFN would be more
    assert flops < hand + 2 * (N - n_merged) * C * 4 * C


def test_benchmark_classifier_tables_json_and_overhead(bm, tmp_path, capsys):
    out = tmp_path / 'bench.json'
    result = bm.main([CLS_LTM, '--baseline', CLS_BASE, '--sizes', '64', '--batch', '1', '2',
                      '--runs', '2', '--warmup', '0', '--threads', '1', '--memory', 'none',
                      '--part', 'both', '--overhead', '--out-json', str(out)])
    text = capsys.readouterr().out
    assert '| part | size | batch | model |' in text and '| FLOPs ratio |' in text
    assert 'AMD' in text or 'Machine:' in text
    assert '1 threads' in text
    data = json.loads(out.read_text())
    recs = data['records']
    # 2 parts x 1 size x 2 batches x 2 models
    assert len(recs) == 8 and {r['role'] for r in recs} == {'ltm', 'baseline'}
    for r in recs:
        assert r['flops'] > 0 and r['params'] > 0 and len(r['times_s']) == 2
        assert r['latency']['median_ms'] > 0 and r['peak_mem_bytes'] is None
        assert f"| {r['part']} | 64x64 | {r['batch']} | {r['name']} |" in text
    assert len(data['ratios']) == 4
    for r in data['ratios']:
        assert 0.5 < r['flops_ratio'] < 1.0  # LTM counts fewer FLOPs
        assert r['latency_ratio'] > 0
        assert r['latency_over_flops'] == pytest.approx(r['latency_ratio'] / r['flops_ratio'])
    # the FLOP ratio is per image: the same for batch 1 and 2
    fr = {(r['part'], r['batch']): r['flops_ratio'] for r in data['ratios']}
    assert fr[('backbone', 1)] == pytest.approx(fr[('backbone', 2)])
    rows = data['overhead']
    keys = {'mask_merge_ms', 'unmerge_add_ms', 'ffn_merged_ms', 'ffn_full_ms', 'attn_ms'}
    assert rows and keys <= set(rows[0])
    assert rows[0]['N_merged'] < rows[0]['N']
    assert 0 < rows[0]['block_free_merge'] < 1.5
    assert 'overhead / FFN saving' in text and 'merging free' in text
    assert data['kernels'] in text and 'kernels' in data['kernels']
    # the whole-forward estimate: one row per size and batch, shares in (0, 1)
    bounds = data['bounds']
    assert [(b['size'], b['batch']) for b in bounds] == [('64x64', 1), ('64x64', 2)]
    for b in bounds:
        assert 0 < b['shrinking_share'] < 1 and b['blocks'] > 0
        assert 1 - b['shrinking_share'] < b['bound'] < 1
        assert b['flops_ratio'] == pytest.approx(fr[('backbone', b['batch'])])
    assert 'What merging can buy at best' in text


def test_benchmark_kernels_off_runs_the_reference_code(bm, monkeypatch):
    from mmltm.ops import fused
    monkeypatch.setenv('MMLTM_FUSED_OPS', '1')
    old = fused.set_fused_ops(True)
    try:
        result = bm.main([CLS_LTM, '--sizes', '64', '--runs', '1', '--warmup', '0',
                          '--threads', '1', '--memory', 'none', '--part', 'backbone',
                          '--kernels', 'off'])
        assert result['kernels'].startswith('off') and not fused.fused_ops_enabled()
    finally:
        fused.set_fused_ops(old)


def test_benchmark_detector_backbone_and_predict(bm, tmp_path):
    result = bm.main([DET_LTM, '--baseline', DET_BASE, '--sizes', '64x96', '--runs', '2',
                      '--warmup', '0', '--threads', '1', '--memory', 'none', '--part', 'both',
                      '--fix-proposals'])
    assert result['fixed_proposals']
    recs = {(r['part'], r['role']): r for r in result['records']}
    assert set(recs) == {(p, r) for p in ('backbone', 'model') for r in ('ltm', 'baseline')}
    dets = recs[('model', 'ltm')]['detections']
    assert dets and dets == recs[('model', 'baseline')]['detections']  # same head work
    assert recs[('model', 'ltm')]['flops'] > recs[('backbone', 'ltm')]['flops']
    # the detectors differ only in the backbone, and with --fix-proposals
    # their heads see as many boxes, so the whole-model saving is the
    # backbone's
    diff_model = recs[('model', 'baseline')]['flops'] - recs[('model', 'ltm')]['flops']
    diff_backbone = recs[('backbone', 'baseline')]['flops'] - recs[('backbone', 'ltm')]['flops']
    assert diff_backbone > 0
    assert diff_model == diff_backbone  # (64x96 is not padded: same grids)


def test_peak_memory_measures_a_known_allocation(bm):
    """A 64 MiB tensor measures as 64 MiB, in a fresh process with the
    environment the tool gives its CPU memory probes (in this long-lived
    test process freed memory may stay resident and be reused unseen)."""
    import subprocess
    script = (
        'import importlib.util, sys, torch\n'
        f'spec = importlib.util.spec_from_file_location("bm", {osp.join(TOOLS, "benchmark.py")!r})\n'
        'bm = importlib.util.module_from_spec(spec); spec.loader.exec_module(bm)\n'
        'def alloc():\n'
        '    t = torch.ones(64 * 2**20 // 4)\n'
        '    return float(t[-1])\n'
        'torch.ones(1024).sum()  # load the kernels before measuring\n'
        'print("PEAK_BYTES", bm.measure_peak_memory_here(alloc, "cpu"))\n')
    proc = subprocess.run([sys.executable, '-c', script], capture_output=True,
                          text=True, env=bm.memory_probe_env(2), timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    peak = int(proc.stdout.split('PEAK_BYTES')[-1])
    nbytes = 64 * 2**20
    assert 0.9 * nbytes <= peak <= 1.5 * nbytes


def test_interleaved_timing_alternates_order(bm):
    calls = []
    bm.time_interleaved([lambda: calls.append('a'), lambda: calls.append('b')], runs=3, warmup=1)
    assert calls == ['a', 'b', 'a', 'b', 'b', 'a', 'a', 'b']
    with pytest.raises(ValueError, match='runs=0'):
        bm.time_interleaved([lambda: None], runs=0, warmup=0)


def test_sweep_ratio_writes_csv_and_png(tmp_path, capsys):
    sweep = _tool('sweep_ratio')
    rows = sweep.main([CLS_LTM, '--ratios', '1.0', '0.6', '--modes', 'ltm', 'tome',
                       '--size', '64', '--runs', '2', '--warmup', '0', '--threads', '1',
                       '--out-dir', str(tmp_path)])
    text = capsys.readouterr().out
    with open(tmp_path / 'sweep.csv') as f:
        table = list(csv.DictReader(f))
    assert [(r['mode'], float(r['compression_ratio'])) for r in table] == \
        [('ltm', 1.0), ('ltm', 0.6), ('tome', 1.0), ('tome', 0.6)]
    for r in table:
        if float(r['compression_ratio']) == 1.0:
            assert float(r['flops_rel']) == pytest.approx(1.0)
            assert float(r['latency_rel']) == pytest.approx(1.0)
        else:
            assert float(r['flops_rel']) < 0.95 and float(r['latency_ms']) > 0
    png = tmp_path / 'sweep.png'
    assert png.stat().st_size > 10_000 and png.read_bytes()[:4] == b'\x89PNG'
    assert '| ltm | 0.60 |' in text and 'sweep.csv' in text
    with pytest.raises(SystemExit):
        sweep.parse_args([CLS_LTM, '--ratios', '1.5'])


def test_visualize_merging_draws_targets_and_heat_map(tmp_path, capsys):
    import cv2
    vis = _tool('visualize_merging')
    img = np.full((80, 120, 3), 220, np.uint8)
    cv2.circle(img, (40, 40), 25, (0, 0, 200), -1)
    cv2.imwrite(str(tmp_path / 'img.png'), img)
    out = tmp_path / 'merging.png'
    res = vis.main([CLS_LTM, 'none', str(tmp_path / 'img.png'), '--stage', '0', '--block', '0',
                    '--targets', '3', '--size', '64x96', '--out', str(out)])
    assert out.stat().st_size > 10_000 and out.read_bytes()[:4] == b'\x89PNG'
    assert 'wrote' in capsys.readouterr().out
    h, w = res['grid']
    assert (h, w) == (16, 24) and res['stride'] == 4
    assert len(res['targets']) == 3 and len(set(res['targets'])) == 3
    G = res['G']
    assert G.shape == (h * w, res['num_merged'])
    np.testing.assert_allclose(G.sum(0), 1.0, rtol=1e-5)  # columns are convex weights
    assert res['heat'].shape == (64, 96)
    for x, y in res['centres']:  # each target's heat covers its centre
        assert res['heat'][min(int(y), 63), min(int(x), 95)] > 0
    with pytest.raises(ValueError, match='--stage 9'):
        vis.main([CLS_LTM, 'none', str(tmp_path / 'img.png'), '--stage', '9',
                  '--size', '64', '--out', str(out)])


def test_get_flops_dense_table_on_toy_pairs(monkeypatch):
    get_flops = _tool('get_flops')
    monkeypatch.setitem(get_flops.DENSE_ROWS, 'toy_mask_rcnn',
                        ('toy/mask_rcnn_swin_t_toy', 'toy/mask_rcnn_ltm_swin_t_toy', (64, 90)))
    r = get_flops.measure_dense('toy_mask_rcnn')
    assert r['ltm_input'] == (64, 96)  # padded to the size divisor 32
    assert r['ltm_backbone_flops'] < r['baseline_backbone_flops']
    assert r['ltm_model_flops'] < r['baseline_model_flops']
    # the heads see as many proposals: the saving is the backbone's
    assert r['baseline_model_flops'] - r['ltm_model_flops'] == pytest.approx(
        r['baseline_backbone_flops'] - r['ltm_backbone_flops'], rel=1e-6)
    table = get_flops.markdown_dense([r])
    assert '| toy_mask_rcnn | 64x90 (64x96) | backbone |' in table
    assert '| toy_mask_rcnn | 64x90 (64x96) | model |' in table
