"""The CUDA check behind ``tools/misc/gpu_check.sh``.

On a CUDA machine it prints, as markdown:

1. LTM-Swin-T vs Swin-T backbone latency at 224² batch 64 (the ImageNet
   configs' backbones) and 800x1333 batch 2 (the Mask R-CNN configs'
   backbones) under fp16 autocast, interleaved, timed with CUDA events
   (:func:`~.timing.compare_latency`);
2. their FLOPs ratios (mmengine's counter, one image, fp32);
3. the peak CUDA memory of one forward of each;
4. a 20-iteration toy Mask R-CNN (LTM-Swin-T) training under AMP through
   ``tools/train.py --amp``, with its last logged loss;
5. the ``torch.compile`` graph count and graph breaks of the LTM-Swin-T
   backbone (``torch._dynamo.explain``) and its compiled vs eager latency;
6. the ONNX check of the LTM-Swin-T backbone at 224² on onnxruntime's CUDA
   provider (``onnxruntime-gpu``, e.g. ``pip install onnxruntime-gpu==1.31.1``;
   the registry lists it, it is not in the test requirements); without that
   provider it says so and skips the item.

On a machine without CUDA it exits with status 2 and says so, before
building anything. Run from the repository root::

    bash tools/misc/gpu_check.sh [--runs 20] [--skip-train] [--skip-compile] [--skip-onnx]
"""
import argparse
import os
import re
import subprocess
import sys
import time
from typing import Dict, List, Optional, Sequence

NO_CUDA_EXIT = 2
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

#: (name, LTM config, baseline config, input (H, W), batch)
LATENCY_CASES = (
    ('backbone 224x224 b64', 'configs/ltm_swin_t_8xb128_in1k.py',
     'configs/swin_t_8xb128_in1k.py', (224, 224), 64),
    ('backbone 800x1333 b2', 'configs/mask_rcnn_ltm_swin_t_coco.py',
     'configs/mask_rcnn_swin_t_coco.py', (800, 1333), 2),
)
TOY_TRAIN_CONFIG = 'configs/toy/mask_rcnn_ltm_swin_t_toy.py'
_LOSS = re.compile(r'\bloss: ([0-9.]+(?:e[-+]?\d+)?)')


def cuda_problem() -> Optional[str]:
    """Why this machine cannot run the check, or None if it can."""
    import torch
    if torch.cuda.is_available():
        return None
    built = torch.version.cuda
    return ('gpu_check needs a CUDA GPU, and torch.cuda.is_available() is False here '
            f'(torch {torch.__version__}, '
            + (f'built with CUDA {built}: no usable device or driver'
               if built else 'a CPU-only build') + '). '
            'Run tools/misc/gpu_check.sh on a machine with an NVIDIA GPU after the '
            "README's set-up; nothing was measured.")


def last_logged_loss(log: str) -> Optional[float]:
    """The last ``loss: X`` an mmengine training log printed (None if none)."""
    found = _LOSS.findall(log)
    return float(found[-1]) if found else None


def toy_training(config: str = TOY_TRAIN_CONFIG, iters: int = 20, amp: bool = True,
                 work_dir: str = 'work_dirs/gpu_check_train',
                 python: str = sys.executable, log_interval: int = 10) -> Dict:
    """Train ``config`` for ``iters`` iterations with ``tools/train.py``
    (``--amp`` if ``amp``), as a user would; toy data is generated if
    missing.

    Returns:
        ``returncode``, ``loss`` (the last logged one), ``iters``,
        ``seconds``, the log's tail and the command.
    """
    cmd = [python, os.path.join(REPO, 'tools', 'train.py'), config, '--work-dir', work_dir,
           '--cfg-options', f'train_cfg.max_iters={iters}', f'train_cfg.val_interval={iters}',
           f'default_hooks.logger.interval={log_interval}',
           f'default_hooks.checkpoint.interval={iters}']
    if amp:
        cmd.insert(3, '--amp')
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    log = proc.stdout + proc.stderr
    return dict(returncode=proc.returncode, loss=last_logged_loss(log), iters=iters,
                seconds=time.perf_counter() - t0, tail=log[-3000:], command=cmd)


def _backbone(config: str, device: str):
    from .models import build_model, load_config
    return build_model(load_config(os.path.join(REPO, config)), device).backbone


def _cuda_defaults(device: str, timer, autocast_dtype):
    """CUDA events and fp16 on CUDA unless told otherwise."""
    import torch

    from .timing import CudaEventTimer
    on_cuda = str(device).startswith('cuda')
    if timer is None:
        timer = CudaEventTimer() if on_cuda else 'wall'
    if autocast_dtype is None and on_cuda:
        autocast_dtype = torch.float16
    return timer, autocast_dtype


