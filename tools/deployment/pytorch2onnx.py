"""Export a config's backbone (or backbone + neck) to ONNX and check it.

Exports with the dynamo-based exporter (``torch.onnx.export(...,
dynamo=True)``, which traces with ``torch.export``), runs the file in
onnxruntime on the same random input, prints the largest absolute
difference of every output against PyTorch, and exits with status 1 when
one is above ``--tolerance``.

The LTM mask module is exported in its PyTorch reference form (the compiled
CPU kernels are never used while exporting, see :mod:`mmltm.ops.fused`); the
grid plan of every block becomes constants of the exported input size, so a
file is valid for the ``--shape`` it was exported at.

``--part model`` exports the backbone and the neck, not the whole detector:
mmdet 3.3 has no export path of its own (ONNX export of detectors is
mmdeploy's, which is not a dependency), and its RPN / RoI heads run mmcv's
``batched_nms`` and ``RoIAlign`` and produce a data-dependent number of
boxes. Measured on the toy Mask R-CNN (``mode='tensor'``): ``torch.export``
stops with ``GuardOnDataDependentSymNode`` at the RPN's box filter
(``if not valid_mask.all()``, mmdet/models/dense_heads/rpn_head.py:279),
before NMS; getting past it needs mmdeploy's rewrites and custom ops. The
tool prints this when ``--part model`` is used.

``merge_mode='tome'`` exports too: traced, ToMe's matching runs a fixed
number of rounds with a fixed top-k (:mod:`mmltm.ops.tome`), and the file is
valid for its input size as for the other modes.

The export runs with ``optimize=False``: onnxscript's optimizer drops a
tiny ``+ eps`` (EfficientViT's ``num / (den + 1e-15)`` became 0 / 0 = NaN in
onnxruntime); onnxruntime optimises the graph when it loads it. Example::

    python tools/deployment/pytorch2onnx.py configs/mask_rcnn_ltm_swin_t_coco.py \\
        --shape 320 512 --part model --out work_dirs/ltm_swin_t.onnx
"""
import argparse
import os
import sys
import time
from typing import Dict, Optional, Sequence

import numpy as np
import torch
import torch.nn as nn


class BackboneNeck(nn.Module):
    """``neck(backbone(x))`` as one module (the backbone alone without a neck)."""

    def __init__(self, backbone: nn.Module, neck: Optional[nn.Module] = None) -> None:
        super().__init__()
        self.backbone, self.neck = backbone, neck

    def forward(self, x: torch.Tensor):
        feats = self.backbone(x)
        return tuple(self.neck(feats)) if self.neck is not None else tuple(feats)


def export_part(model: nn.Module, part: str) -> nn.Module:
    """The module exported for ``part`` (``'backbone'`` or ``'model'``)."""
    if part not in ('backbone', 'model'):
        raise ValueError(f"part={part!r}; allowed: ['backbone', 'model']")
    backbone = getattr(model, 'backbone', model)
    neck = getattr(model, 'neck', None) if part == 'model' else None
    module = BackboneNeck(backbone, neck)
    module.eval()
    return module


