"""ONNX export of the LTM backbones (tools/deployment/pytorch2onnx.py)."""
import importlib.util
import os

import pytest
import torch

pytest.importorskip('onnxruntime')
pytest.importorskip('onnxscript')

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_spec = importlib.util.spec_from_file_location(
    'pytorch2onnx', os.path.join(REPO, 'tools', 'deployment', 'pytorch2onnx.py'))
pytorch2onnx = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(pytorch2onnx)


@pytest.mark.parametrize('name', ['swin', 'vit', 'efficientvit'])
def test_backbones_export_and_match_onnxruntime_at_two_sizes(name, build, tmp_path):
    model = build(name)
    for hw in ((224, 224), (320, 512)):
        x = torch.randn(1, 3, *hw, generator=torch.Generator().manual_seed(1))
        res = pytorch2onnx.check_onnx(model, x, str(tmp_path / f'{name}.onnx'))
        print(f'{name} {hw}: max abs {res["max_abs"]:.3g} (rel. {res["max_rel"]:.3g}), '
              f'export {res["export_s"]:.1f} s')
        # absolute (the acceptance bound) and relative to the output scale
        # (random-init EfficientViT outputs are small)
        assert res['max_abs'] <= 1e-4 and res['max_rel'] <= 1e-4, (name, hw, res)


def test_swin_merges_per_sample_in_the_exported_graph(build, tmp_path):
    # the check above would pass for a graph that ignored the data-dependent
    # assignment if every token kept its own cell: make sure some moved
    model = build('swin')
    model.record_merge_masks(True)
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        model(x)
    mask = model.last_merge_masks[0][0]
    assert (mask.assign[0] != mask.plan.cell).any()


def test_cli_exits_nonzero_above_the_tolerance(tmp_path, capsys):
    cfg = tmp_path / 'tiny.py'
    cfg.write_text(
        "default_scope = 'mmpretrain'\n"
        "model = dict(type='ImageClassifier', backbone=dict(type='LTMSwinTransformer', "
        "embed_dims=32, depths=(2, 2), num_heads=(1, 2), strides=(4, 2), out_indices=(1, )), "
        "neck=dict(type='GlobalAveragePooling'))\n")
    out = str(tmp_path / 'tiny.onnx')
    argv = [str(cfg), '--shape', '64', '96', '--part', 'model', '--out', out,
            '--tolerance', '1e-30']
    # an impossible tolerance must fail the check (the passing side is the
    # test above, with the same check_onnx)
    assert pytorch2onnx.main(argv) == 1
    printed = capsys.readouterr()
    assert 'max abs difference:' in printed.out and os.path.exists(out)
    assert 'differs from PyTorch' in printed.err


def test_gpu_check_says_why_it_skips_onnx_without_the_cuda_provider():
    import onnxruntime as ort

    from mmltm.analysis import gpu_check
    if 'CUDAExecutionProvider' in ort.get_available_providers():
        pytest.skip('onnxruntime-gpu is installed here')
    row = gpu_check.onnx_row()
    assert 'CUDAExecutionProvider' in row['skipped']
    text = gpu_check.report([], None, None, header='h', onnx=row)
    assert 'ONNX check on onnxruntime-gpu: skipped' in text


def test_eager_export_compile_and_onnx_agree_at_800x1344(tmp_path):
    # torch.export is checked through the ONNX export, which traces with it;
    # a narrow, one-block-per-stage LTM-Swin with Swin-T's patch size and
    # strides: at 800x1344 its four stages run on Swin-T's grids (200x336,
    # 100x168, 50x84, 25x42) and merge them with the same plans (the widths
    # and depths do not enter the plans); the real LTM-Swin-T was checked at
    # this size with the CLI (see the notes)
    from mmltm.models.backbones.ltm_swin import LTMSwinTransformer
    from mmltm.ops import fused
    torch.manual_seed(0)
    model = LTMSwinTransformer(embed_dims=16, depths=(1, 1, 1, 1), num_heads=(1, 1, 2, 2),
                               out_indices=(0, 1, 2, 3)).eval()
    x = torch.randn(1, 3, 800, 1344, generator=torch.Generator().manual_seed(1))
    with torch.no_grad(), fused.fused_ops(False):
        eager = model(x)
        assert [tuple(o.shape[2:]) for o in eager] == [(200, 336), (100, 168), (50, 84),
                                                        (25, 42)]
        torch._dynamo.reset()
        compiled = torch.compile(model, backend='eager', fullgraph=True)(x)
        torch._dynamo.reset()
    for a, b in zip(compiled, eager):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-5)
    res = pytorch2onnx.check_onnx(model, x, str(tmp_path / 'swin_800x1344.onnx'))
    print(f'swin 800x1344: max abs {res["max_abs"]:.3g} (rel. {res["max_rel"]:.3g}), '
          f'export {res["export_s"]:.1f} s')
    assert res['max_abs'] <= 1e-4 and res['max_rel'] <= 1e-4, res
    # the merge exports without scatter reductions: onnxruntime runs a
    # ScatterND 'add' over its threads unguarded, and with the repeated
    # indices of a cell sum that gave wrong sums (up to 0.2) in some runs
    assert scatter_reductions(res['out']) == []
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    options.log_severity_level = 3
    sess = ort.InferenceSession(res['out'], options, providers=['CPUExecutionProvider'])
    for _ in range(4):
        outs = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})
        diff = max(float((torch.from_numpy(o) - e).abs().max()) for o, e in zip(outs, eager))
        assert diff <= 1e-4, diff


