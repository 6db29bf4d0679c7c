# Copyright (c) mmltm contributors. All rights reserved.
"""Params and FLOPs of every baseline / LTM classifier next to the paper's.

Builds the ImageNet-1k classifiers of ``configs/`` (backbone + neck + head,
as the paper's table counts them), counts them with mmengine's counter at
each model's paper resolution and prints a markdown table::

    python tools/analysis_tools/get_flops.py                 # every model
    python tools/analysis_tools/get_flops.py --models vit_s mobilevit_xs
    python tools/analysis_tools/get_flops.py --config configs/x.py --shape 224
    python tools/analysis_tools/get_flops.py --dense --breakdown   # backbone share, Amdahl

Counting convention: mmengine's ``FlopAnalyzer`` (what
``mmengine.analysis.get_model_complexity_info`` reports; fvcore-style) counts
one multiply-add as one FLOP, i.e. it reports MACs, the convention of the
paper's "FLOPs" column. Operators it has no rule for count zero: element-wise
ops, softmax, and ``scaled_dot_product_attention`` (the attention
matrix products of mmpretrain's ViT / MobileViT blocks) as well as the
mask module's own arithmetic (a few element-wise ops per token). The LTM
saving is real in the count: the FFN's ``Linear`` layers (MBConv's convs for
EfficientViT) run on the merged ``N'`` tokens, and the counter traces them
with that shape.
"""
import argparse
import logging
import os.path as osp
import sys
import warnings
from typing import Dict, NamedTuple, Optional, Tuple

# mmengine 0.10.7 imports pkg_resources, which warns on every import
warnings.filterwarnings('ignore', message='pkg_resources is deprecated')

import torch  # noqa: E402

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from mmengine.logging import MMLogger  # noqa: E402

from mmltm.analysis.flops import (amdahl_bound, count_flops, count_params,  # noqa: E402
                                  flops_breakdown, part_flops, part_params)
from mmltm.analysis.models import (build_model, compression_ratio,  # noqa: E402
                                   fix_detector_workload, load_config, make_batch)
from mmltm.analysis.tables import (breakdown_table, dense_flops_table,  # noqa: E402
                                   paper_flops_table)

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


class Row(NamedTuple):
    """One line of the table: a baseline / LTM config pair and the paper's
    figures (params in M, FLOPs in G) for it."""
    name: str
    baseline: str
    ltm: str
    size: int
    paper_params: float
    paper_flops: float
    paper_ltm_flops: float


#: the LTM paper's ImageNet table (README of the authors' repository)
ROWS: Dict[str, Row] = {
    r.name: r
    for r in [
        Row('swin_t', 'swin_t_8xb128_in1k', 'ltm_swin_t_8xb128_in1k', 224,
            29.0, 4.5, 3.8),
        Row('swin_b', 'swin_b_8xb128_in1k', 'ltm_swin_b_8xb128_in1k', 224,
            88.0, 15.4, 12.0),
        Row('vit_s', 'vit_s_4xb256_in1k', 'ltm_vit_s_4xb256_in1k', 224, 22.1,
            4.3, 3.7),
        Row('vit_b', 'vit_b_16xb64_in1k', 'ltm_vit_b_16xb64_in1k', 224, 86.5,
            17.6, 12.9),
        Row('mobilevit_xs', 'mobilevit_xs_4xb64_in1k',
            'ltm_mobilevit_xs_4xb64_in1k', 224, 2.3, 0.7, 0.52),
        Row('mobilevit_s', 'mobilevit_s_4xb64_in1k',
            'ltm_mobilevit_s_4xb64_in1k', 224, 5.6, 1.4, 1.17),
        Row('efficientvit_b1', 'efficientvit_b1_4xb64_in1k',
            'ltm_efficientvit_b1_4xb64_in1k', 224, 9.1, 0.52, 0.44),
        Row('efficientvit_b1_r288', 'efficientvit_b1_r288_4xb64_in1k',
            'ltm_efficientvit_b1_r288_4xb64_in1k', 288, 9.1, 0.86, 0.70),
    ]
}


