"""mmltm.analysis and the tools over it (tools/analysis_tools, gpu_check).

The library tests check values: table cells, statistics of known series,
paired ratios under an injected fake clock, FLOPs of modules whose
multiply-adds are known. The tool tests run the command lines on the toy
configs at tiny sizes with 1-2 runs and check what they print and write
against independent computations; none asserts anything about speed.
"""
import csv
import json
import math
import os
import os.path as osp
import platform
import re
import runpy
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn as nn

from mmltm.analysis import flops as flops_lib
from mmltm.analysis import tables, timing
from mmltm.analysis.models import parse_size
from mmltm.analysis.overhead import free_merging_estimate, overhead_row
from mmltm.analysis.sweep import relative_to_unmerged

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOLS = osp.join(REPO, 'tools', 'analysis_tools')
TOY = osp.join(REPO, 'configs', 'toy')
CLS_LTM, CLS_BASE = osp.join(TOY, 'ltm_swin_t_in1k_toy.py'), osp.join(TOY, 'swin_t_in1k_toy.py')
DET_LTM, DET_BASE = (osp.join(TOY, 'mask_rcnn_ltm_swin_t_toy.py'),
                     osp.join(TOY, 'mask_rcnn_swin_t_toy.py'))


def _tool(name):
    """The globals of ``tools/analysis_tools/<name>.py`` (run, not as main)."""
    return runpy.run_path(osp.join(TOOLS, f'{name}.py'), run_name=f'mmltm_tool_{name}')


def _subprocess_env():
    return dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (REPO, os.environ.get('PYTHONPATH')) if p))


# --------------------------------------------------------------------------
# the library, piece by piece
# --------------------------------------------------------------------------
def test_parse_size():
    assert parse_size('224') == (224, 224)
    assert parse_size('800x1333') == (800, 1333)
    for bad in ('0', 'axb', '1x2x3', '-4'):
        with pytest.raises(ValueError, match='give S or HxW'):
            parse_size(bad)


def test_fix_detector_workload_sets_the_documented_values():
    from mmengine.config import Config

    from mmltm.analysis.models import fix_detector_workload
    cfg = Config(dict(model=dict(test_cfg=dict(
        rpn=dict(nms_pre=500, nms=dict(type='nms', iou_threshold=0.7), min_bbox_size=0,
                 max_per_img=300),
        rcnn=dict(score_thr=0.05, nms=dict(type='nms', iou_threshold=0.5), max_per_img=50)))))
    assert fix_detector_workload(cfg)
    assert cfg.model.test_cfg.rpn.to_dict() == dict(nms_pre=500, nms=None, min_bbox_size=-1,
                                                    max_per_img=300)
    assert cfg.model.test_cfg.rcnn.to_dict() == dict(score_thr=0.0, nms=None, max_per_img=50)
    assert not fix_detector_workload(Config(dict(model=dict(type='ImageClassifier'))))


def test_md_table_and_cell_formats():
    assert tables.md_table(['a', 'b c'], [[1, 'x'], [2.5, '']]) == \
        '| a | b c |\n|---|---|\n| 1 | x |\n| 2.5 |  |'
    assert tables.fmt_ms(dict(median_ms=12.345, q1_ms=11.0, q3_ms=13.96)) == '12.3 [11.0-14.0]'
    assert tables.fmt_mb(None) == '-' and tables.fmt_mb(3 * 2**20) == '3'
    assert tables.fmt_opt(None) == '-' and tables.fmt_opt(0.12345) == '0.123'


def test_benchmark_tables_have_the_documented_cells():
    rec = dict(part='backbone', size='224x224', batch=2, name='ltm', params=28.29e6,
               flops=3.7256e9, latency=dict(median_ms=100.0, q1_ms=90.0, q3_ms=110.0),
               peak_mem_bytes=50 * 2**20, detections=None)
    ratio = dict(part='backbone', size='224x224', batch=2, model='ltm', flops_ratio=0.8265,
                 latency_ratio=0.9, paired_latency_ratio=dict(median=0.91, q1=0.88, q3=0.95),
                 latency_over_flops=0.9 / 0.8265, paired_over_flops=0.91 / 0.8265,
                 speedup=1 / 0.91, memory_ratio=None)
    lines = tables.markdown_tables([rec], [ratio]).splitlines()
    assert lines[0].startswith('| part | size | batch | model | params (M) | GFLOPs/img |')
    assert lines[2] == '| backbone | 224x224 | 2 | ltm | 28.29 | 3.726 | 100.0 [90.0-110.0] ' \
        '| 50.0 | 50 | - | - |'
    assert lines[6] == '| backbone | 224x224 | 2 | ltm | 0.827 | 0.900 | 0.910 [0.880-0.950] ' \
        '| 1.089 | 1.101 | 1.099x | - |'
    assert tables.markdown_tables([rec], []) == '\n'.join(lines[:3])  # no ratio table


def test_summarize_and_paired_ratio_on_known_series():
    s = timing.summarize([0.001, 0.002, 0.003, 0.004, 0.005])
    assert s == dict(median_ms=pytest.approx(3.0), q1_ms=pytest.approx(2.0),
                     q3_ms=pytest.approx(4.0), iqr_ms=pytest.approx(2.0), runs=5)
    p = timing.paired_ratio([2, 6, 4, 30], [1, 2, 4, 10])  # ratios 2 3 1 3
    assert p == dict(median=pytest.approx(2.5), q1=pytest.approx(1.75), q3=pytest.approx(3.0))
    with pytest.raises(ValueError, match='equally long'):
        timing.paired_ratio([1, 2], [1])
    with pytest.raises(ValueError, match='must be > 0'):
        timing.paired_ratio([1.0], [0.0])


