"""Variants of one LTM config to compare in one interleaved run: the merge
mode, the merge scope and the compression ratio, written
``MODE[/SCOPE][@RATIO]`` and turned into config overrides of the backbone.

Examples: ``ltm`` (the config as it is, mode 'ltm'), ``ltm/stage`` (the
learned mask, merged tokens through attention for the rest of the stage),
``ltm/stage@default`` (the same at the backbone's own default ratio for the
scope: ``compression_ratio=None``), ``tome@0.6`` (ToMe's matching at ratio
0.6, the config's scope). Parts left out keep the config's setting.
"""
from typing import Dict, List, NamedTuple, Optional, Sequence

from mmltm.models.layers.merge_scope import MERGE_SCOPES  # 'ffn', 'stage'

#: the ``RATIO`` that means "the backbone's own default"
DEFAULT_RATIO = 'default'


class Variant(NamedTuple):
    """One variant: its name (the spec as written) and what it overrides
    (None: the config's setting)."""
    name: str
    mode: str
    scope: Optional[str] = None
    ratio: Optional[object] = None  # a float, DEFAULT_RATIO or None

    def cfg_options(self, base: Optional[dict] = None) -> Dict:
        """``base`` plus this variant's overrides of ``model.backbone``
        (mode ``'ltm'`` is every LTM backbone's default and is set
        explicitly all the same, so that a config with another mode is
        measured as named)."""
        opts = dict(base or {})
        opts['model.backbone.merge_mode'] = self.mode
        if self.scope is not None:
            opts['model.backbone.merge_scope'] = self.scope
        if self.ratio == DEFAULT_RATIO:
            opts['model.backbone.compression_ratio'] = None
        elif self.ratio is not None:
            opts['model.backbone.compression_ratio'] = self.ratio
        return opts


def parse_variant(text: str) -> Variant:
    """``'MODE[/SCOPE][@RATIO]'`` -> :class:`Variant`.

    Args:
        text: ``MODE`` one of :data:`mmltm.ops.MERGE_MODES`, ``SCOPE`` one of
            :data:`mmltm.models.layers.merge_scope.MERGE_SCOPES`, ``RATIO`` a compression ratio in (0, 1] or
            ``'default'``.
    """
    from mmltm.ops import MERGE_MODES, check_compression_ratio
    allowed = (f"allowed: MODE[/SCOPE][@RATIO], MODE in {list(MERGE_MODES)}, SCOPE in "
               f"{list(MERGE_SCOPES)}, RATIO in (0, 1] or {DEFAULT_RATIO!r}, e.g. ltm/stage")
    rest, _, ratio_text = str(text).partition('@')
    mode, _, scope = rest.partition('/')
    if mode not in MERGE_MODES:
        raise ValueError(f'variant {text!r}: merge mode {mode!r} is not allowed; {allowed}')
    if '/' in rest and scope not in MERGE_SCOPES:
        raise ValueError(f'variant {text!r}: merge scope {scope!r} is not allowed; {allowed}')
    ratio: Optional[object] = None
    if '@' in text:
        if ratio_text == DEFAULT_RATIO:
            ratio = DEFAULT_RATIO
        else:
            try:
                ratio = check_compression_ratio(float(ratio_text), f'variant {text!r} ratio')
            except ValueError as err:
                raise ValueError(f'variant {text!r}: ratio {ratio_text!r} is not allowed '
                                 f'({err}); {allowed}') from None
    return Variant(str(text), mode, scope or None, ratio)


def parse_variants(texts: Sequence[str]) -> List[Variant]:
    """:func:`parse_variant` of each; names must be unique (two equal specs
    would be two copies of one model)."""
    variants = [parse_variant(t) for t in texts]
    names = [v.name for v in variants]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f'variants {dup} are given more than once; give each once')
    return variants
