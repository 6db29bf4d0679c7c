#!/usr/bin/env python
"""Convert a Swin checkpoint into an LTM-Swin checkpoint.

Accepts an official Swin release (``layers.*`` keys, ``model`` dict), an
mmpretrain classifier or an mmdet/mmseg model checkpoint (``backbone.*``
keys), or a bare backbone state dict. Writes ``{'state_dict': {...}}`` with
``backbone.``-prefixed mmdet Swin keys plus one
``backbone.stages.{i}.blocks.{j}.token_merger.log_step`` per block,
initialised as ``LTMSwinTransformer`` does (eta = ``--init-step``, 1.0),
and prints which keys were mapped, added and dropped.

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


def convert(state: dict, init_step: float = 1.0):
    """Return (new_state, report) where report lists mapped/added/dropped keys."""
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
    blocks = sorted({m.group(1) for k in new_state
                     for m in [re.match(r'backbone\.(stages\.\d+\.blocks\.\d+)\.', k)] if m})
    added = []
    for block in blocks:
        key = f'{_BACKBONE_PREFIX}{block}.token_merger.log_step'
        if key not in new_state:
            new_state[key] = torch.tensor(math.log(init_step))
            added.append(key)
    return new_state, dict(format=fmt, mapped=len(new_state) - len(added),
                           added=added, dropped=dropped)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('src', help='Swin checkpoint (official / mmpretrain / mmdet / mmseg)')
    parser.add_argument('dst', help='output LTM-Swin checkpoint (.pth)')
    parser.add_argument('--init-step', type=float, default=1.0,
                        help='initial step size eta of every mask module (default 1.0)')
    args = parser.parse_args(argv)
    if not Path(args.src).is_file():
        parser.error(f'source checkpoint {args.src!r} not found')
    if args.init_step <= 0:
        parser.error(f'--init-step={args.init_step} must be > 0')
    new_state, report = convert(_load(args.src), args.init_step)
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
    print(f'saved {args.dst}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
