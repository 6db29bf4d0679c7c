"""FLOPs and parameters, counted with mmengine's ``FlopAnalyzer``.

The counter's convention (fvcore's, what
``mmengine.analysis.get_model_complexity_info`` reports): one multiply-add
is one FLOP, i.e. it reports MACs, the convention of the LTM paper's
"FLOPs" column. Its default op set covers convolutions, linear layers and
matmuls, norms and upsampling; operators it has no rule for count zero:
element-wise ops (GELU, residual adds), softmax,
``scaled_dot_product_attention`` and the LTM mask module's gathers. The
counter traces the real forward, so it sees the reduced token count N' of
every merged FFN. A whole model is counted in ``mode='tensor'`` (the network
without post-processing, as mmdet's and mmseg's ``get_flops.py`` do).
"""
from typing import Dict

import torch
import torch.nn as nn

from .models import part_module


class TensorMode(nn.Module):
    """``model(inputs, data_samples, mode='tensor')`` as a one-input module
    (what ``FlopAnalyzer`` traces).

    Args:
        model: an OpenMMLab ``BaseModel``.
        data_samples: the data samples its forward takes.
    """

    def __init__(self, model: nn.Module, data_samples) -> None:
        super().__init__()
        self.model = model
        self.data_samples = data_samples

    def forward(self, inputs: torch.Tensor):
        return self.model(inputs, self.data_samples, mode='tensor')


def count_flops(module: nn.Module, inputs: torch.Tensor) -> int:
    """FLOPs (multiply-adds) of ``module(inputs)`` with mmengine's default
    op handles (see the module docstring)."""
    from mmengine.analysis import FlopAnalyzer
    with torch.no_grad():
        analyzer = FlopAnalyzer(module, (inputs, ))
        analyzer.unsupported_ops_warnings(False)
        analyzer.uncalled_modules_warnings(False)
        return int(analyzer.total())


def count_params(module: nn.Module) -> int:
    """Number of parameter elements (each shared parameter once)."""
    return sum(p.numel() for p in module.parameters())


def part_flops(model: nn.Module, part: str, data: Dict) -> int:
    """FLOPs of one image (the first of ``data``) through ``part``: the
    backbone on the tensor, or the whole model in ``mode='tensor'``."""
    x = data['inputs'][:1]
    if part == 'backbone':
        return count_flops(part_module(model, part), x)
    part_module(model, part)  # checks the name
    return count_flops(TensorMode(model, data['data_samples'][:1]), x)


def part_params(model: nn.Module, part: str) -> int:
    """Parameters of the backbone or of the whole model."""
    return count_params(part_module(model, part))


def flops_breakdown(model: nn.Module, data: Dict) -> Dict[str, int]:
    """FLOPs of one image (the first of ``data``) through the whole model in
    ``mode='tensor'``, split by the model's top-level modules (``backbone``,
    ``neck``, ``rpn_head``, ``roi_head``, ``decode_head``, ...), with
    ``'other'`` for what runs outside them and ``'total'``."""
    from mmengine.analysis import FlopAnalyzer
    wrapper = TensorMode(model, data['data_samples'][:1])
    with torch.no_grad():
        analyzer = FlopAnalyzer(wrapper, (data['inputs'][:1], ))
        analyzer.unsupported_ops_warnings(False)
        analyzer.uncalled_modules_warnings(False)
        by_module = analyzer.by_module()
        total = int(analyzer.total())
    out = {name: int(by_module.get(f'model.{name}', 0)) for name, _ in model.named_children()
           if name != 'data_preprocessor'}
    out = {name: n for name, n in out.items() if n}
    out['other'] = total - sum(out.values())
    out['total'] = total
    return out


def amdahl_bound(share: float, part_ratio: float) -> Dict[str, float]:
    """What shrinking one part of a model can give the whole (Amdahl's law,
    in FLOPs).

    Args:
        share: the part's share of the whole model's FLOPs, in [0, 1].
        part_ratio: the part's FLOPs after / before (e.g. the LTM backbone's
            FLOPs ratio), >= 0.

    Returns:
        ``whole_ratio = 1 - share * (1 - part_ratio)``, ``speedup = 1 /
        whole_ratio`` (the largest end-to-end speed-up at that part ratio,
        if time fell with FLOPs) and ``free_speedup = 1 / (1 - share)``
        (the part costing nothing; ``inf`` for share 1).
    """
    if not 0.0 <= share <= 1.0:
        raise ValueError(f'share={share!r} must lie in [0, 1]')
    if part_ratio < 0:
        raise ValueError(f'part_ratio={part_ratio!r} must be >= 0')
    whole = 1 - share * (1 - part_ratio)
    return dict(whole_ratio=whole, speedup=1 / whole if whole > 0 else float('inf'),
                free_speedup=1 / (1 - share) if share < 1 else float('inf'))
