"""The LTM block pieces every LTM backbone shares.

* :mod:`.ltm_block`: :class:`LTMBlockMixin` (re-classing a built block, the
  DDP tie of a block that did not merge, mask recording),
  :func:`ffn_residual_branch`, :func:`reclass`, :func:`tie_unused_parameters`;
* :mod:`.ltm_backbone`: :class:`LTMBackboneMixin` (``token_mergers``,
  ``record_merge_masks``, ``last_merge_masks``, default ratios that follow
  the sizes), :func:`lookup_preset`, :func:`match_preset`,
  :func:`with_default_ratios`;
* :mod:`.merge_scope`: ``merge_scope`` ('ffn' | 'stage'),
  :class:`StageRunner` (one stage's blocks in either scope),
  :class:`MergedStage` (the residual unmerge of a merged stage);
* :mod:`.token_merger_factory`: :func:`token_merger_factory`, the checked
  builder of every block's mask module;
* :mod:`.transformer_encoder_layer`: :class:`LTMTransformerEncoderLayer`
  (mmpretrain's encoder layer as an LTM block; LTM-ViT, LTM-MobileViT) and
  :func:`convert_encoder_layers`.

Backbone files keep only what is specific to their backbone.
"""
from .ltm_backbone import (LTMBackboneMixin, lookup_preset, match_preset,
                           with_default_ratios)
from .ltm_block import (NOT_RECORDED, LTMBlockMixin, ffn_residual_branch, reclass,
                        tie_unused_parameters)
from .merge_scope import (GRIDLESS_MODES, MERGE_SCOPES, MergedStage, StageRunner,
                          check_merge_scope, check_scope_mode, check_stage_ratios)
from .token_merger_factory import MODE_ARGUMENTS, token_merger_factory
from .transformer_encoder_layer import LTMTransformerEncoderLayer, convert_encoder_layers

__all__ = [
    'LTMBackboneMixin', 'lookup_preset', 'match_preset', 'with_default_ratios',
    'NOT_RECORDED', 'LTMBlockMixin',
    'ffn_residual_branch', 'reclass', 'tie_unused_parameters', 'MODE_ARGUMENTS',
    'token_merger_factory', 'LTMTransformerEncoderLayer', 'convert_encoder_layers',
    'GRIDLESS_MODES', 'MERGE_SCOPES', 'MergedStage', 'StageRunner', 'check_merge_scope',
    'check_scope_mode', 'check_stage_ratios'
]