#: dense-prediction pairs for ``--dense``: (baseline config, LTM config,
#: input H x W as the test pipeline feeds it)
DENSE_ROWS: Dict[str, Tuple[str, str, Tuple[int, int]]] = {
    'mask_rcnn_swin_t': ('mask_rcnn_swin_t_coco', 'mask_rcnn_ltm_swin_t_coco', (800, 1333)),
    'mask_rcnn_swin_s': ('mask_rcnn_swin_s_3x_coco', 'mask_rcnn_ltm_swin_s_3x_coco',
                         (800, 1333)),
    'upernet_swin_t': ('upernet_swin_t_ade20k', 'upernet_ltm_swin_t_ade20k', (512, 512)),
    'upernet_swin_s': ('upernet_swin_s_ade20k', 'upernet_ltm_swin_s_ade20k', (512, 512)),
    'mask_rcnn_vit_s': ('mask_rcnn_vit_s_coco', 'mask_rcnn_ltm_vit_s_coco', (800, 1333)),
    'upernet_vit_s': ('upernet_vit_s_ade20k', 'upernet_ltm_vit_s_ade20k', (512, 512)),
}


def measure_dense(name: str, ltm_options: Optional[dict] = None,
                  breakdown: bool = False) -> Dict[str, object]:
    """Backbone and whole-model FLOPs of a detection / segmentation pair at
    its dense input size. The whole model is counted in ``mode='tensor'``
    (as mmdet's/mmseg's get_flops) on the pre-processed (padded) input; a
    detector's RPN skips NMS so that both models' RoI heads count
    ``max_per_img`` proposals (see ``mmltm.analysis.models.fix_detector_workload``).

    Args:
        name: a key of :data:`DENSE_ROWS`.
        ltm_options: config overrides of the LTM model (e.g.
            ``{'model.backbone.merge_scope': 'stage'}``).
        breakdown: also split the baseline's whole-model FLOPs by top-level
            module (``baseline_breakdown``), and give the backbone's share
            and its Amdahl bound (``backbone_share``, ``bound``).
    """
    base_cfg, ltm_cfg, hw = DENSE_ROWS[name]
    out: Dict[str, object] = dict(name=name, size=hw)
    for key, cfg_name in (('baseline', base_cfg), ('ltm', ltm_cfg)):
        cfg = load_config(osp.join(REPO, 'configs', cfg_name + '.py'),
                          ltm_options if key == 'ltm' else None)
        fix_detector_workload(cfg)
        model = build_model(cfg)
        data = make_batch(model, hw, 1)
        out[f'{key}_input'] = tuple(data['inputs'].shape[-2:])
        for part in ('backbone', 'model'):
            out[f'{key}_{part}_params'] = part_params(model, part) / 1e6
        out[f'{key}_backbone_flops'] = part_flops(model, 'backbone', data) / 1e9
        if breakdown and key == 'baseline':
            split = flops_breakdown(model, data)
            out['baseline_breakdown'] = split
            out['baseline_model_flops'] = split['total'] / 1e9
        else:
            out[f'{key}_model_flops'] = part_flops(model, 'model', data) / 1e9
        out[f'{key}_ratio'] = compression_ratio(model)
    if breakdown:
        split = out['baseline_breakdown']
        share = split['backbone'] / split['total']
        out['backbone_share'] = share
        out['bound'] = amdahl_bound(
            share, out['ltm_backbone_flops'] / out['baseline_backbone_flops'])
    return out


def load_classifier(config: str, cfg_options: Optional[dict] = None) -> torch.nn.Module:
    """The model of ``config`` with ``cfg_options`` applied (no weights
    read), in eval mode; configs without ``default_scope`` are built by
    mmpretrain."""
    return build_model(load_config(config, cfg_options), default_scope='mmpretrain')


def count(model: torch.nn.Module, size: int) -> Tuple[float, float]:
    """``(params in M, FLOPs in G)`` of ``model`` on one ``size x size``
    image, with mmengine's counter (the numbers
    ``get_model_complexity_info`` reports, without its activation count)."""
    flops = count_flops(model, torch.randn(1, 3, size, size))
    return count_params(model) / 1e6, flops / 1e9