def check_onnx(module: nn.Module, x: torch.Tensor, out: str,
               opset: int = 18) -> Dict:
    """Export ``module`` at the input ``x`` to ``out``, run onnxruntime on
    ``x`` and compare.

    Returns:
        ``max_abs`` (the largest difference over all outputs), ``per_output``
        (one per output), ``max_rel`` (``max_abs`` over the largest output
        magnitude), ``export_s`` and ``out``.
    """
    import onnxruntime as ort

    from mmltm.ops import fused
    module.eval()  # (some backbones return None from eval())
    with torch.no_grad(), fused.fused_ops(False):
        ref = module(x)
        ref = ref if isinstance(ref, (tuple, list)) else (ref, )
        t0 = time.perf_counter()
        # optimize=False: onnxscript's optimizer (torch 2.14 / onnxscript
        # 0.7.2) drops ``+ eps`` for a tiny eps, e.g. EfficientViT's
        # ``num / (den + 1e-15)``, whose 0 / 0 then gives NaN in onnxruntime
        # (measured: real LTM-EfficientViT-B1 at 224x224); onnxruntime
        # optimises the graph itself when it loads it
        program = torch.onnx.export(module, (x, ), dynamo=True, opset_version=opset,
                                    optimize=False, verbose=False)
        program.save(out)
        export_s = time.perf_counter() - t0
    options = ort.SessionOptions()
    # errors only: the unoptimised graph's CastLike nodes make onnxruntime
    # warn that it cannot constant-fold them (harmless, it runs them)
    options.log_severity_level = 3
    sess = ort.InferenceSession(out, options, providers=['CPUExecutionProvider'])
    outs = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})
    if len(outs) != len(ref):
        raise RuntimeError(f'onnxruntime returned {len(outs)} outputs, PyTorch {len(ref)}')
    diffs = [float(np.abs(o - r.float().numpy()).max()) for o, r in zip(outs, ref)]
    scale = max(float(r.abs().max()) for r in ref)
    return dict(max_abs=max(diffs), per_output=diffs, max_rel=max(diffs) / max(scale, 1e-30),
                export_s=export_s, out=out)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description='Export to ONNX and check against PyTorch')
    p.add_argument('config', help='config file')
    p.add_argument('checkpoint', nargs='?', help='checkpoint (default: random weights)')
    p.add_argument('--shape', type=int, nargs=2, metavar=('H', 'W'), default=[224, 224],
                   help='input height and width (default: 224 224)')
    p.add_argument('--part', choices=['backbone', 'model'], default='backbone',
                   help='backbone, or model = backbone + neck (default: backbone)')
    p.add_argument('--out', help='ONNX file (default: work_dirs/<config>_<H>x<W>.onnx)')
    p.add_argument('--tolerance', type=float, default=1e-4,
                   help='largest allowed max abs difference (default: 1e-4)')
    p.add_argument('--opset', type=int, default=18, help='ONNX opset (default: 18)')
    p.add_argument('--seed', type=int, default=0, help='seed of the random input')
    args = p.parse_args(argv)
    if min(args.shape) < 1:
        p.error(f'--shape {args.shape}: height and width must be positive')
    if not args.tolerance > 0:
        p.error(f'--tolerance {args.tolerance} must be positive')
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    from mmltm.analysis.models import build_model, load_config
    cfg = load_config(args.config)
    model = build_model(cfg, 'cpu')
    if args.checkpoint:
        from mmengine.runner import load_checkpoint
        load_checkpoint(model, args.checkpoint, map_location='cpu', strict=False)
    H, W = args.shape
    out = args.out or os.path.join(
        'work_dirs', f'{os.path.splitext(os.path.basename(args.config))[0]}_{H}x{W}.onnx')
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    x = torch.randn(1, 3, H, W, generator=torch.Generator().manual_seed(args.seed))
    if args.part == 'model':
        print('note: --part model exports backbone + neck only; the detection heads (RPN / '
              'RoI with NMS and RoIAlign, a data-dependent number of boxes) are not exported: '
              'mmdet 3.3 has no export path of its own (that is mmdeploy), and torch.export '
              'of the whole detector stops at the RPN box filter (data-dependent '
              '`if not valid_mask.all()` in mmdet rpn_head.py)')
    res = check_onnx(export_part(model, args.part), x, out, args.opset)
    print(f'exported {args.part} of {args.config} at {H}x{W} to {out} '
          f'in {res["export_s"]:.1f} s')
    print('max abs difference per output: ' +
          ', '.join(f'{d:.3g}' for d in res['per_output']))
    print(f'max abs difference: {res["max_abs"]:.3g} (tolerance {args.tolerance:g}; '
          f'relative to the largest output {res["max_rel"]:.3g})')
    if not res['max_abs'] <= args.tolerance:
        print(f'error: onnxruntime differs from PyTorch by {res["max_abs"]:.3g} > '
              f'{args.tolerance:g}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
