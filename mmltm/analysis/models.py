"""Models and inputs for measurements: a config's model, built in its own
library with random weights, a pre-processed dummy batch, and one part of it
(the backbone alone or the whole model) as a no-argument callable.

Nothing here is imported by ``import mmltm``; the OpenMMLab task libraries
are imported only when a model of theirs is built.
"""
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn

#: the task libraries a config's ``default_scope`` may name
SCOPES = ('mmdet', 'mmseg', 'mmpretrain')
#: what can be measured: the backbone on a tensor, or the whole model
PARTS = ('backbone', 'model')


def parse_size(text: str) -> Tuple[int, int]:
    """``'224'`` -> (224, 224); ``'800x1333'`` -> (H=800, W=1333).

    Args:
        text: ``S`` or ``HxW`` with positive integers.

    Returns:
        ``(H, W)``.
    """
    try:
        parts = [int(p) for p in str(text).lower().split('x')]
    except ValueError:
        parts = []
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2 or min(parts) < 1:
        raise ValueError(f'size {text!r} is not allowed: give S or HxW with '
                         f'positive integers, e.g. 224 or 800x1333')
    return parts[0], parts[1]


def size_str(hw: Sequence[int]) -> str:
    """``(800, 1333)`` -> ``'800x1333'``."""
    return f'{hw[0]}x{hw[1]}'


def default_sizes(scope: str) -> List[str]:
    """The input sizes a task is measured at unless told otherwise:
    classification 224², detection also 800x1333, segmentation also 512²."""
    return {'mmdet': ['224', '800x1333'], 'mmseg': ['224', '512']}.get(scope, ['224'])


def load_config(path: str, cfg_options: Optional[dict] = None):
    """The config at ``path`` with ``cfg_options`` merged in.

    Args:
        path: config file.
        cfg_options: ``{'a.b': value}`` overrides, as ``--cfg-options``.
    """
    import mmltm  # noqa: F401  (registers the LTM models everywhere)
    from mmengine.config import Config
    cfg = Config.fromfile(path)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    return cfg


def fix_detector_workload(cfg) -> bool:
    """Make a two-stage detector's head work independent of the weights.

    With random (or merely different) weights two detectors keep different
    numbers of proposals and detections, and their NMS costs depend on the
    boxes, so their heads would do different work. Here the RPN and the
    R-CNN skip NMS (mmcv's ``batched_nms`` with ``nms_cfg=None`` only sorts
    by score), the RPN keeps degenerate (zero-width) proposals
    (``min_bbox_size=-1``; random weights make some at the image border) and
    the R-CNN's score threshold is 0: the RoI heads always run on
    ``rpn.max_per_img`` proposals and the mask head on ``rcnn.max_per_img``
    detections, and the two detectors differ in their backbones only.

    Args:
        cfg: a loaded config; changed in place.

    Returns:
        Whether anything was changed.
    """
    test_cfg = cfg.model.get('test_cfg') or {}
    changed = False
    for stage in ('rpn', 'rcnn'):
        stage_cfg = test_cfg.get(stage)
        if stage_cfg is not None and 'nms' in stage_cfg:
            stage_cfg['nms'] = None
            changed = True
    rpn = test_cfg.get('rpn')
    if rpn is not None and rpn.get('min_bbox_size', -1) >= 0:
        rpn['min_bbox_size'] = -1
        changed = True
    rcnn = test_cfg.get('rcnn')
    if rcnn is not None and 'score_thr' in rcnn:
        rcnn['score_thr'] = 0.0
        changed = True
    return changed


def config_scope(cfg, default: str = 'mmdet') -> str:
    """The task library of ``cfg``: its ``default_scope``, or ``default``."""
    scope = cfg.get('default_scope', None)
    if scope is None:
        scope = default
    if scope not in SCOPES:
        raise ValueError(f'default_scope={scope!r} is not supported; allowed: {list(SCOPES)}')
    return scope