class _FakeClock:
    """A clock that only moves when a fake workload says so."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_interleaved_timing_with_a_fake_clock_gives_exact_paired_ratios():
    """A costs twice B, and every round is slower than the one before (drift):
    the per-round times are exactly what the clock saw, and the paired ratio
    is exactly 2 while the medians of the drifting series still agree."""
    clock = _FakeClock()
    rounds = {'i': 0}

    def work(units):
        def run():
            clock.now += units * (1 + rounds['i'] // 2)  # drift between rounds
        return run

    a, b = work(2.0), work(1.0)
    calls = []

    def a_fn():
        calls.append('a')
        a()

    def b_fn():
        calls.append('b')
        b()
        if len(calls) % 2 == 0:
            rounds['i'] += 1

    times = timing.time_interleaved([a_fn, b_fn], runs=4, warmup=1,
                                    timer=timing.ClockTimer(clock))
    assert calls[:2] == ['a', 'b']  # warm-up, untimed
    assert calls[2:] == ['a', 'b', 'b', 'a', 'a', 'b', 'b', 'a']
    ta, tb = times
    assert len(ta) == len(tb) == 4
    np.testing.assert_allclose(np.asarray(ta) / np.asarray(tb), 2.0)
    r = timing.latency_ratios(ta, tb)
    assert r['paired_latency_ratio'] == dict(median=2.0, q1=2.0, q3=2.0)
    assert r['latency_ratio'] == pytest.approx(2.0)


def test_interleaved_timing_alternates_order_and_checks_arguments():
    calls = []
    timing.time_interleaved([lambda: calls.append('a'), lambda: calls.append('b')], runs=3,
                            warmup=1)
    assert calls == ['a', 'b', 'a', 'b', 'b', 'a', 'a', 'b']
    with pytest.raises(ValueError, match='runs=0'):
        timing.time_interleaved([lambda: None], runs=0, warmup=0)
    with pytest.raises(ValueError, match="timer='gpu'"):
        timing.make_timer('gpu')


class _Costly(nn.Module):
    """Moves a fake clock by ``units`` per forward and records its inputs."""

    def __init__(self, clock, units):
        super().__init__()
        self.clock, self.units, self.seen = clock, units, []

    def forward(self, x, scale=1.0):
        self.seen.append((x, scale))
        self.clock.now += self.units * scale
        return x


def test_compare_latency_takes_any_two_modules_and_their_inputs():
    clock = _FakeClock()
    a, b = _Costly(clock, 3.0), _Costly(clock, 1.0)
    x, y = torch.zeros(1), torch.ones(1)
    res = timing.compare_latency(a, b, (x, 2.0), (y, ), runs=5, warmup=2,
                                 timer=timing.ClockTimer(clock))
    assert len(a.seen) == len(b.seen) == 7  # 2 warm-up + 5 timed calls each
    assert all(s[0] is x and s[1] == 2.0 for s in a.seen)
    assert all(s[0] is y and s[1] == 1.0 for s in b.seen)
    assert res['a']['median_ms'] == pytest.approx(6000.0)  # 3 units x 2.0, in ms
    assert res['b']['median_ms'] == pytest.approx(1000.0)
    assert res['latency_ratio'] == pytest.approx(6.0)
    assert res['paired_latency_ratio']['median'] == pytest.approx(6.0)
    assert [len(t) for t in res['times_s']] == [5, 5]


def test_module_runner_applies_autocast():
    lin = nn.Linear(4, 4)
    out = timing.module_runner(lin, torch.randn(2, 4), torch.bfloat16)()
    assert out.dtype == torch.bfloat16
    assert timing.module_runner(lin, torch.randn(2, 4))().dtype == torch.float32


def test_part_runner_runs_the_part_through_the_wrapper():
    from mmltm.analysis.models import part_runner

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.backbone = nn.Linear(2, 3)

        def forward(self, x, samples, mode):
            return ('model', mode, samples)

    wrapped = []

    def wrap(module):  # what a --compile flag would pass (torch.compile)
        wrapped.append(module)
        return lambda *args, **kwargs: ('wrapped', module(*args, **kwargs))

    model, x = Model(), torch.randn(1, 2)
    data = dict(inputs=x, data_samples=['s'])
    tag, out = part_runner(model, 'backbone', data, wrap)()
    assert tag == 'wrapped' and torch.equal(out, model.backbone(x))
    assert part_runner(model, 'model', data, wrap)() == ('wrapped', ('model', 'predict', ['s']))
    assert wrapped == [model.backbone, model]
    with pytest.raises(ValueError, match="part='neck'"):
        part_runner(model, 'neck', data)


class _ConvLinear(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, bias=False)
        self.fc = nn.Linear(4 * 8 * 8, 10)

    def forward(self, x):
        return self.fc(self.conv(x).flatten(1))


def test_flops_of_a_tiny_module_are_its_multiply_adds():
    model = _ConvLinear()
    # conv: 8x8 outputs x 4 channels x (3 in x 3 x 3) taps; linear: 256 x 10
    assert flops_lib.count_flops(model, torch.randn(1, 3, 10, 10)) == 8 * 8 * 4 * 27 + 256 * 10
    assert flops_lib.count_flops(model, torch.randn(2, 3, 10, 10)) == 2 * (6912 + 2560)
    assert flops_lib.count_params(model) == 4 * 27 + 256 * 10 + 10


def test_overhead_and_estimate_arithmetic():
    share, bound = free_merging_estimate(spent={'a': 2.0, 'b': 1.0},
                                         kept={'a': 0.5, 'b': 0.75}, total=10.0)
    assert share == pytest.approx(0.3)
    assert bound == pytest.approx(1 - (2.0 * 0.5 + 1.0 * 0.25) / 10.0)
    row = overhead_row('stages.0.blocks.0', (14, 14), 100, 32, 2,
                       dict(mask_merge=0.1, unmerge_add=0.2, ffn_merged=1.0, ffn_full=2.0,
                            attn=3.0))
    assert (row['grid'], row['N'], row['N_merged']) == ('14x14', 196, 100)
    assert row['overhead_over_saving'] == pytest.approx(0.3)
    assert row['block_free_merge'] == pytest.approx(4.0 / 5.0)
    assert row['block_ltm_ms'] == pytest.approx(4.3)
    line = tables.overhead_table([row]).splitlines()[2]
    assert line == ('| stages.0.blocks.0 | 14x14 | 196 -> 100 | 32 | 2 | 0.100 | 0.200 | 1.000 '
                    '| 2.000 | 3.000 | 0.30 | 0.860 | 0.800 |')


def test_sweep_rows_are_relative_to_the_largest_ratio_of_their_mode():
    rows = relative_to_unmerged([
        dict(mode='ltm', compression_ratio=1.0, gflops=4.0, latency_ms=10.0),
        dict(mode='ltm', compression_ratio=0.5, gflops=3.0, latency_ms=8.0),
        dict(mode='tome', compression_ratio=0.9, gflops=2.0, latency_ms=5.0),
        dict(mode='tome', compression_ratio=0.6, gflops=1.0, latency_ms=4.0)])
    assert [(r['flops_rel'], r['latency_rel']) for r in rows] == \
        [(1.0, 1.0), (0.75, 0.8), (1.0, 1.0), (0.5, 0.8)]


def test_parse_variant_gives_the_backbone_overrides():
    from mmltm.analysis.variants import DEFAULT_RATIO, parse_variant, parse_variants
    v = parse_variant('ltm/stage@default')
    assert (v.name, v.mode, v.scope, v.ratio) == ('ltm/stage@default', 'ltm', 'stage',
                                                  DEFAULT_RATIO)
    assert v.cfg_options({'a.b': 1}) == {'a.b': 1, 'model.backbone.merge_mode': 'ltm',
                                         'model.backbone.merge_scope': 'stage',
                                         'model.backbone.compression_ratio': None}
    assert parse_variant('tome@0.6').cfg_options() == {
        'model.backbone.merge_mode': 'tome', 'model.backbone.compression_ratio': 0.6}
    assert parse_variant('grid/ffn').cfg_options() == {
        'model.backbone.merge_mode': 'grid', 'model.backbone.merge_scope': 'ffn'}
    for bad, what in (('fast', "merge mode 'fast'"), ('ltm/block', "merge scope 'block'"),
                      ('ltm@1.5', "ratio '1.5'"), ('ltm@x', "ratio 'x'")):
        with pytest.raises(ValueError, match=re.escape(what)):
            parse_variant(bad)
    with pytest.raises(ValueError, match='more than once'):
        parse_variants(['ltm/ffn', 'tome', 'ltm/ffn'])


def test_ratio_row_arithmetic_on_hand_computed_figures():
    from mmltm.analysis.benchmark import ratio_row
    a = dict(flops=80, times_s=[2.0, 4.0, 6.0], peak_mem_bytes=30)
    b = dict(flops=100, times_s=[1.0, 2.0, 4.0], peak_mem_bytes=60)
    r = ratio_row('backbone', '224x224', 8, a, b, 'ltm/stage')
    # medians 4 / 2; per-round ratios 2, 2, 1.5 -> median 2, q1 1.75, q3 2
    assert r['model'] == 'ltm/stage' and r['flops_ratio'] == pytest.approx(0.8)
    assert r['latency_ratio'] == pytest.approx(2.0)
    assert r['paired_latency_ratio'] == dict(median=pytest.approx(2.0),
                                             q1=pytest.approx(1.75), q3=pytest.approx(2.0))
    assert r['latency_over_flops'] == pytest.approx(2.5)
    assert r['paired_over_flops'] == pytest.approx(2.5)
    assert r['speedup'] == pytest.approx(0.5) and r['memory_ratio'] == pytest.approx(0.5)
    row = tables.ratio_table([r]).splitlines()[2]
    assert row == ('| backbone | 224x224 | 8 | ltm/stage | 0.800 | 2.000 | 2.000 [1.750-2.000] '
                   '| 2.500 | 2.500 | 0.500x | 0.500 |')


def test_amdahl_bound_on_hand_computed_figures():
    from mmltm.analysis.flops import amdahl_bound
    b = amdahl_bound(0.25, 0.8)
    assert b['whole_ratio'] == pytest.approx(0.95)  # 1 - 0.25 * 0.2
    assert b['speedup'] == pytest.approx(1 / 0.95)
    assert b['free_speedup'] == pytest.approx(4 / 3)
    assert amdahl_bound(1.0, 0.5) == dict(whole_ratio=0.5, speedup=2.0,
                                          free_speedup=float('inf'))
    with pytest.raises(ValueError, match='share=1.5'):
        amdahl_bound(1.5, 0.8)


class _Detectorish(nn.Module):
    """backbone (conv), neck (linear), head (linear on 4 of the neck's
    outputs), and a flatten outside any child: FLOPs known by hand."""

    def __init__(self):
        super().__init__()
        self.backbone = nn.Conv2d(3, 4, 3, bias=False)
        self.neck = nn.Linear(4 * 8 * 8, 16)
        self.head = nn.Linear(4, 2)

    def forward(self, inputs, data_samples, mode='tensor'):
        z = self.neck(self.backbone(inputs).flatten(1))
        return self.head(z[:, :4]) @ torch.ones(2, 3)  # a matmul outside the children


def test_flops_breakdown_splits_a_known_model_and_gives_the_share():
    from mmltm.analysis.flops import amdahl_bound, flops_breakdown
    model = _Detectorish()
    split = flops_breakdown(model, dict(inputs=torch.randn(2, 3, 10, 10),
                                        data_samples=['a', 'b']))
    hand = dict(backbone=8 * 8 * 4 * 27, neck=256 * 16, head=4 * 2, other=2 * 3)
    assert split == dict(hand, total=sum(hand.values()))  # one image: the first
    share = split['backbone'] / split['total']
    assert share == pytest.approx(6912 / 11022)
    assert amdahl_bound(share, 0.5)['whole_ratio'] == pytest.approx(1 - 3456 / 11022)


def _sweep_rows():
    """Hand-made sweep rows: two series and a baseline, with per-round times."""
    def row(series, ratio, gflops, times):
        return dict(series=series, mode=series.split('/')[0], scope=None,
                    compression_ratio=ratio, params=1e6, gflops=gflops,
                    latency_ms=1e3 * float(np.median(times)),
                    q1_ms=1e3 * float(np.percentile(times, 25)),
                    q3_ms=1e3 * float(np.percentile(times, 75)), times_s=times)
    return [row('ltm/ffn', 0.9, 0.9, [0.95, 1.9, 2.85]), row('ltm/ffn', 0.5, 0.7, [0.9, 1.6, 2.4]),
            row('ltm/stage', 0.9, 0.8, [0.8, 1.7, 2.4]), row('ltm/stage', 0.5, 0.5, [0.6, 1.0, 1.6])]


def test_sweep_relative_to_a_baseline_uses_paired_ratios():
    rows = _sweep_rows()
    base = dict(series='baseline', compression_ratio=None, gflops=1.0, latency_ms=2000.0,
                times_s=[1.0, 2.0, 3.0])
    relative_to_unmerged(rows, base)
    r = rows[3]  # ltm/stage at 0.5: per-round 0.6, 0.5, 0.5333
    assert r['flops_rel'] == pytest.approx(0.5)
    assert r['latency_rel'] == pytest.approx(1000.0 / 2000.0)
    assert r['paired_rel'] == pytest.approx(1.6 / 3)
    assert r['paired_q1'] == pytest.approx((0.5 + 1.6 / 3) / 2)
    assert r['paired_q3'] == pytest.approx((0.6 + 1.6 / 3) / 2)
    line = tables.sweep_table([r]).splitlines()[2]
    assert line == ('| ltm/stage | 0.50 | 1.00 | 0.500 | 0.500 | 1000.0 [800.0-1300.0] | 0.500 '
                    '| 0.533 [0.517-0.567] | 1.067 |')


def test_sweep_figure_draws_the_compute_bound_line_and_one_series_each():
    from mmltm.analysis.sweep import LIMIT_LABEL, sweep_figure
    rows = _sweep_rows()
    base = dict(series='baseline', compression_ratio=None, params=1e6, gflops=1.0,
                latency_ms=2000.0, q1_ms=1500.0, q3_ms=2500.0, times_s=[1.0, 2.0, 3.0])
    relative_to_unmerged(rows, base)
    rows.append(dict(base, flops_rel=1.0, latency_rel=1.0, paired_rel=1.0, paired_q1=1.0,
                     paired_q3=1.0))
    fig = sweep_figure(rows, 'title')
    ax = fig.axes[0]
    [limit] = [line for line in ax.get_lines() if line.get_label() == LIMIT_LABEL]
    x, y = np.asarray(limit.get_xdata(), float), np.asarray(limit.get_ydata(), float)
    np.testing.assert_array_equal(x, y)  # the line y = x
    values = [r['flops_rel'] for r in rows] + [r['paired_rel'] for r in rows]
    assert x.min() < min(values) and x.max() > max(values)  # spans every point
    # one series per scope (the baseline is the reference, not a series),
    # each at its FLOPs ratios with its paired latency ratios
    handles, labels = ax.get_legend_handles_labels()
    assert sorted(labels) == sorted(['ltm/ffn', 'ltm/stage', LIMIT_LABEL])
    for name in ('ltm/ffn', 'ltm/stage'):
        [series] = [c for c in ax.containers if c.get_label() == name]
        rs = sorted((r for r in rows if r['series'] == name),
                    key=lambda r: r['compression_ratio'])
        line = series.lines[0]
        np.testing.assert_allclose(np.asarray(line.get_xdata(), float),
                                   [r['flops_rel'] for r in rs])
        np.testing.assert_allclose(np.asarray(line.get_ydata(), float),
                                   [r['paired_rel'] for r in rs])
    assert 'vs the baseline' in ax.get_xlabel()
    import matplotlib.pyplot as plt
    plt.close(fig)


def test_import_mmltm_does_not_import_the_analysis_library():
    script = ('import sys, mmltm\n'
              'assert "mmltm.analysis" not in sys.modules, "import mmltm imported analysis"\n'
              'import mmltm.analysis as a\n'
              'loaded = sorted(m for m in sys.modules if m.startswith("mmltm.analysis."))\n'
              'assert loaded == [], loaded\n'
              'a.compare_latency\n'
              'print(sorted(m for m in sys.modules if m.startswith("mmltm.analysis.")))\n')
    proc = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True,
                          env=_subprocess_env(), timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == "['mmltm.analysis.timing']"


def test_every_exported_name_resolves():
    import mmltm.analysis as analysis
    for name in analysis.__all__:
        assert callable(getattr(analysis, name)) or name == 'PARTS', name
    assert analysis.PARTS == ('backbone', 'model')
    with pytest.raises(AttributeError, match='no attribute'):
        analysis.not_a_name


def test_tools_load_no_module_by_file_path():
    for name in sorted(os.listdir(TOOLS)):
        if name.endswith('.py'):
            text = open(osp.join(TOOLS, name)).read()
            assert 'spec_from_file_location' not in text, name


# --------------------------------------------------------------------------
# FLOPs against hand counts
# --------------------------------------------------------------------------
def _grid_mode():
    """The fixed-grid merger's mode name ('grid' once the learnable 'ltm'
    module lands, 'ltm' before)."""
    from mmltm.ops import MERGE_MODES
    return 'grid' if 'grid' in MERGE_MODES else 'ltm'


class _BlockOnly(nn.Module):
    def __init__(self, block, hw):
        super().__init__()
        self.block, self.hw = block, hw

    def forward(self, x):
        return self.block(x, self.hw)[0]


@pytest.mark.parametrize('mode', ['grid', 'tome'])
def test_flop_count_of_one_block_matches_a_hand_count(mode):
    from mmltm.models.backbones import LTMSwinTransformer
    mode = _grid_mode() if mode == 'grid' else mode
    C, ratio, (h, w), ws = 32, 0.7, (14, 14), 7
    backbone = LTMSwinTransformer(embed_dims=C, depths=(1, ), num_heads=(2, ), strides=(4, ),
                                  out_indices=(0, ), compression_ratio=ratio,
                                  merge_mode=mode).eval()
    block = backbone.stages[0].blocks[0]
    N = h * w
    merger = block.token_merger
    n_merged = (math.ceil(ratio * N) if mode == 'tome' else math.prod(merger.merged_grid((h, w))))
    flops = flops_lib.count_flops(_BlockOnly(block, (h, w)), torch.randn(1, N, C))
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


@pytest.fixture(scope='module')
def toy_classifiers():
    from mmltm.analysis.models import build_model, load_config, make_batch
    models = {role: build_model(load_config(path)) for role, path in
              (('ltm', CLS_LTM), ('baseline', CLS_BASE))}
    return models, {role: make_batch(m, (64, 64), 1) for role, m in models.items()}


class _MergeOnly(nn.Module):
    """The mask module and merge of one block (``token_merger.merge``)."""

    def __init__(self, merger, grid):
        super().__init__()
        self.merger, self.grid = merger, grid

    def forward(self, z):
        return self.merger.merge(z, self.grid, None)[1]


def _hand_backbone_saving(ltm_model, x):
    """FLOPs the merging blocks of ``ltm_model.backbone`` save on ``x``,
    counted by hand: norm2 (5 per element) and the FFN's two linear layers
    on N - N' fewer tokens. The mask modules' own FLOPs (their merge counted
    alone, on each block's input) are returned separately."""
    from mmltm.analysis.overhead import block_inputs, merging_blocks
    backbone = ltm_model.backbone
    blocks = merging_blocks(backbone)
    saving, mask_flops, merging = 0, 0, 0
    for name, (tokens, grid) in block_inputs(backbone, blocks, x).items():
        blk = backbone.get_submodule(name)
        if blk.token_merger.is_identity(grid):
            continue
        merging += 1
        tokens = tokens.clone()  # a normal tensor (captured in inference mode)
        with torch.no_grad():
            mask, _ = blk.token_merger.merge(tokens, grid, None)
        fewer = grid[0] * grid[1] - mask.num_merged
        C, hidden = tokens.shape[-1], blk.ffn.feedforward_channels
        saving += 5 * fewer * C + 2 * fewer * C * hidden
        mask_flops += flops_lib.count_flops(_MergeOnly(blk.token_merger, grid), tokens)
    return saving, mask_flops, merging


def test_backbone_flops_of_the_toy_pair_match_a_hand_count(toy_classifiers):
    """The LTM toy backbone's count equals the baseline's minus the hand-
    counted FFN saving of every merging block (plus whatever the mask modules
    themselves count): the two toy backbones differ only in the ratio."""
    from mmltm.analysis.flops import part_flops
    models, data = toy_classifiers
    base = part_flops(models['baseline'], 'backbone', data['baseline'])
    ltm = part_flops(models['ltm'], 'backbone', data['ltm'])
    saving, mask_flops, merging = _hand_backbone_saving(models['ltm'], data['ltm']['inputs'])
    assert merging >= 2 and saving > 0.05 * base
    assert ltm == base - saving + mask_flops


# --------------------------------------------------------------------------
# the tools
# --------------------------------------------------------------------------
def _expected_machine_line(threads):
    cpu = None
    if osp.exists('/proc/cpuinfo'):
        with open('/proc/cpuinfo') as f:
            names = re.findall(r'^model name\s*:\s*(.+)$', f.read(), re.M)
        cpu = names[0].strip() if names else None
    if cpu is None:
        pytest.skip('/proc/cpuinfo names no CPU model here')
    return (f'Machine: {cpu} ({platform.machine()}, {os.cpu_count()} logical CPUs), '
            f'device cpu, torch {torch.__version__}, {threads} threads')


def test_benchmark_classifier_tables_json_and_overhead(tmp_path, capsys, toy_classifiers):
    out = tmp_path / 'bench.json'
    result = _tool('benchmark')['main']([
        CLS_LTM, '--baseline', CLS_BASE, '--sizes', '64', '--batch', '1', '2', '--runs', '2',
        '--warmup', '0', '--threads', '1', '--memory', 'none', '--part', 'both', '--overhead',
        '--out-json', str(out)])
    text = capsys.readouterr().out
    report = text[text.index('Machine:'):]
    # the machine line is what /proc/cpuinfo, platform and torch report
    assert report.startswith(_expected_machine_line(1) + '; load average at start (')
    assert '2 timed runs per model, interleaved; timer: wall clock' in report
    data = json.loads(out.read_text())
    assert data['machine']['torch_threads'] == 1
    recs = data['records']
    # 2 parts x 1 size x 2 batches x 2 models
    assert [(r['part'], r['batch'], r['role']) for r in recs] == [
        (p, b, role) for p in ('backbone', 'model') for b in (1, 2)
        for role in ('ltm', 'baseline')]
    models, batches = toy_classifiers
    from mmltm.analysis.flops import part_flops, part_params
    for r in recs:
        assert r['flops'] == part_flops(models[r['role']], r['part'], batches[r['role']])
        assert r['params'] == part_params(models[r['role']], r['part'])
        assert len(r['times_s']) == 2 and r['peak_mem_bytes'] is None
        assert r['latency']['median_ms'] == pytest.approx(1e3 * np.median(r['times_s']))
        assert f"| {r['part']} | 64x64 | {r['batch']} | {r['name']} |" in text
    by_cell = {(r['part'], r['batch'], r['role']): r for r in recs}
    saving, mask_flops, _ = _hand_backbone_saving(models['ltm'], batches['ltm']['inputs'])
    for r in data['ratios']:
        a, b = by_cell[(r['part'], r['batch'], 'ltm')], by_cell[(r['part'], r['batch'],
                                                                'baseline')]
        # the ratios are computed from the raw times of the same cell
        assert r['flops_ratio'] == pytest.approx(a['flops'] / b['flops'])
        assert r['latency_ratio'] == pytest.approx(np.median(a['times_s']) /
                                                   np.median(b['times_s']))
        assert r['paired_latency_ratio']['median'] == pytest.approx(
            np.median(np.asarray(a['times_s']) / np.asarray(b['times_s'])))
        assert r['latency_over_flops'] == pytest.approx(r['latency_ratio'] / r['flops_ratio'])
        if r['part'] == 'backbone':  # and the FLOPs ratio is the hand-counted one
            assert r['flops_ratio'] == pytest.approx(1 - (saving - mask_flops) / b['flops'])
        assert f"| {r['part']} | 64x64 | {r['batch']} | ltm | {r['flops_ratio']:.3f} |" in text
    rows = data['overhead']
    assert [r['grid'] for r in rows[:2]] == ['16x16', '8x8']
    for row in rows:
        assert row['N_merged'] < row['N']
        assert row['block_free_merge'] == pytest.approx(
            (row['attn_ms'] + row['ffn_merged_ms']) / (row['attn_ms'] + row['ffn_full_ms']))
    assert 'overhead / FFN saving' in text and 'merging free' in text
    assert f"mmltm kernels: {data['kernels']}." in text
    bounds = data['bounds']
    assert [(b['size'], b['batch']) for b in bounds] == [('64x64', 1), ('64x64', 2)]
    fr = {(r['part'], r['batch']): r['flops_ratio'] for r in data['ratios']}
    for b in bounds:
        # the estimate is 1 - (saved share): between 1 - share and 1
        assert 1 - b['shrinking_share'] < b['bound'] < 1
        assert b['flops_ratio'] == fr[('backbone', b['batch'])]
    assert 'What merging can buy at best' in text


def test_benchmark_kernels_off_runs_the_reference_code(monkeypatch):
    from mmltm.ops import fused
    monkeypatch.setenv('MMLTM_FUSED_OPS', '1')
    old = fused.set_fused_ops(True)
    try:
        result = _tool('benchmark')['main']([
            CLS_LTM, '--sizes', '64', '--runs', '1', '--warmup', '0', '--threads', '1',
            '--memory', 'none', '--part', 'backbone', '--kernels', 'off'])
        assert result['kernels'].startswith('off') and not fused.fused_ops_enabled()
    finally:
        fused.set_fused_ops(old)


def test_benchmark_detector_backbone_and_predict():
    result = _tool('benchmark')['main']([
        DET_LTM, '--baseline', DET_BASE, '--sizes', '64x96', '--runs', '2', '--warmup', '0',
        '--threads', '1', '--memory', 'none', '--part', 'both', '--fix-proposals'])
    assert result['fixed_proposals']
    recs = {(r['part'], r['role']): r for r in result['records']}
    assert set(recs) == {(p, r) for p in ('backbone', 'model') for r in ('ltm', 'baseline')}
    dets = recs[('model', 'ltm')]['detections']
    assert dets and dets == recs[('model', 'baseline')]['detections']  # same head work
    # the detectors differ only in the backbone, and with --fix-proposals
    # their heads see as many boxes, so the whole-model saving is the
    # backbone's (64x96 is not padded: same grids)
    diff_model = recs[('model', 'baseline')]['flops'] - recs[('model', 'ltm')]['flops']
    diff_backbone = recs[('backbone', 'baseline')]['flops'] - recs[('backbone', 'ltm')]['flops']
    assert diff_backbone > 0
    assert diff_model == diff_backbone


def _has_merge_scope():
    import inspect

    from mmltm.models.backbones import LTMSwinTransformer
    return 'merge_scope' in inspect.signature(LTMSwinTransformer.__init__).parameters


def test_benchmark_variants_each_against_the_baseline(capsys):
    """Variants of one config, interleaved with the baseline in one run:
    one record per variant with the FLOPs of a model built independently
    with the variant's overrides, and one ratio row per variant computed
    from the raw times of the same cell."""
    from mmltm.analysis.flops import part_flops
    from mmltm.analysis.models import build_model, load_config, make_batch
    variants = ['ltm', 'tome@0.6'] + (['ltm/ffn', 'ltm/stage'] if _has_merge_scope() else [])
    result = _tool('benchmark')['main']([
        CLS_LTM, '--baseline', CLS_BASE, '--variants', *variants, '--sizes', '64', '--runs',
        '2', '--warmup', '0', '--threads', '1', '--memory', 'none', '--part', 'backbone'])
    text = capsys.readouterr().out
    assert result['variants'] == variants
    recs = {r['role']: r for r in result['records']}
    assert list(recs) == variants + ['baseline']
    overrides = {'ltm': {}, 'tome@0.6': {'model.backbone.merge_mode': 'tome',
                                         'model.backbone.compression_ratio': 0.6},
                 'ltm/ffn': {'model.backbone.merge_scope': 'ffn'},
                 'ltm/stage': {'model.backbone.merge_scope': 'stage'}}
    for name in variants:
        model = build_model(load_config(CLS_LTM, overrides[name]))
        flops = part_flops(model, 'backbone', make_batch(model, (64, 64), 1))
        assert recs[name]['flops'] == flops, name
        assert recs[name]['name'] == f'ltm_swin_t_in1k_toy [{name}]'
        assert recs[name]['first_call_s'] > 0
    assert recs['tome@0.6']['flops'] < recs['baseline']['flops']
    if _has_merge_scope():  # 'ffn' is the config's block as it was
        assert recs['ltm/ffn']['flops'] == recs['ltm']['flops']
    assert [r['model'] for r in result['ratios']] == variants
    base = recs['baseline']
    for r in result['ratios']:
        a = recs[r['model']]
        assert r['flops_ratio'] == pytest.approx(a['flops'] / base['flops'])
        per_round = np.asarray(a['times_s']) / np.asarray(base['times_s'])
        assert r['paired_latency_ratio']['median'] == pytest.approx(np.median(per_round))
        assert r['paired_over_flops'] == pytest.approx(np.median(per_round) / r['flops_ratio'])
        assert r['speedup'] == pytest.approx(1 / np.median(per_round))
        assert f"| backbone | 64x64 | 1 | {r['model']} | {r['flops_ratio']:.3f} |" in text
    with pytest.raises(SystemExit):
        _tool('benchmark')['parse_args']([CLS_LTM, '--variants', 'ltm/everything'])


def test_benchmark_compile_wrap_passes_dynamic(monkeypatch):
    seen = []
    monkeypatch.setattr(torch, 'compile', lambda module, dynamic=None: seen.append(dynamic)
                        or module)
    wrap = _tool('benchmark')['compile_wrap']
    lin = nn.Linear(2, 2)
    assert wrap('false')(lin) is lin and wrap('true')(lin) is lin and wrap('auto')(lin) is lin
    assert seen == [False, True, None]


def test_peak_memory_measures_a_known_allocation():
    """A 64 MiB tensor measures as 64 MiB, in a fresh process with the
    environment the library gives its CPU memory probes (in this long-lived
    test process freed memory may stay resident and be reused unseen)."""
    from mmltm.analysis.memory import memory_probe_env
    script = (
        'import torch\n'
        'from mmltm.analysis.memory import measure_peak_memory_here\n'
        'def alloc():\n'
        '    t = torch.ones(64 * 2**20 // 4)\n'
        '    return float(t[-1])\n'
        'torch.ones(1024).sum()  # load the kernels before measuring\n'
        'print("PEAK_BYTES", measure_peak_memory_here(alloc, "cpu"))\n')
    proc = subprocess.run([sys.executable, '-c', script], capture_output=True,
                          text=True, env=memory_probe_env(2), timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    peak = int(proc.stdout.split('PEAK_BYTES')[-1])
    nbytes = 64 * 2**20
    assert 0.9 * nbytes <= peak <= 1.5 * nbytes


def test_memory_probe_of_a_config_runs_in_a_fresh_process():
    """``measure_peak_memory`` on CPU runs ``python -m mmltm.analysis.memory``
    on the job; a failed probe would give None (and its error on stderr).
    The toy backbone's activations at 64x64 are a few MiB, not GiB."""
    from mmltm.analysis.memory import measure_peak_memory
    peak = measure_peak_memory(CLS_LTM, None, 'backbone', (64, 64), 1, 1, 'cpu')
    assert peak is not None and 2**20 < peak < 2**30


def test_sweep_ratio_writes_csv_and_png(tmp_path, capsys):
    sweep = _tool('sweep_ratio')
    rows = sweep['main']([CLS_LTM, '--ratios', '1.0', '0.6', '--modes', 'ltm', 'tome',
                          '--size', '64', '--runs', '2', '--warmup', '0', '--threads', '1',
                          '--out-dir', str(tmp_path)])
    text = capsys.readouterr().out
    with open(tmp_path / 'sweep.csv') as f:
        table = list(csv.DictReader(f))
    assert [(r['mode'], float(r['compression_ratio'])) for r in table] == \
        [('ltm', 1.0), ('ltm', 0.6), ('tome', 1.0), ('tome', 0.6)]
    by_key = {(r['mode'], r['compression_ratio']): r for r in rows}
    for r in table:
        row = by_key[(r['mode'], float(r['compression_ratio']))]
        ref = by_key[(r['mode'], 1.0)]
        assert float(r['flops_rel']) == pytest.approx(row['gflops'] / ref['gflops'])
        assert float(r['latency_rel']) == pytest.approx(row['latency_ms'] / ref['latency_ms'])
        if float(r['compression_ratio']) == 0.6:
            assert float(r['flops_rel']) < 0.95  # merging saves FLOPs in both modes
        assert f"| {r['mode']} | {float(r['compression_ratio']):.2f} | " \
            f"{row['params'] / 1e6:.2f} | {row['gflops']:.3f} | {row['flops_rel']:.3f} |" in text
    png = tmp_path / 'sweep.png'
    assert png.stat().st_size > 10_000 and png.read_bytes()[:4] == b'\x89PNG'
    assert f"wrote {tmp_path / 'sweep.csv'}" in text
    with pytest.raises(SystemExit):
        sweep['parse_args']([CLS_LTM, '--ratios', '1.5'])


def test_sweep_ratio_series_against_a_baseline(tmp_path, capsys):
    from mmltm.analysis.sweep import LIMIT_LABEL
    series = ['ltm', 'tome'] + (['ltm/stage'] if _has_merge_scope() else [])
    rows = _tool('sweep_ratio')['main']([
        CLS_LTM, '--baseline', CLS_BASE, '--series', *series, '--ratios', '1.0', '0.6',
        '--size', '64', '--runs', '2', '--warmup', '0', '--threads', '1',
        '--out-dir', str(tmp_path)])
    text = capsys.readouterr().out
    with open(tmp_path / 'sweep.csv') as f:
        table = list(csv.DictReader(f))
    assert [(r['series'], r['compression_ratio']) for r in table] == \
        [(s, c) for s in series for c in ('1.0', '0.6')] + [('baseline', '')]
    base = rows[-1]
    assert base['series'] == 'baseline' and base['flops_rel'] == 1.0
    for row in rows[:-1]:  # relative to the baseline, paired within the one run
        assert row['flops_rel'] == pytest.approx(row['gflops'] / base['gflops'])
        assert row['paired_rel'] == pytest.approx(
            np.median(np.asarray(row['times_s']) / np.asarray(base['times_s'])))
        assert f"| {row['series']} | {row['compression_ratio']:.2f} |" in text
    # ratio 1.0 merges nothing: the same FLOPs as the baseline (the toy
    # baseline is the LTM backbone at ratio 1)
    assert all(r['gflops'] == base['gflops'] for r in rows if r['compression_ratio'] == 1.0)
    png = tmp_path / 'sweep.png'
    assert png.read_bytes()[:4] == b'\x89PNG'
    with pytest.raises(SystemExit):
        _tool('sweep_ratio')['parse_args']([CLS_LTM, '--series', 'ltm@0.5'])
    assert LIMIT_LABEL == 'y = x (compute-bound limit)'


def test_visualize_merging_draws_targets_and_heat_map(tmp_path, capsys):
    import cv2
    vis = _tool('visualize_merging')
    img = np.full((80, 120, 3), 220, np.uint8)
    cv2.circle(img, (40, 40), 25, (0, 0, 200), -1)
    cv2.imwrite(str(tmp_path / 'img.png'), img)
    out = tmp_path / 'merging.png'
    res = vis['main']([CLS_LTM, 'none', str(tmp_path / 'img.png'), '--stage', '0', '--block',
                       '0', '--targets', '3', '--size', '64x96', '--out', str(out)])
    assert out.stat().st_size > 10_000 and out.read_bytes()[:4] == b'\x89PNG'
    printed = capsys.readouterr().out
    h, w = res['grid']
    # the learned mask: tokens join merged tokens across the fixed cells, and
    # the tool says how many (the fixed grid: none)
    crossed = int(res['crossed'].sum())
    assert 0 < crossed < h * w
    assert (f'targets {res["targets"]}; {crossed} of {h * w} tokens '
            f'({crossed / (h * w):.1%}) joined a merged token across') in printed
    grid = vis['main']([CLS_LTM, 'none', str(tmp_path / 'img.png'), '--stage', '0',
                        '--block', '0', '--size', '64x96', '--out', str(out),
                        '--cfg-options', 'model.backbone.merge_mode=grid'])
    assert int(grid['crossed'].sum()) == 0
    assert (h, w) == (16, 24) and res['stride'] == 4
    assert len(res['targets']) == 3 and len(set(res['targets'])) == 3
    G = res['G']
    assert G.shape == (h * w, res['num_merged'])
    np.testing.assert_allclose(G.sum(0), 1.0, rtol=1e-5)  # columns are convex weights
    assert res['heat'].shape == (64, 96)
    for x, y in res['centres']:  # each target's heat covers its centre
        assert res['heat'][min(int(y), 63), min(int(x), 95)] > 0
    with pytest.raises(ValueError, match='--stage 9'):
        vis['main']([CLS_LTM, 'none', str(tmp_path / 'img.png'), '--stage', '9',
                     '--size', '64', '--out', str(out)])


def test_get_flops_dense_table_on_toy_pairs():
    get_flops = _tool('get_flops')
    get_flops['DENSE_ROWS']['toy_mask_rcnn'] = (
        'toy/mask_rcnn_swin_t_toy', 'toy/mask_rcnn_ltm_swin_t_toy', (64, 90))
    r = get_flops['measure_dense']('toy_mask_rcnn')
    assert r['ltm_input'] == (64, 96)  # padded to the size divisor 32
    assert r['ltm_backbone_flops'] < r['baseline_backbone_flops']
    # the heads see as many proposals: the saving is the backbone's
    assert r['baseline_model_flops'] - r['ltm_model_flops'] == pytest.approx(
        r['baseline_backbone_flops'] - r['ltm_backbone_flops'], rel=1e-6)
    table = get_flops['dense_flops_table']([r])
    b, l = r['baseline_backbone_flops'], r['ltm_backbone_flops']
    assert (f"| toy_mask_rcnn | 64x90 (64x96) | backbone | {r['ltm_backbone_params']:.2f} "
            f"| {b:.2f} | {l:.2f} | {l / b:.3f} | 0.7 |") in table
    assert '| toy_mask_rcnn | 64x90 (64x96) | model |' in table


def test_get_flops_breakdown_gives_the_backbone_share_and_bound(capsys):
    """--dense --breakdown on the toy Mask R-CNN pair: the parts add up to
    the whole, the backbone part is the backbone counted alone, and the
    Amdahl whole-model ratio equals the counted one (the heads do the same
    work with --fix-proposals' settings)."""
    get_flops = _tool('get_flops')
    get_flops['DENSE_ROWS']['toy_mask_rcnn'] = (
        'toy/mask_rcnn_swin_t_toy', 'toy/mask_rcnn_ltm_swin_t_toy', (64, 90))
    r = get_flops['measure_dense']('toy_mask_rcnn', None, True)
    split = r['baseline_breakdown']
    assert set(split) == {'backbone', 'neck', 'rpn_head', 'roi_head', 'other', 'total'}
    assert sum(v for k, v in split.items() if k != 'total') == split['total']
    assert split['backbone'] / 1e9 == pytest.approx(r['baseline_backbone_flops'], rel=1e-12)
    assert r['backbone_share'] == pytest.approx(split['backbone'] / split['total'])
    ratio = r['ltm_backbone_flops'] / r['baseline_backbone_flops']
    b = r['bound']
    assert b['whole_ratio'] == pytest.approx(r['ltm_model_flops'] / r['baseline_model_flops'],
                                             rel=1e-9)
    assert b['speedup'] == pytest.approx(1 / (1 - r['backbone_share'] * (1 - ratio)))
    assert b['free_speedup'] == pytest.approx(1 / (1 - r['backbone_share']))
    row = get_flops['breakdown_table']([r]).splitlines()[2]
    assert row.startswith(f"| toy_mask_rcnn | 64x90 (64x96) | backbone {split['backbone'] / 1e9:.4g}"
                          f", neck ")
    assert row.endswith(f"| {r['backbone_share']:.3f} | {ratio:.3f} | {b['whole_ratio']:.3f} | "
                        f"{b['whole_ratio']:.3f} | {b['speedup']:.3f}x | "
                        f"{b['free_speedup']:.2f}x |")
    with pytest.raises(SystemExit):
        get_flops['parse_args'](['--breakdown'])


def test_get_flops_one_config(capsys):
    get_flops = _tool('get_flops')
    get_flops['main'](['--config', CLS_LTM, '--shape', '64'])
    from mmltm.analysis.flops import count_flops, count_params
    from mmltm.analysis.models import build_model, load_config
    model = build_model(load_config(CLS_LTM))
    flops = count_flops(model, torch.randn(1, 3, 64, 64))
    assert capsys.readouterr().out.strip() == (
        f'{CLS_LTM} @ 64x64: {count_params(model) / 1e6:.3f} M params, {flops / 1e9:.4f} '
        'GFLOPs (mmengine counter, MACs), compression_ratio=0.7')


# --------------------------------------------------------------------------
# tools/misc/gpu_check.sh
# --------------------------------------------------------------------------
def test_gpu_check_fails_clearly_without_cuda():
    env = dict(_subprocess_env(), PYTHON=sys.executable, CUDA_VISIBLE_DEVICES='')
    proc = subprocess.run(['bash', osp.join(REPO, 'tools', 'misc', 'gpu_check.sh')],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert proc.stdout == ''
    assert 'error: gpu_check needs a CUDA GPU, and torch.cuda.is_available() is False' \
        in proc.stderr
    assert 'nothing was measured' in proc.stderr


def test_gpu_check_reads_the_last_logged_loss():
    from mmltm.analysis.gpu_check import last_logged_loss
    log = ('12/01 Iter(train) [10/20] lr: 1e-3 eta: 0:00:01 time: 0.1 loss: 3.2101 '
           'loss_rpn_cls: 0.6\n12/01 Iter(train) [20/20] lr: 1e-3 loss: 2.75e-01 '
           'loss_cls: 0.1\n')
    assert last_logged_loss(log) == pytest.approx(0.275)
    assert last_logged_loss('no losses here') is None


def test_gpu_check_latency_rows_and_report_on_cpu():
    """The GPU check's measuring code, run on CPU on the toy pair (fp32,
    wall clock, one run): FLOPs ratio from an independent count, latency
    ratio from the medians, and the table row it prints."""
    from mmltm.analysis import gpu_check
    from mmltm.analysis.flops import count_flops
    from mmltm.analysis.models import build_model, load_config
    case = ('toy 64x64 b2', CLS_LTM, CLS_BASE, (64, 64), 2)
    [row] = gpu_check.latency_rows([case], runs=1, warmup=0, device='cpu')
    x = torch.randn(1, 3, 64, 64)
    ltm, base = (build_model(load_config(c)).backbone for c in (CLS_LTM, CLS_BASE))
    assert row['flops_ratio'] == pytest.approx(count_flops(ltm, x) / count_flops(base, x))
    assert row['latency_ratio'] == pytest.approx(row['ltm_ms'] / row['base_ms'])
    assert row['paired']['median'] == pytest.approx(row['latency_ratio'])  # one run
    text = gpu_check.report([row], dict(returncode=0, loss=1.25, seconds=3.0, tail=''), None,
                            header='HEADER')
    lines = text.splitlines()
    assert lines[0] == 'HEADER'
    assert lines[4].startswith(f"| toy 64x64 b2 | {row['ltm_ms']:.2f} | {row['base_ms']:.2f} | "
                               f"{row['latency_ratio']:.3f} | ")
    assert lines[-1] == ('Toy Mask R-CNN LTM-Swin-T, 20 iterations, AMP: ok, last logged loss '
                         '1.25, 3 s')


def test_tables_format_a_per_stage_ratio_entry_by_entry():
    from mmltm.analysis.tables import fmt_opt
    assert fmt_opt((0.5625, 0.25, 1.0, 1.0), 'g') == '0.5625/0.25/1/1'
    assert fmt_opt(0.7, 'g') == '0.7'
    assert fmt_opt(None, 'g', '—') == '—'


def test_get_flops_table_applies_ltm_options_to_the_ltm_config_only():
    get_flops = _tool('get_flops')
    row = get_flops['Row']('toy_shapes', 'toy/swin_t_shapes_toy', 'toy/ltm_swin_t_shapes_toy',
                           64, 1.0, 1.0, 1.0)
    options = {'model.backbone.merge_scope': 'stage',
               'model.backbone.compression_ratio': (0.5, 0.5, 1.0, 1.0)}
    r = get_flops['measure'](row, options)
    assert 'ltm_error' not in r and 'baseline_error' not in r, r
    assert r['baseline_ratio'] == 1.0 and r['ltm_ratio'] == (0.5, 0.5, 1.0, 1.0)
    assert r['ltm_flops'] < r['baseline_flops']
    plain = get_flops['measure'](row)
    assert plain['ltm_ratio'] == 0.7 and plain['baseline_flops'] == r['baseline_flops']
    assert '| 0.5/0.5/1/1 |' in get_flops['paper_flops_table']([r])
