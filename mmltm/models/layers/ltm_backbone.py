"""What every LTM backbone adds to the backbone class it extends.

:class:`LTMBackboneMixin` gives all four LTM backbones the same interface
to their mask modules and the same rule for the default
``compression_ratio``:

* ``token_mergers``: every block's mask module, flat, in forward order;
* ``record_merge_masks(enabled)`` / ``last_merge_masks``: the masks of the
  last forward, **one list per stage** of the backbone (the blocks of a
  stage share a token grid and chain their masks), each holding the
  ``MergeMask`` of every LTM block of that stage in forward order, ``None``
  for a block that did not merge. ``last_merge_masks[i]`` is stage ``i`` as
  the base backbone counts its stages (``out_indices``): LTM-Swin 4 stages;
  LTM-EfficientViT 5 (stages 0-2 hold no LTM block: empty lists); LTM-
  MobileViT 5 (``layers[i]``; layers 0-1 hold none); LTM-ViT has no stages
  and one shared grid, so one list of all its layers.
  ``sum(last_merge_masks, [])`` lines up with ``token_mergers``;
* the default ratio follows the *sizes*: a backbone built with the sizes of
  a preset (by ``arch``, or by giving the sizes alone) gets that preset's
  default ratio (:func:`match_preset`, :meth:`default_compression_ratio`),
  other sizes the backbone's fallback ratio. The defaults depend on the
  ``merge_scope`` (:mod:`.merge_scope`): ``default_compression_ratios`` /
  ``fallback_compression_ratio`` for ``'ffn'``,
  ``stage_default_compression_ratios`` /
  ``stage_fallback_compression_ratio`` for ``'stage'`` (each chosen per
  backbone for the paper's FLOPs ratios in its scope).
"""
from typing import Any, Iterable, List, Mapping, Optional, Tuple

import torch.nn as nn

from mmltm.ops import MergeMask, check_compression_ratio
from .ltm_block import NOT_RECORDED, LTMBlockMixin
from .merge_scope import check_merge_scope

__all__ = ['LTMBackboneMixin', 'match_preset', 'lookup_preset', 'with_default_ratios']


def _canonical(value: Any) -> Any:
    """Lists and tuples (also nested) compare equal by content."""
    if isinstance(value, (list, tuple)):
        return tuple(_canonical(v) for v in value)
    return value


def _sizes(settings: Any, keys: Optional[Iterable[str]]) -> Any:
    if keys is not None and isinstance(settings, Mapping):
        return {k: _canonical(settings.get(k)) for k in keys}
    return _canonical(settings)


def with_default_ratios(zoo: Mapping[str, Mapping], defaults: Mapping[str, float],
                        fallback: float) -> dict:
    """A copy of the arch ``zoo`` with each preset's default
    ``compression_ratio`` added (``fallback`` for presets not in
    ``defaults``), so that the ratio shows next to the sizes."""
    return {name: {**settings, 'compression_ratio': defaults.get(name, fallback)}
            for name, settings in zoo.items()}


def lookup_preset(arch: Any, presets: Mapping[str, Any],
                  aliases: Optional[Mapping[str, str]] = None,
                  custom: str = 'a dict') -> Tuple[Optional[str], Any]:
    """``(name, sizes)`` of the preset named ``arch`` (case-insensitive,
    through ``aliases``), or ``(None, arch)`` when ``arch`` is not a string
    (custom sizes, checked by the base backbone).

    Raises:
        ValueError: for an unknown name, listing the allowed ones.
    """
    if not isinstance(arch, str):
        return None, arch
    key = arch.lower()
    key = (aliases or {}).get(key, key)
    if key not in presets:
        names = sorted(presets) + sorted(aliases or {})
        raise ValueError(f'arch={arch!r} is not supported; allowed: {names} or {custom}')
    return key, presets[key]


