"""LTM-ViT: mmpretrain's Vision Transformer with every block an LTM block.

The paper (Wang & Yang, arXiv 2407.15219) replaces all transformer blocks of
ViT-S/B with LTM blocks and reports LTM-ViT-S at 3.7 G vs 4.3 G FLOPs (0.86x)
and LTM-ViT-B at 12.9 G vs 17.6 G (0.73x), with unchanged parameter counts.
This module extends mmpretrain's ``VisionTransformer`` (``arch='deit-small'``
= ViT-S/16, ``'deit-base'`` = ViT-B/16, ...), so a user changes only
``type=`` in an existing mmpretrain / mmseg / mmdet config.

The LTM block (merge math in :mod:`mmltm.ops.token_merging`, (L1)-(L6))::

    Z    = X + MSA(LN(X))                       # all 1 + N tokens
    G    = TokenMerger(Z_patch, (h, w), G_prev) # patch tokens only
    X~   = [Z_cls, merge_tokens(Z_patch, G)]    # 1 + N' tokens
    D    = FFN(LN(X~))                          # the FFN on 1 + N' tokens
    out  = [Z_cls + D_cls, Z_patch + unmerge_tokens(D_patch, G)]

Decisions (the paper leaves them open; the ops docstring lists the shared
ones):
  * The class token never merges; it runs through the same FFN call as the
    merged patch tokens (one Linear on ``1 + N'`` tokens, which is also what
    the FLOP counter sees).
  * All blocks share one patch grid, so the mask chains through the whole
    network: block ``l`` starts its mask from block ``l-1``'s.
  * The residual stream stays at full resolution (the FFN result is
    unmerged in every block), so ``out_type='featmap'`` returns the ordinary
    stride-16 ``(B, C, h, w)`` map for dense necks at any ``out_indices``.
  * At ``compression_ratio=1.0`` (or on a grid too small to merge) a block
    runs mmpretrain's own forward: outputs equal ``VisionTransformer``'s.
  * Default ratios (per arch, :data:`DEFAULT_VIT_COMPRESSION_RATIOS`) are
    chosen to reproduce the paper's FLOP ratios with mmengine's counter at
    224x224 (``tools/analysis_tools/get_flops.py``); the paper's own values
    are not known.
  * ``merge_scope='stage'`` (:mod:`mmltm.models.layers.merge_scope`): ViT
    has one grid, so one merge. The layer ``merge_layer`` (default
    ``num_layers // 4``: layer 3 of 12) merges; layers before it run
    mmpretrain's forward on all ``1 + N`` tokens, the layers after it run
    mmpretrain's forward (global attention included) on the ``1 + N'``
    merged tokens. A later merge layer keeps the early layers, where the
    features the mask module compares are still shallow, at full
    resolution, and a lower ratio still reaches the paper's FLOPs
    (:data:`DEFAULT_VIT_STAGE_COMPRESSION_RATIOS`). Outputs keep their
    shapes: ``'featmap'``, ``'raw'`` and ``'avg_featmap'`` unmerge the patch
    tokens as a residual (``Z0 + unmerge(m - m0, G)``, then the final norm)
    at every output index after the merge; ``'cls_token'`` needs no unmerge
    (the class token is never merged, LayerNorm is per token).
  * ``merge_mode='tome'`` swaps the learned mask module for ToMe's
    training-free bipartite matching (:mod:`mmltm.ops.tome`) in the same
    block, for like-for-like comparisons.
  * mmpretrain builds its layers inside ``VisionTransformer.__init__`` with
    no hook to pick their class, so the built layers are re-classed into
    :class:`~mmltm.models.layers.LTMTransformerEncoderLayer` (shared with
    LTM-MobileViT) and given a ``token_merger`` (the approach of LTM-Swin).
    Parameters and state-dict keys stay exactly mmpretrain's, plus the mask
    module's (``layers.{i}.token_merger.*``) per block, so ViT/DeiT
    checkpoints load with only those keys missing.
"""
from typing import Dict, List, Optional, Tuple, Union

import torch
from mmpretrain.models.backbones.vision_transformer import VisionTransformer
from mmpretrain.models.utils import resize_pos_embed

from mmltm.models.layers import (LTMBackboneMixin, LTMTransformerEncoderLayer,
                                 StageRunner, check_merge_scope,
                                 convert_encoder_layers, lookup_preset,
                                 match_preset, token_merger_factory,
                                 with_default_ratios)
from mmltm.ops import check_merge_mode
from mmltm.registry import register_model