def build_model(cfg, device: str = 'cpu', default_scope: str = 'mmdet') -> nn.Module:
    """Build ``cfg.model`` in its library (from ``default_scope``).

    The model is in eval mode with random weights (``init_weights`` is not
    called, so nothing is downloaded); ``model.scope`` names its library.

    Args:
        cfg: a loaded config.
        device: where the model is put.
        default_scope: the library of a config without ``default_scope``.
    """
    scope = config_scope(cfg, default_scope)
    model_cfg = cfg.model.copy()
    if cfg.get('data_preprocessor') is not None:  # mmpretrain keeps it outside
        model_cfg.setdefault('data_preprocessor', cfg.get('data_preprocessor'))
    if scope == 'mmdet':
        from mmdet.registry import MODELS
        from mmdet.utils import register_all_modules
    elif scope == 'mmseg':
        from mmseg.registry import MODELS
        from mmseg.utils import register_all_modules
    else:
        from mmpretrain.registry import MODELS
        from mmpretrain.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    model = MODELS.build(model_cfg)
    model.scope = scope
    return model.to(device).eval()


def make_batch(model: nn.Module, hw: Tuple[int, int], batch: int,
               seed: int = 0, images: Optional[List[torch.Tensor]] = None) -> Dict:
    """A pre-processed batch, as a test pipeline and the model's data
    preprocessor would make it.

    Args:
        model: a model from :func:`build_model` (``model.scope`` is read).
        hw: image size ``(H, W)``.
        batch: number of random uint8 images (ignored if ``images``).
        seed: seed of the random images.
        images: ``(3, H, W)`` uint8 BGR images, as ``LoadImageFromFile``
            gives them, instead of random ones.

    Returns:
        ``dict(inputs=..., data_samples=...)`` with the data samples the
        model's ``predict`` needs.
    """
    H, W = hw
    g = torch.Generator().manual_seed(seed)
    imgs = images if images is not None else [
        torch.randint(0, 256, (3, H, W), generator=g, dtype=torch.uint8)
        for _ in range(batch)]
    batch = len(imgs)
    meta = dict(img_shape=(H, W), ori_shape=(H, W))
    if model.scope == 'mmdet':
        from mmdet.structures import DetDataSample
        samples = [DetDataSample(metainfo=dict(meta, scale_factor=(1.0, 1.0)))
                   for _ in range(batch)]
    elif model.scope == 'mmseg':
        from mmseg.structures import SegDataSample
        samples = [SegDataSample(metainfo=meta) for _ in range(batch)]
    else:
        from mmpretrain.structures import DataSample
        samples = [DataSample(metainfo=meta) for _ in range(batch)]
    with torch.no_grad():
        return model.data_preprocessor(dict(inputs=imgs, data_samples=samples), False)


def check_part(part: str) -> str:
    """``part`` if it is one of :data:`PARTS`, else a ``ValueError``."""
    if part not in PARTS:
        raise ValueError(f'part={part!r}; allowed: {list(PARTS)}')
    return part


def part_module(model: nn.Module, part: str) -> nn.Module:
    """The backbone, or the whole model."""
    return model.backbone if check_part(part) == 'backbone' else model


def part_runner(model: nn.Module, part: str, data: Dict,
                wrap: Optional[Callable[[nn.Module], nn.Module]] = None) -> Callable[[], object]:
    """A no-argument callable running ``part`` once on ``data``.

    Args:
        model: a model from :func:`build_model`.
        part: ``'backbone'`` (on ``data['inputs']``) or ``'model'`` (the
            whole model in ``mode='predict'``, post-processing included).
        data: a batch from :func:`make_batch`.
        wrap: applied to the module that runs (the backbone or the model),
            e.g. ``torch.compile``; None runs it as it is.
    """
    module = part_module(model, part)
    run = wrap(module) if wrap is not None else module
    x = data['inputs']
    if part == 'backbone':
        return lambda: run(x)
    samples = data['data_samples']
    return lambda: run(x, samples, mode='predict')


def num_detections(result) -> Optional[int]:
    """Instances in a detector's predictions (None for other tasks)."""
    if isinstance(result, list) and result and hasattr(result[0], 'pred_instances'):
        return int(sum(len(r.pred_instances) for r in result))
    return None


def compression_ratio(model: nn.Module) -> Optional[float]:
    """The backbone's ``compression_ratio`` (None for a backbone without)."""
    backbone = getattr(model, 'backbone', model)
    return getattr(backbone, 'compression_ratio', None)
