"""Loading pretrained weights into an LTM backbone, with key checks.

OpenMMLab backbones load pretrained weights with ``strict=False`` and say
nothing about keys that did not match, so a wrong checkpoint silently leaves a
randomly initialised backbone. LTM backbones share the base backbone's keys
plus one ``token_merger.log_step`` per block; here we load with those new
keys allowed to be missing, and raise a clear error for anything else.
"""
import re
from collections import OrderedDict
from typing import Callable, Dict, Iterable, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.logging import MMLogger, print_log
from mmengine.runner import CheckpointLoader

_MERGER_KEY = re.compile(r'(^|\.)token_merger\.')
# buffers that official/converted checkpoints carry or lack depending on the
# exporter; they are recomputed by the model, so a mismatch is harmless
_IGNORABLE = re.compile(r'(relative_position_index|attn_mask)$')


def is_token_merger_key(key: str) -> bool:
    """True for the parameters LTM adds to a base backbone."""
    return bool(_MERGER_KEY.search(key))


def _pick_state_dict(ckpt) -> Dict[str, torch.Tensor]:
    if not isinstance(ckpt, dict):
        raise ValueError(f'checkpoint is a {type(ckpt).__name__}, expected a dict')
    for key in ('state_dict', 'model', 'module'):
        if key in ckpt and isinstance(ckpt[key], dict):
            return ckpt[key]
    return ckpt


def resize_relative_position_tables(state_dict: Dict[str, torch.Tensor],
                                    model: nn.Module) -> None:
    """Bicubic-resize ``relative_position_bias_table`` entries whose window
    size differs from the model's (a checkpoint trained with window 7 used
    with window 12, say). In place."""
    own = model.state_dict()
    for key in [k for k in state_dict if k.endswith('relative_position_bias_table')]:
        if key not in own:
            continue
        src, dst = state_dict[key], own[key]
        (l_src, heads_src), (l_dst, heads_dst) = src.shape, dst.shape
        if heads_src != heads_dst or l_src == l_dst:
            continue
        s_src, s_dst = int(l_src ** 0.5), int(l_dst ** 0.5)
        grid = src.t().reshape(1, heads_src, s_src, s_src).float()
        grid = F.interpolate(grid, size=(s_dst, s_dst), mode='bicubic', align_corners=False)
        state_dict[key] = grid.reshape(heads_dst, l_dst).t().to(src.dtype).contiguous()


def load_backbone_state_dict(model: nn.Module,
                             checkpoint: str,
                             prefix: Optional[str] = 'backbone.',
                             converter: Optional[Callable[[Dict], Dict]] = None,
                             allow_missing: Sequence[str] = (),
                             logger: Optional[MMLogger] = None) -> Dict[str, list]:
    """Load a backbone's weights from ``checkpoint`` and check the keys.

    Args:
        model: the backbone.
        checkpoint: path or URL understood by mmengine's ``CheckpointLoader``.
        prefix: keys are taken from under this prefix when the checkpoint has
            it (a detector/classifier checkpoint); a bare backbone state dict
            (no key with the prefix) is used as is.
        converter: applied to the raw state dict first (e.g. mmdet's
            ``swin_converter`` for official Swin checkpoints).
        allow_missing: regexes of further keys that may be absent (e.g. the
            per-stage output norms a classification checkpoint lacks).

    Returns:
        dict with ``missing`` (allowed missing keys: token-merger ones and
        ``allow_missing``) and ``unexpected``.

    Raises:
        ValueError: if parameters other than the LTM token-merger ones are
            missing, or a tensor has the wrong shape; the message names them.
    """
    logger = logger or MMLogger.get_current_instance()
    raw = _pick_state_dict(CheckpointLoader.load_checkpoint(
        checkpoint, map_location='cpu', logger=logger))
    if converter is not None:
        raw = converter(raw)
    if prefix and any(k.startswith(prefix) for k in raw):
        state = OrderedDict((k[len(prefix):], v) for k, v in raw.items()
                            if k.startswith(prefix))
    else:
        state = OrderedDict(raw)
    if state and all(k.startswith('module.') for k in state):
        state = OrderedDict((k[7:], v) for k, v in state.items())
    resize_relative_position_tables(state, model)

    own = model.state_dict()
    wrong_shape = [f'{k}: checkpoint {tuple(v.shape)} vs model {tuple(own[k].shape)}'
                   for k, v in state.items() if k in own and own[k].shape != v.shape]
    missing = [k for k in own if k not in state and not _IGNORABLE.search(k)]
    allowed = [re.compile(p) for p in allow_missing]
    ok_missing = [k for k in missing
                  if is_token_merger_key(k) or any(p.search(k) for p in allowed)]
    bad_missing = [k for k in missing if k not in ok_missing]
    unexpected = [k for k in state if k not in own and not _IGNORABLE.search(k)]
    name = type(model).__name__
    if wrong_shape or bad_missing:
        hint = ''
        if any(k.startswith(('layers.', 'patch_embed.proj.')) for k in raw):
            hint = (' The checkpoint looks like an official Swin release: set '
                    'convert_weights=True.')
        raise ValueError(
            f'checkpoint {checkpoint!r} does not match {name}: '
            f'{len(bad_missing)} parameter(s) missing (e.g. {_head(bad_missing)}), '
            f'{len(wrong_shape)} with a wrong shape (e.g. {_head(wrong_shape)}), '
            f'{len(unexpected)} unexpected (e.g. {_head(unexpected)}).{hint}')
    model.load_state_dict(state, strict=False)
    n_merger = sum(is_token_merger_key(k) for k in ok_missing)
    print_log(f'{name}: loaded {len(state) - len(unexpected)} tensors from {checkpoint}; '
              f'{n_merger} LTM token-merger parameter(s) and '
              f'{len(ok_missing) - n_merger} other allowed key(s) '
              f'({_head([k for k in ok_missing if not is_token_merger_key(k)])}) keep '
              f'their initial values; {len(unexpected)} unexpected key(s) ignored'
              + (f' ({_head(unexpected)})' if unexpected else ''),
              logger=logger)
    return dict(missing=ok_missing, unexpected=unexpected)


def _head(items: Iterable[str], n: int = 3) -> str:
    items = list(items)
    return ', '.join(items[:n]) + (', ...' if len(items) > n else '') if items else '-'