def match_preset(settings: Any, presets: Mapping[str, Any],
                 prefer: Optional[str] = None) -> Optional[str]:
    """The name of the preset whose sizes equal ``settings``, or None.

    Args:
        settings (dict | list): the resolved sizes of a backbone (a dict of
            sizes, or a layer list as MobileViT's arch).
        presets (dict): name -> sizes, as the base backbone's arch zoo; for
            dict presets only the preset's own keys are compared.
        prefer (str, optional): the preset to report when several match
            (the ``arch`` the user named).
    """
    def matches(name: str) -> bool:
        preset = presets[name]
        keys = list(preset) if isinstance(preset, Mapping) else None
        return _sizes(settings, keys) == _sizes(preset, keys)

    if prefer is not None and prefer in presets and matches(prefer):
        return prefer
    return next((name for name in presets if matches(name)), None)


class LTMBackboneMixin:
    """Mixed into every LTM backbone class, before the base backbone class.

    A subclass implements :meth:`ltm_stages` and sets
    :attr:`default_compression_ratios`, :attr:`fallback_compression_ratio`
    and their ``'stage'``-scope counterparts.
    """
    #: the default ``compression_ratio`` of each preset (arch) name ('ffn')
    default_compression_ratios: Mapping[str, Any] = {}
    #: the default for sizes that match no preset ('ffn')
    fallback_compression_ratio: Any
    #: the defaults in ``merge_scope='stage'``
    stage_default_compression_ratios: Mapping[str, Any] = {}
    stage_fallback_compression_ratio: Any

    def ltm_stages(self) -> List[List[LTMBlockMixin]]:
        """The LTM blocks of every stage, in forward order (see the module
        docstring for what a stage is per backbone)."""
        raise NotImplementedError

    @classmethod
    def default_compression_ratio(cls, preset: Optional[str],
                                  merge_scope: str = 'ffn') -> Any:
        """The default ratio of ``preset`` (None: sizes of no preset) in
        ``merge_scope``."""
        if check_merge_scope(merge_scope) == 'stage':
            return cls.stage_default_compression_ratios.get(
                preset, cls.stage_fallback_compression_ratio)
        return cls.default_compression_ratios.get(preset, cls.fallback_compression_ratio)

    @classmethod
    def resolve_compression_ratio(cls, compression_ratio: Optional[float],
                                  preset: Optional[str], merge_scope: str = 'ffn'
                                  ) -> float:
        """``compression_ratio``, or the preset's default in ``merge_scope``
        when it is None; checked to lie in (0, 1]."""
        if compression_ratio is None:
            compression_ratio = cls.default_compression_ratio(preset, merge_scope)
        return check_compression_ratio(compression_ratio)

    def train(self, mode: bool = True):
        """As the base backbone's (frozen stages stay frozen), but returns
        ``self``: mmdet's ``SwinTransformer.train()`` and mmpretrain's
        ``VisionTransformer.train()`` / ``MobileViT.train()`` return None,
        which breaks ``model.eval()`` chaining."""
        super().train(mode)
        return self

    @property
    def ltm_blocks(self) -> List[LTMBlockMixin]:
        """Every LTM block, flat, in forward order."""
        return [block for stage in self.ltm_stages() for block in stage]

    @property
    def token_mergers(self) -> List[nn.Module]:
        """Every block's mask module, flat, in forward order."""
        return [block.token_merger for block in self.ltm_blocks]

    def record_merge_masks(self, enabled: bool = True) -> None:
        """Keep (``enabled``) or stop keeping every block's mask of the last
        forward (:attr:`last_merge_masks`); either way the recorded masks
        are dropped."""
        for block in self.ltm_blocks:
            block.record_mask = bool(enabled)
            block.last_mask = NOT_RECORDED

    @property
    def last_merge_masks(self) -> List[List[Optional[MergeMask]]]:
        """The masks of the last forward, one list per stage (module
        docstring).

        Raises:
            RuntimeError: when recording is off or no forward ran since
                :meth:`record_merge_masks` switched it on.
        """
        stages = self.ltm_stages()
        blocks = [block for stage in stages for block in stage]
        if not all(block.record_mask for block in blocks):
            raise RuntimeError(f'{type(self).__name__}.last_merge_masks: recording is off; '
                               f'call record_merge_masks(True) before the forward')
        if any(block.last_mask is NOT_RECORDED for block in blocks):
            raise RuntimeError(f'{type(self).__name__}.last_merge_masks: no forward '
                               f'since record_merge_masks(True)')
        return [[block.last_mask for block in stage] for stage in stages]