def measure(row: Row, ltm_options: Optional[dict] = None) -> Dict[str, object]:
    """One row of the paper table; ``ltm_options`` override the LTM config."""
    out: Dict[str, object] = dict(row._asdict())
    for key in ('baseline', 'ltm'):
        path = osp.join(REPO, 'configs', row._asdict()[key] + '.py')
        try:
            model = load_classifier(path, ltm_options if key == 'ltm' else None)
            out[f'{key}_params'], out[f'{key}_flops'] = count(model, row.size)
            out[f'{key}_ratio'] = compression_ratio(model)
        except Exception as err:  # one broken config must not hide the rest
            out[f'{key}_error'] = f'{type(err).__name__}: {err}'
    return out


def parse_args(argv=None) -> argparse.Namespace:
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(
        description='Params / FLOPs of baseline and LTM classifiers next to '
        'the LTM paper (mmengine counter; MACs, as the paper)')
    parser.add_argument(
        '--models',
        nargs='+',
        choices=sorted(ROWS),
        default=None,
        help='rows of the table (default: all)')
    parser.add_argument(
        '--config',
        help='count one config instead of the table (needs --shape)')
    parser.add_argument(
        '--shape', type=int, default=224, help='input size for --config')
    parser.add_argument(
        '--dense',
        nargs='*',
        choices=sorted(DENSE_ROWS),
        default=None,
        help='detection / segmentation pairs at their dense sizes instead of '
        'the classifier table (no names: the Swin-T pairs)')
    parser.add_argument(
        '--breakdown',
        action='store_true',
        help='with --dense: the baseline\'s whole-model FLOPs by part, the '
        'backbone\'s share and the largest end-to-end speed-up backbone '
        'merging can give (Amdahl: 1 / (1 - share * (1 - backbone ratio)), '
        'and 1 / (1 - share) for a free backbone)')
    parser.add_argument(
        '--ltm-options',
        nargs='+',
        action=DictAction,
        help='override settings of the LTM configs (classifier table or '
        '--dense), key=value (e.g. model.backbone.merge_scope=stage '
        'model.backbone.compression_ratio=None)')
    args = parser.parse_args(argv)
    if args.breakdown and args.dense is None:
        parser.error('--breakdown needs --dense')
    if args.ltm_options and args.config:
        parser.error('--ltm-options applies to the tables, not to --config')
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    MMLogger.get_current_instance().setLevel(logging.ERROR)
    if args.config:
        model = load_classifier(args.config)
        params, flops = count(model, args.shape)
        print(f'{args.config} @ {args.shape}x{args.shape}: {params:.3f} M '
              f'params, {flops:.4f} GFLOPs (mmengine counter, MACs), '
              f'compression_ratio={compression_ratio(model)}')
        return
    if args.dense is not None:
        names = args.dense or ['mask_rcnn_swin_t', 'upernet_swin_t']
        results = [measure_dense(name, args.ltm_options, args.breakdown) for name in names]
        print(dense_flops_table(results))
        if args.breakdown:
            print()
            print(breakdown_table(results))
        print('\nmmengine FlopAnalyzer, batch 1, FLOPs are MACs; whole model in '
              "mode='tensor' on the padded input; detectors: RPN without NMS so "
              'both RoI heads count max_per_img proposals.'
              + (f' LTM overrides: {args.ltm_options}.' if args.ltm_options else '')
              + (' Speed-ups are FLOPs bounds (Amdahl), not timings: what a '
                 'whole model whose time fell with its FLOPs would gain.'
                 if args.breakdown else ''))
        return
    names = args.models or list(ROWS)
    results = [measure(ROWS[name], args.ltm_options) for name in names]
    print(paper_flops_table(results))
    print('\nmmengine FlopAnalyzer (= get_model_complexity_info), whole '
          'classifier, batch 1; FLOPs are MACs, as in the paper. Paper '
          'figures: the LTM README table.'
          + (f' LTM overrides: {args.ltm_options}.' if args.ltm_options else ''))


if __name__ == '__main__':
    main()