def latency_rows(cases: Sequence = LATENCY_CASES, runs: int = 20, warmup: int = 5,
                 device: str = 'cuda', timer=None, autocast_dtype=None) -> List[Dict]:
    """Item 1-3 of the module docstring, one row per case.

    Args:
        cases: ``(name, LTM config, baseline config, (H, W), batch)``.
        runs, warmup: see :func:`~.timing.time_interleaved`.
        device: where the backbones run.
        timer: default CUDA events on CUDA, the wall clock elsewhere.
        autocast_dtype: default fp16 on CUDA, none elsewhere.
    """
    import torch

    from .flops import count_flops
    from .memory import measure_peak_memory_here
    from .timing import compare_latency, module_runner
    timer, autocast_dtype = _cuda_defaults(device, timer, autocast_dtype)
    rows = []
    for name, ltm_cfg, base_cfg, hw, batch in cases:
        ltm, base = _backbone(ltm_cfg, device), _backbone(base_cfg, device)
        x = torch.randn(batch, 3, *hw, device=device)
        res = compare_latency(ltm, base, x, runs=runs, warmup=warmup, device=device,
                              timer=timer, autocast_dtype=autocast_dtype)
        flops = [count_flops(m, x[:1]) for m in (ltm, base)]
        mem = [measure_peak_memory_here(module_runner(m, x, autocast_dtype, device), device)
               for m in (ltm, base)]
        rows.append(dict(case=name, ltm_ms=res['a']['median_ms'], base_ms=res['b']['median_ms'],
                         latency_ratio=res['latency_ratio'],
                         paired=res['paired_latency_ratio'], flops_ratio=flops[0] / flops[1],
                         ltm_mem=mem[0], base_mem=mem[1]))
        del ltm, base, x
        if str(device).startswith('cuda'):
            torch.cuda.empty_cache()
    return rows


def compile_row(case: Sequence = LATENCY_CASES[0], runs: int = 20, warmup: int = 3,
                device: str = 'cuda', timer=None, autocast_dtype=None,
                backend: str = 'inductor') -> Dict:
    """Item 5: graph count of the LTM backbone of ``case`` (default LTM-Swin-T
    at 224² batch 64) under ``torch._dynamo.explain``, and compiled vs eager
    latency (compilation happens in the warm-up). ``timer`` and
    ``autocast_dtype`` as :func:`latency_rows`; ``backend`` of
    ``torch.compile``."""
    import torch

    from .timing import compare_latency
    timer, autocast_dtype = _cuda_defaults(device, timer, autocast_dtype)
    name, ltm_cfg, _, hw, batch = case
    model = _backbone(ltm_cfg, device)
    x = torch.randn(batch, 3, *hw, device=device)
    with torch.no_grad():
        explained = torch._dynamo.explain(model)(x)
    torch._dynamo.reset()
    t0 = time.perf_counter()
    compiled = torch.compile(model, backend=backend)
    res = compare_latency(compiled, model, x, runs=runs, warmup=max(1, warmup), device=device,
                          timer=timer, autocast_dtype=autocast_dtype)
    return dict(case=name, graphs=explained.graph_count, breaks=explained.graph_break_count,
                compiled_ms=res['a']['median_ms'], eager_ms=res['b']['median_ms'],
                ratio=res['latency_ratio'], seconds=time.perf_counter() - t0)


def onnx_row(config: str = LATENCY_CASES[0][1], hw=(224, 224),
             out: str = 'work_dirs/gpu_check_ltm_swin_t.onnx') -> Dict:
    """Item 6: export the backbone of ``config`` (on the CPU, the reference
    ops), run it with onnxruntime's CUDA provider, compare with PyTorch on
    the CPU. Returns ``max_abs`` and ``export_s``, or ``skipped`` with why."""
    import numpy as np
    import torch
    try:
        import onnxruntime as ort
    except ImportError as err:
        return dict(skipped=f'onnxruntime is not installed ({err})')
    if 'CUDAExecutionProvider' not in ort.get_available_providers():
        return dict(skipped='onnxruntime has no CUDAExecutionProvider here (install '
                    'onnxruntime-gpu instead of onnxruntime)')
    from mmltm.ops import fused
    model = _backbone(config, 'cpu')
    x = torch.randn(1, 3, *hw, generator=torch.Generator().manual_seed(0))
    os.makedirs(os.path.dirname(os.path.join(REPO, out)), exist_ok=True)
    t0 = time.perf_counter()
    with torch.no_grad(), fused.fused_ops(False):
        ref = model(x)
        # optimize=False: see tools/deployment/pytorch2onnx.py (a tiny eps dropped)
        torch.onnx.export(model, (x, ), dynamo=True, opset_version=18, optimize=False).save(
            os.path.join(REPO, out))
    export_s = time.perf_counter() - t0
    sess = ort.InferenceSession(os.path.join(REPO, out), providers=['CUDAExecutionProvider'])
    outs = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})
    return dict(max_abs=max(float(np.abs(o - r.numpy()).max()) for o, r in zip(outs, ref)),
                export_s=export_s, size=f'{hw[0]}x{hw[1]}')


