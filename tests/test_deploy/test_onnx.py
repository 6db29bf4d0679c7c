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