#: default ``compression_ratio`` per arch (see module docstring); archs not
#: listed use :data:`DEFAULT_COMPRESSION_RATIO`.
DEFAULT_VIT_COMPRESSION_RATIOS: Dict[str, float] = {
    # ViT-S/16 @224 (14x14 patches): the paper's 3.7 / 4.3 G = 0.860x needs
    # ~154 of 196 tokens in the FFNs; 0.78 plans a 12x13 = 156 grid and
    # measures 3.68 / 4.25 G = 0.867x with mmengine's counter.
    **dict.fromkeys(['deit-s', 'deit-small'], 0.78),
    # ViT-B/16 @224: the paper's 12.9 / 17.6 G = 0.733x; 0.6 plans 10x12 =
    # 120 tokens: 12.56 / 16.87 G = 0.745x (the next grid down, 0.55 ->
    # 110 tokens, gives 0.711x).
    **dict.fromkeys(['deit-b', 'deit-base', 'b', 'base'], 0.6),
}
DEFAULT_COMPRESSION_RATIO = 0.8

#: default ``compression_ratio`` per arch in ``merge_scope='stage'`` (merge at
#: layer ``num_layers // 4`` = 3), measured with mmengine's counter at
#: 224x224 (tests/test_models/test_merge_scope.py): ViT-S 0.75 plans 12x13 =
#: 156 of 196 tokens, 0.856x (paper 0.86x); ViT-B 0.6 plans 10x12 = 120,
#: 0.723x (paper 0.73x; 0.64 gives 0.767x).
DEFAULT_VIT_STAGE_COMPRESSION_RATIOS: Dict[str, float] = {
    **dict.fromkeys(['deit-s', 'deit-small'], 0.75),
    **dict.fromkeys(['deit-b', 'deit-base', 'b', 'base'], 0.6),
}
DEFAULT_STAGE_COMPRESSION_RATIO = 0.75

#: the keys of a ViT arch that fix its sizes (mmpretrain's essential keys)
_SIZE_KEYS = ('embed_dims', 'num_layers', 'num_heads', 'feedforward_channels')


