"""Building the mask modules of a backbone's LTM blocks from its arguments.

Every LTM backbone takes ``merge_mode``, ``compression_ratio``,
``merger_cfg`` (extra keyword arguments of the mask module) and backbone
arguments that some modes use (``init_step``; Swin's ``window_size``).
:func:`token_merger_factory` checks them all *before* the (slow) base
backbone is built, by building one probe module, and returns the function
that builds the mask module of a block with ``dims`` token channels.
"""
import functools
from typing import Callable, Dict, Mapping, Optional, Tuple

import torch.nn as nn

from mmltm.ops import build_token_merger, check_compression_ratio, check_merge_mode

__all__ = ['MODE_ARGUMENTS', 'token_merger_factory']

#: backbone arguments that the mask module of each merge mode takes
#: (passed to :func:`~mmltm.ops.build_token_merger` under the same name)
MODE_ARGUMENTS: Dict[str, Tuple[str, ...]] = {
    'ltm': ('init_step', ),
    'grid': ('init_step', ),
    'tome': ('window_size', ),
}

#: arguments the backbone sets itself
_RESERVED = ('mode', 'compression_ratio', 'dims')


def token_merger_factory(merge_mode: str,
                         compression_ratio: float,
                         merger_cfg: Optional[Mapping] = None,
                         options: Optional[Mapping] = None,
                         context: Optional[Mapping] = None,
                         probe_dims: Optional[int] = None
                         ) -> Callable[[int], nn.Module]:
    """Check a backbone's merging arguments; return ``dims -> mask module``.

    Args:
        merge_mode (str): one of :data:`mmltm.ops.MERGE_MODES`.
        compression_ratio (float): N'/N in (0, 1].
        merger_cfg (dict, optional): extra keyword arguments of the mask
            module (e.g. ``dict(learnable_step=False)``). It may not set
            ``mode``, ``compression_ratio`` or ``dims``, nor repeat a given
            ``options`` entry.
        options (dict, optional): backbone arguments the *user* sets for the
            mask module (``init_step``); ``None`` values mean "not given".
            A given one that ``merge_mode`` does not take is an error.
        context (dict, optional): backbone arguments that a mode may use
            (Swin's ``window_size`` for 'tome'); passed only to the modes
            that take them (:data:`MODE_ARGUMENTS`), and ``merger_cfg``
            overrides them.
        probe_dims (int, optional): the ``dims`` of the probe module built
            here to check the keyword arguments (the first block's).

    Returns:
        Callable: ``make(dims)`` builds one block's mask module.

    Raises:
        ValueError: on a bad mode, ratio, reserved or repeated key, or an
            option the mode does not take, naming the value.
        TypeError: on a ``merger_cfg`` that is not a dict or does not fit
            the mode's module.
    """
    check_merge_mode(merge_mode)
    ratio = check_compression_ratio(compression_ratio)
    if merger_cfg is None:
        merger_cfg = {}
    if not isinstance(merger_cfg, Mapping):
        raise TypeError(f'merger_cfg={merger_cfg!r} must be a dict of keyword '
                        f'arguments of the mask module, or None')
    reserved = sorted(set(merger_cfg) & set(_RESERVED))
    if reserved:
        raise ValueError(f'merger_cfg={dict(merger_cfg)!r} may not set {reserved}: '
                         f'the backbone sets them (merge_mode, compression_ratio, '
                         f'the block channels)')
    takes = MODE_ARGUMENTS.get(merge_mode, ())
    kwargs = {name: value for name, value in (context or {}).items()
              if name in takes and value is not None}
    kwargs.update(merger_cfg)
    for name, value in (options or {}).items():
        if value is None:
            continue
        if name not in takes:
            raise ValueError(f'{name}={value!r} does not apply to merge_mode='
                             f'{merge_mode!r} (its mask module takes {list(takes)})')
        if name in merger_cfg:
            raise ValueError(f'{name} is given twice: {name}={value!r} and '
                             f'merger_cfg={dict(merger_cfg)!r}')
        kwargs[name] = value
    make = functools.partial(build_token_merger, merge_mode, ratio, **kwargs)
    try:
        make(dims=probe_dims)
    except TypeError as err:
        raise TypeError(f'merge_mode={merge_mode!r} with merger_cfg='
                        f'{dict(merger_cfg)!r}: {err}') from err

    def build(dims: int) -> nn.Module:
        return make(dims=int(dims))

    return build
