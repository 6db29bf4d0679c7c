#!/usr/bin/env python
"""Convert a Swin checkpoint into an LTM-Swin checkpoint.

Accepts an official Swin release (``layers.*`` keys, ``model`` dict), an
mmpretrain classifier or an mmdet/mmseg model checkpoint (``backbone.*``
keys), or a bare backbone state dict. Writes ``{'state_dict': {...}}`` with
``backbone.``-prefixed mmdet Swin keys plus the mask-module parameters
(``backbone.stages.{i}.blocks.{j}.token_merger.*``) the checkpoint lacks,
taken from a freshly built ``LTMSwinTransformer``: the backbone of
``--config`` if given, else one of the checkpoint's sizes (embed_dims,
depths and window size read from its keys) with the LTM defaults and the
``--init-step`` / ``--merge-mode`` / ``--compression-ratio`` given. So the
added keys are exactly those the LTM backbone has, initialised as it
initialises them, whatever its mask module holds. Prints which keys were
mapped, added and dropped.

Example::

    python tools/model_converters/swin2ltm.py swin_tiny_patch4_window7_224.pth \\
        checkpoints/ltm_swin_t_from_swin_t.pth
"""
import argparse
import math
import re
import sys
from collections import OrderedDict
from pathlib import Path
from typing import Optional

import torch

_BACKBONE_PREFIX = 'backbone.'


def _load(path: str) -> dict:
    ckpt = torch.load(path, map_location='cpu', weights_only=False)
    if not isinstance(ckpt, dict):
        raise SystemExit(f'error: {path} holds a {type(ckpt).__name__}, not a checkpoint dict')
    for key in ('state_dict', 'model'):
        if isinstance(ckpt.get(key), dict):
            return ckpt[key]
    return ckpt


def detect_format(state: dict) -> str:
    if any(k.startswith('layers.') or k.startswith('patch_embed.proj.') for k in state):
        return 'official'
    if any(k.startswith(_BACKBONE_PREFIX + 'stages.') for k in state):
        return 'openmmlab'
    if any(k.startswith('stages.') for k in state):
        return 'bare'
    raise SystemExit('error: no Swin keys found (expected "layers.*", "backbone.stages.*" '
                     'or "stages.*"); is this a Swin checkpoint?')


def swin_sizes(state: dict) -> dict:
    """``embed_dims``, ``depths`` and ``window_size`` of the Swin whose
    ``backbone.``-prefixed mmdet keys ``state`` holds (what an LTM twin
    needs to hold the same mask modules; heads and MLP width do not
    change them)."""
    proj = state.get(_BACKBONE_PREFIX + 'patch_embed.projection.weight')
    if proj is None:
        raise SystemExit('error: no patch embedding (backbone.patch_embed.projection.weight) '
                         'in the checkpoint: cannot tell its embed_dims')
    blocks = {}
    window = None
    for k, v in state.items():
        m = re.match(r'backbone\.stages\.(\d+)\.blocks\.(\d+)\.', k)
        if m:
            stage, block = int(m.group(1)), int(m.group(2))
            blocks[stage] = max(blocks.get(stage, 0), block + 1)
            if k.endswith('relative_position_bias_table'):
                window = (math.isqrt(v.shape[0]) + 1) // 2  # (2w - 1)^2 rows
    if sorted(blocks) != list(range(len(blocks))) or not blocks:
        raise SystemExit(f'error: the checkpoint\'s stages {sorted(blocks)} are not 0..n-1')
    depths = tuple(blocks[i] for i in range(len(blocks)))
    return dict(embed_dims=int(proj.shape[0]), depths=depths, window_size=window or 7)


def fresh_ltm_state(state: dict, config: Optional[str] = None, **ltm_kwargs) -> dict:
    """``{backbone.<key>: tensor}`` of a freshly initialised LTM-Swin
    backbone: the backbone of ``config``, or an ``LTMSwinTransformer`` of
    ``state``'s sizes with ``ltm_kwargs``."""
    import mmltm  # noqa: F401  (registers LTMSwinTransformer)
    from mmdet.registry import MODELS
    if config is not None:
        from mmengine.config import Config
        backbone_cfg = Config.fromfile(config).model.backbone
        backbone_cfg.update(ltm_kwargs)
    else:
        sizes = swin_sizes(state)
        n = len(sizes['depths'])
        # one head per stage: heads only split attention, not the mask modules
        backbone_cfg = dict(type='LTMSwinTransformer', num_heads=(1, ) * n,
                            strides=(4, 2, 2, 2)[:n], out_indices=tuple(range(n)),
                            **sizes, **ltm_kwargs)
    backbone = MODELS.build(backbone_cfg)
    return OrderedDict((_BACKBONE_PREFIX + k, v.detach().clone())
                       for k, v in backbone.state_dict().items())