def scatter_reductions(path: str) -> list:
    """The scatter nodes of an ONNX file that reduce (add, mul, max, min)."""
    import onnx
    found = []
    for node in onnx.load(path).graph.node:
        if node.op_type in ('ScatterND', 'ScatterElements'):
            reduction = next((a.s.decode() for a in node.attribute if a.name == 'reduction'),
                             'none')
            if reduction != 'none':
                found.append(f'{node.op_type}({reduction})')
    return found


def test_grid_merge_exports_without_scatter_reductions(build, tmp_path):
    # merge_mode='grid' sums fixed cells: also gathered in the exported graph
    model = build('swin', merge_mode='grid')
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    res = pytorch2onnx.check_onnx(model, x, str(tmp_path / 'swin_grid.onnx'))
    assert res['max_abs'] <= 1e-4 and res['max_rel'] <= 1e-4, res
    assert scatter_reductions(res['out']) == []


@pytest.mark.parametrize('name', ['vit'])
def test_tome_exports_with_a_fixed_round_count(name, build, tmp_path):
    # merge_mode='tome': traced, the matching runs a fixed number of rounds
    # with a fixed top-k (mmltm.ops.tome), so torch.export and ONNX see no
    # data-dependent control flow. ViT matches globally; Swin's tiled
    # matching exports as well (1.6e-6 here, see the notes) but takes ~1 min
    # in this suite; its traced path is checked against eager in
    # tests/test_ops/test_tome.py
    model = build(name, merge_mode='tome')
    x = torch.randn(1, 3, 64, 96, generator=torch.Generator().manual_seed(1))
    res = pytorch2onnx.check_onnx(model, x, str(tmp_path / f'{name}_tome.onnx'))
    print(f'{name} tome 64x96: max abs {res["max_abs"]:.3g}, export {res["export_s"]:.1f} s')
    assert res['max_abs'] <= 1e-4 and res['max_rel'] <= 1e-4, res


REAL_CONFIGS = ('configs/ltm_swin_t_8xb128_in1k.py', 'configs/ltm_vit_s_4xb256_in1k.py',
                'configs/ltm_efficientvit_b1_4xb64_in1k.py')


_FULL = pytest.mark.skipif(os.environ.get('MMLTM_FULL_EXPORT') != '1',
                           reason='real-size exports take 1-2.5 min each on 2 CPU cores; '
                           'MMLTM_FULL_EXPORT=1 runs them')
#: the 224x224 LTM-Swin-T export always runs (issue 14's acceptance); the
#: other five real-size cases only with MMLTM_FULL_EXPORT=1 (suite time)
REAL_CASES = [pytest.param(config, hw, marks=() if (config, hw) == (REAL_CONFIGS[0], (224, 224))
                           else _FULL, id=f'{os.path.basename(config)}-{hw[0]}x{hw[1]}')
              for config in REAL_CONFIGS for hw in ((224, 224), (320, 512))]


@pytest.mark.parametrize('config,hw', REAL_CASES)
def test_real_backbones_export_through_the_cli(config, hw, tmp_path, capsys):
    # item 2 of issue 14 as stated: LTM-Swin-T, LTM-ViT-S, LTM-EfficientViT-B1
    # at 224² and 320x512 through tools/deployment/pytorch2onnx.py, max abs
    # <= 1e-4 (the CLI's default tolerance; exit 1 above it)
    out = str(tmp_path / 'real.onnx')
    code = pytorch2onnx.main([os.path.join(REPO, config), '--shape', *map(str, hw),
                              '--out', out])
    printed = capsys.readouterr().out
    print(printed)
    assert code == 0, printed