def device_line() -> str:
    """The GPU, torch and CUDA versions, and how latency was measured."""
    import torch
    props = torch.cuda.get_device_properties(0)
    return (f'GPU: {props.name} ({props.total_memory / 2**30:.0f} GiB), torch '
            f'{torch.__version__}, CUDA {torch.version.cuda}; fp16 autocast, interleaved runs, '
            'CUDA events.')


def report(latency: List[Dict], train: Optional[Dict], compiled: Optional[Dict],
           header: Optional[str] = None, onnx: Optional[Dict] = None) -> str:
    """The printed markdown (``header``: default :func:`device_line`)."""
    from .tables import fmt_mb, md_table
    out = [device_line() if header is None else header, '']
    out.append(md_table(
        ['case', 'LTM-Swin-T ms', 'Swin-T ms', 'latency ratio (medians)',
         'paired ratio, median [IQR]', 'FLOPs ratio', 'peak mem LTM / Swin-T (MB)'],
        [[r['case'], f"{r['ltm_ms']:.2f}", f"{r['base_ms']:.2f}", f"{r['latency_ratio']:.3f}",
          f"{r['paired']['median']:.3f} [{r['paired']['q1']:.3f}-{r['paired']['q3']:.3f}]",
          f"{r['flops_ratio']:.3f}", f"{fmt_mb(r['ltm_mem'])} / {fmt_mb(r['base_mem'])}"]
         for r in latency]))
    if train is not None:
        state = 'ok' if train['returncode'] == 0 else f"FAILED (exit {train['returncode']})"
        out += ['', f"Toy Mask R-CNN LTM-Swin-T, {train.get('iters', 20)} iterations, "
                f"AMP: {state}, last logged "
                f"loss {train['loss']}, {train['seconds']:.0f} s"]
        if train['returncode'] != 0:
            out += ['```', train['tail'], '```']
    if compiled is not None:
        out += ['', f"torch.compile, LTM-Swin-T {compiled['case']}: {compiled['graphs']} graphs, "
                f"{compiled['breaks']} graph breaks; compiled {compiled['compiled_ms']:.2f} ms vs "
                f"eager {compiled['eager_ms']:.2f} ms (ratio {compiled['ratio']:.3f}; "
                f"compile + timing {compiled['seconds']:.0f} s)"]
    if onnx is not None:
        if 'skipped' in onnx:
            out += ['', f"ONNX check on onnxruntime-gpu: skipped: {onnx['skipped']}"]
        else:
            out += ['', f"ONNX (dynamo exporter, opset 18), LTM-Swin-T backbone "
                    f"{onnx['size']} on onnxruntime CUDA vs PyTorch CPU: max abs "
                    f"{onnx['max_abs']:.3g} (export {onnx['export_s']:.0f} s)"]
    return '\n'.join(out)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description='LTM-Swin-T vs Swin-T on a CUDA GPU')
    p.add_argument('--runs', type=int, default=20, help='timed rounds per case')
    p.add_argument('--warmup', type=int, default=5, help='untimed rounds per case')
    p.add_argument('--skip-train', action='store_true', help='no toy AMP training')
    p.add_argument('--skip-compile', action='store_true', help='no torch.compile check')
    p.add_argument('--skip-onnx', action='store_true', help='no ONNX check')
    args = p.parse_args(argv)
    if args.runs < 1 or args.warmup < 0:
        p.error(f'--runs {args.runs} must be >= 1 and --warmup {args.warmup} >= 0')
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    problem = cuda_problem()
    if problem is not None:
        print(f'error: {problem}', file=sys.stderr)
        return NO_CUDA_EXIT
    latency = latency_rows(runs=args.runs, warmup=args.warmup)
    train = None if args.skip_train else toy_training()
    compiled = None if args.skip_compile else compile_row(runs=args.runs)
    onnx = None if args.skip_onnx else onnx_row()
    print(report(latency, train, compiled, onnx=onnx))
    return 0 if train is None or train['returncode'] == 0 else 1


if __name__ == '__main__':
    sys.exit(main())