def convert(state: dict, config: Optional[str] = None, **ltm_kwargs):
    """Return (new_state, report) where report lists mapped/added/dropped keys.

    Args:
        state: the source state dict.
        config: an LTM config whose backbone the output is for (optional).
        ltm_kwargs: LTMSwinTransformer arguments (``init_step``,
            ``merge_mode``, ``compression_ratio``) of the backbone the mask
            modules are taken from.
    """
    fmt = detect_format(state)
    if fmt == 'official':
        from mmdet.models.backbones.swin import swin_converter  # slow import: only here
        mapped = swin_converter(state)  # adds 'backbone.', drops 'head.*'
    elif fmt == 'bare':
        mapped = OrderedDict((_BACKBONE_PREFIX + k, v) for k, v in state.items())
    else:
        mapped = OrderedDict(state)
    new_state = OrderedDict((k, v) for k, v in mapped.items() if k.startswith(_BACKBONE_PREFIX))
    dropped = sorted(set(state) - set(new_state) if fmt != 'official'
                     else {k for k in state if k.startswith('head')})
    added = []
    blocks = {m.group(1) for k in new_state
              for m in [re.match(r'backbone\.(stages\.\d+\.blocks\.\d+)\.', k)] if m}
    fresh = fresh_ltm_state(new_state, config, **ltm_kwargs)
    for key, value in fresh.items():
        if '.token_merger.' not in key:
            continue
        block = re.match(r'backbone\.(stages\.\d+\.blocks\.\d+)\.', key)
        if block is None or block.group(1) not in blocks:
            raise SystemExit(f'error: the LTM backbone has {key}, but the checkpoint has no '
                             f'such block: does --config match the checkpoint\'s sizes?')
        if key not in new_state:
            new_state[key] = value
            added.append(key)
    # only meaningful against a config's backbone (the default twin has one
    # head per stage and the LTM defaults, so shapes of other keys may differ)
    unmatched = (dict(not_in_config=sorted(set(new_state) - set(fresh)),
                      missing_for_config=sorted(set(fresh) - set(new_state)))
                 if config is not None else None)
    return new_state, dict(format=fmt, mapped=len(new_state) - len(added),
                           added=added, dropped=dropped, unmatched=unmatched)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('src', help='Swin checkpoint (official / mmpretrain / mmdet / mmseg)')
    parser.add_argument('dst', help='output LTM-Swin checkpoint (.pth)')
    parser.add_argument('--config', help='LTM config the output is for: its backbone gives '
                        'the mask modules (default: LTMSwinTransformer of the checkpoint\'s '
                        'sizes)')
    parser.add_argument('--init-step', type=float,
                        help='initial step size eta of every mask module (default: the '
                        "backbone's, 1.0)")
    parser.add_argument('--merge-mode', help="the backbone's merge_mode (default: its own)")
    parser.add_argument('--compression-ratio', type=float,
                        help="the backbone's compression_ratio (default: its own)")
    args = parser.parse_args(argv)
    if not Path(args.src).is_file():
        parser.error(f'source checkpoint {args.src!r} not found')
    if args.config is not None and not Path(args.config).is_file():
        parser.error(f'--config {args.config!r} not found')
    if args.init_step is not None and args.init_step <= 0:
        parser.error(f'--init-step={args.init_step} must be > 0')
    ltm_kwargs = {k: v for k, v in (('init_step', args.init_step),
                                    ('merge_mode', args.merge_mode),
                                    ('compression_ratio', args.compression_ratio))
                  if v is not None}
    new_state, report = convert(_load(args.src), args.config, **ltm_kwargs)
    Path(args.dst).parent.mkdir(parents=True, exist_ok=True)
    torch.save({'state_dict': new_state, 'meta': {'converted_from': args.src,
                                                   'format': report['format']}}, args.dst)
    print(f'source format: {report["format"]}')
    print(f'mapped: {report["mapped"]} tensors (mmdet Swin keys under "backbone.")')
    print(f'added: {len(report["added"])} token-merger parameters'
          + ''.join(f'\n  + {k}' for k in report['added']))
    print(f'dropped: {len(report["dropped"])} keys'
          + ''.join(f'\n  - {k}' for k in report['dropped'][:20])
          + ('\n  ...' if len(report['dropped']) > 20 else ''))
    if report['unmatched'] is not None:
        for what, keys in (('not in the --config backbone', report['unmatched']['not_in_config']),
                           ('missing for the --config backbone',
                            report['unmatched']['missing_for_config'])):
            print(f'{what}: {len(keys)} keys' + ''.join(f'\n  ! {k}' for k in keys[:20])
                  + ('\n  ...' if len(keys) > 20 else ''))
    print(f'saved {args.dst}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