@register_model()
class LTMVisionTransformer(LTMBackboneMixin, VisionTransformer):
    """Vision Transformer with Learnable Token Merging (LTM-ViT).

    A drop-in for mmpretrain's ``VisionTransformer``: every argument keeps
    its meaning, outputs have the same shapes. ``token_mergers``,
    ``record_merge_masks`` and ``last_merge_masks`` (one list holding all
    layers: ViT has one grid) are :class:`~mmltm.models.layers.
    LTMBackboneMixin`'s.

    Args:
        arch (str | dict): as in ``VisionTransformer`` (e.g. ``'deit-small'``
            for ViT-S/16, ``'deit-base'`` for ViT-B/16), or a dict of the
            sizes (``embed_dims``, ``num_layers``, ``num_heads``,
            ``feedforward_channels``) that may carry its own
            ``compression_ratio``. Default: ``'deit-small'``.
        compression_ratio (float, optional): N'/N, the fraction of patch
            tokens each block's FFN keeps, in (0, 1]; 1.0 reproduces
            ``VisionTransformer`` exactly. Default: None, i.e. a dict arch's
            own ``compression_ratio``, else the default of the preset the
            sizes equal (:data:`DEFAULT_VIT_COMPRESSION_RATIOS`: DeiT-S 0.78,
            DeiT-B / ViT-B 0.6; a dict with DeiT-B's sizes counts as DeiT-B),
            else 0.8.
        init_step (float, optional): initial step size eta of each mask
            module, for the merge modes that have one. Default: None (the
            module's default, 1.0).
        merge_mode (str): the mask module of every block: ``'ltm'`` (the
            learned :class:`~mmltm.ops.TokenMerger`), ``'grid'`` (the fixed
            grid) or ``'tome'`` (ToMe's training-free bipartite matching over
            all patch tokens, no parameters), for like-for-like comparisons
            at the same ``compression_ratio``. Default: ``'ltm'``.
        merge_scope (str): ``'ffn'`` (every layer's FFN on merged tokens) or
            ``'stage'`` (layer ``merge_layer`` merges, the layers after it
            run on the merged tokens; module docstring). Default: ``'ffn'``.
            In ``'stage'`` the default ratio is
            :data:`DEFAULT_VIT_STAGE_COMPRESSION_RATIOS` (DeiT-S 0.75,
            DeiT-B / ViT-B 0.6), else 0.75.
        merge_layer (int, optional): ``'stage'`` only: the layer that merges,
            in ``[0, num_layers)``. Default: None, i.e. ``num_layers // 4``.
        merger_cfg (dict, optional): extra keyword arguments of every
            block's mask module (:func:`~mmltm.ops.build_token_merger`).
            Default: None.
        **kwargs: every other ``VisionTransformer`` argument.
    """
    arch_zoo = with_default_ratios(VisionTransformer.arch_zoo, DEFAULT_VIT_COMPRESSION_RATIOS,
                                   DEFAULT_COMPRESSION_RATIO)
    default_compression_ratios = DEFAULT_VIT_COMPRESSION_RATIOS
    fallback_compression_ratio = DEFAULT_COMPRESSION_RATIO
    stage_default_compression_ratios = DEFAULT_VIT_STAGE_COMPRESSION_RATIOS
    stage_fallback_compression_ratio = DEFAULT_STAGE_COMPRESSION_RATIO

    def __init__(self,
                 arch: Union[str, dict] = 'deit-small',
                 compression_ratio: Optional[float] = None,
                 init_step: Optional[float] = None,
                 merge_mode: str = 'ltm',
                 merger_cfg: Optional[dict] = None,
                 merge_scope: str = 'ffn',
                 merge_layer: Optional[int] = None,
                 **kwargs) -> None:
        # every LTM argument is checked before the (slow) mmpretrain build
        preset, sizes = self._resolve_sizes(arch)
        self.merge_scope = check_merge_scope(merge_scope)
        self.merge_layer = self._check_merge_layer(merge_layer, merge_scope,
                                                   sizes['num_layers'])
        if compression_ratio is None and isinstance(arch, dict):
            compression_ratio = arch.get('compression_ratio')
        self.compression_ratio = self.resolve_compression_ratio(compression_ratio, preset,
                                                                merge_scope)
        self.merge_mode = check_merge_mode(merge_mode)
        make_merger = token_merger_factory(
            merge_mode, self.compression_ratio, merger_cfg,
            options=dict(init_step=init_step), probe_dims=sizes['embed_dims'])
        super().__init__(arch=arch, **kwargs)
        convert_encoder_layers(self.layers, make_merger)
        if self.frozen_stages > 0:
            # mmpretrain froze the layers before the token mergers existed
            self._freeze_stages()

    @staticmethod
    def _check_merge_layer(merge_layer: Optional[int], merge_scope: str,
                           num_layers: int) -> Optional[int]:
        """The merging layer of ``'stage'`` (None in ``'ffn'``)."""
        if merge_scope != 'stage':
            if merge_layer is not None:
                raise ValueError(f"merge_layer={merge_layer!r} applies to merge_scope="
                                 f"'stage' only (got merge_scope={merge_scope!r})")
            return None
        if merge_layer is None:
            return num_layers // 4
        if isinstance(merge_layer, bool) or not isinstance(merge_layer, int) \
                or not 0 <= merge_layer < num_layers:
            raise ValueError(f'merge_layer={merge_layer!r} is not allowed: a layer index '
                             f'in [0, {num_layers})')
        return merge_layer

    @classmethod
    def _resolve_sizes(cls, arch: Union[str, dict]) -> Tuple[Optional[str], dict]:
        """``(preset or None, sizes)`` of ``arch``, checked as mmpretrain
        does, but with a ``ValueError`` naming the value."""
        key, sizes = lookup_preset(arch, VisionTransformer.arch_zoo)
        if not isinstance(sizes, dict) or any(k not in sizes for k in _SIZE_KEYS):
            raise ValueError(f'arch={arch!r} is not supported: a custom arch is a '
                             f'dict with the keys {list(_SIZE_KEYS)}')
        presets = {name: {k: v[k] for k in _SIZE_KEYS}
                   for name, v in VisionTransformer.arch_zoo.items()}
        return match_preset(sizes, presets, prefer=key), sizes

    def ltm_stages(self) -> List[List[LTMTransformerEncoderLayer]]:
        return [list(self.layers)]

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        # Same steps as VisionTransformer.forward; the layer loop also threads
        # the patch grid and the previous block's mask.
        B = x.shape[0]
        x, patch_resolution = self.patch_embed(x)
        if self.cls_token is not None:
            x = torch.cat((self.cls_token.expand(B, -1, -1), x), dim=1)
        x = x + resize_pos_embed(
            self.pos_embed,
            self.patch_resolution,
            patch_resolution,
            mode=self.interpolate_mode,
            num_extra_tokens=self.num_extra_tokens)
        x = self.drop_after_pos(x)
        x = self.pre_norm(x)

        outs = []
        runner = StageRunner(self.merge_scope, patch_resolution,
                             merge_from=self.merge_layer or 0,
                             num_extra_tokens=self.num_extra_tokens)
        for i, layer in enumerate(self.layers):
            x = runner(layer, x)
            if i not in self.out_indices:
                continue
            # the class token is never merged and the final norm is per
            # token: 'cls_token' reads the merged stream as it is
            out = x if self.out_type == 'cls_token' else runner.full(x)
            if i == len(self.layers) - 1 and self.final_norm:
                out = self.ln1(out)
            outs.append(self._format_output(out, patch_resolution))
        return tuple(outs)
