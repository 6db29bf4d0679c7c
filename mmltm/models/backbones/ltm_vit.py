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
  * ``merge_mode='tome'`` swaps the learned mask module for ToMe's
    training-free bipartite matching (:mod:`mmltm.ops.tome`) in the same
    block, for like-for-like comparisons.
  * mmpretrain builds its layers inside ``VisionTransformer.__init__`` with
    no hook to pick their class, so the built layers are re-classed into
    :class:`LTMTransformerEncoderLayer` and given a ``token_merger`` (the
    approach of LTM-Swin). Parameters and state-dict keys stay exactly
    mmpretrain's, plus one ``layers.{i}.token_merger.log_step`` per block,
    so ViT/DeiT checkpoints load with only those keys missing.
"""
from typing import Dict, List, Optional, Tuple, Union

import torch
from mmpretrain.models.backbones.vision_transformer import (
    TransformerEncoderLayer, VisionTransformer)
from mmpretrain.models.utils import resize_pos_embed

from mmltm.ops import (MERGE_MODES, MergeMask, TokenMerger,
                       build_token_merger, check_compression_ratio,
                       unmerge_add)
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


def ffn_residual_branch(ffn: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The residual branch of an FFN (its output without the identity).

    mmcv's ``FFN`` adds its input unless told otherwise; the LTM block needs
    the branch alone because the identity is the unmerged ``Z``.
    """
    if all(hasattr(ffn, name) for name in ('layers', 'gamma2', 'dropout_layer')):
        return ffn.dropout_layer(ffn.gamma2(ffn.layers(x)))
    # other mmpretrain FFNs (e.g. SwiGLUFFNFused) take an explicit identity
    return ffn(x, identity=x.new_zeros(()))


class LTMTransformerEncoderLayer(TransformerEncoderLayer):
    """An mmpretrain ``TransformerEncoderLayer`` whose FFN runs on merged
    tokens (see the module docstring). Used by LTM-ViT and LTM-MobileViT.

    Built by re-classing a built layer (:meth:`from_layer`); its forward
    takes the patch grid and the previous block's mask and returns
    ``(x, mask)``.
    """
    token_merger: TokenMerger

    @classmethod
    def from_layer(cls, layer: TransformerEncoderLayer,
                   merger: TokenMerger) -> 'LTMTransformerEncoderLayer':
        """Turn ``layer`` into an LTM layer in place, keeping its parameters."""
        if not isinstance(layer, TransformerEncoderLayer):
            raise TypeError(f'expected an mmpretrain TransformerEncoderLayer, '
                            f'got {type(layer).__name__}')
        layer.__class__ = cls
        layer.token_merger = merger
        return layer

    def forward(self, x: torch.Tensor, hw: Tuple[int, int],
                prev: Optional[MergeMask] = None,
                num_extra_tokens: int = 0
                ) -> Tuple[torch.Tensor, Optional[MergeMask]]:
        """Args:
            x (Tensor): ``(B, E + h*w, C)``, the first ``E`` tokens are extra
                tokens (a class token) that are never merged.
            hw (tuple): the patch grid ``(h, w)``.
            prev (MergeMask, optional): the previous block's mask.
            num_extra_tokens (int): ``E``.

        Returns:
            tuple: the full-length output and this block's mask (``None``
            when nothing is merged).
        """
        hw = (int(hw[0]), int(hw[1]))
        if self.token_merger.is_identity(hw):
            return super().forward(x), None
        z = x + self.attn(self.ln1(x))
        extra, patches = z[:, :num_extra_tokens], z[:, num_extra_tokens:]
        mask, merged = self.token_merger.merge(patches, hw, prev)
        delta = ffn_residual_branch(self.ffn, self.ln2(torch.cat([extra, merged], dim=1)))
        out_patches = unmerge_add(patches, delta[:, num_extra_tokens:], mask)
        return torch.cat([extra + delta[:, :num_extra_tokens], out_patches],
                         dim=1), mask


def check_merge_mode(merge_mode: str) -> str:
    """Raise early on an unknown ``merge_mode``, naming the allowed ones."""
    if merge_mode not in MERGE_MODES:
        raise ValueError(f'merge_mode={merge_mode!r} is not supported; '
                         f'allowed: {list(MERGE_MODES)}')
    return merge_mode


def convert_encoder_layers(layers, compression_ratio: float,
                           init_step: float = 1.0,
                           merge_mode: str = 'ltm') -> None:
    """Re-class every mmpretrain ``TransformerEncoderLayer`` in ``layers``
    into an :class:`LTMTransformerEncoderLayer` with its own mask module
    (``merge_mode`` 'ltm': :class:`~mmltm.ops.TokenMerger`; 'tome': ToMe's
    global bipartite matching, :class:`~mmltm.ops.tome.ToMeMerger`)."""
    kwargs = dict(init_step=init_step) if merge_mode == 'ltm' else {}
    for layer in layers:
        LTMTransformerEncoderLayer.from_layer(
            layer, build_token_merger(merge_mode, compression_ratio, **kwargs))


@register_model()
class LTMVisionTransformer(VisionTransformer):
    """Vision Transformer with Learnable Token Merging (LTM-ViT).

    A drop-in for mmpretrain's ``VisionTransformer``: every argument keeps
    its meaning, outputs have the same shapes.

    Args:
        arch (str | dict): as in ``VisionTransformer`` (e.g. ``'deit-small'``
            for ViT-S/16, ``'deit-base'`` for ViT-B/16). A dict arch may
            carry its own ``compression_ratio``. Default: ``'deit-small'``.
        compression_ratio (float, optional): N'/N, the fraction of patch
            tokens each block's FFN keeps, in (0, 1]; 1.0 reproduces
            ``VisionTransformer`` exactly. Default: None, i.e. the arch
            preset (:data:`DEFAULT_VIT_COMPRESSION_RATIOS`, else 0.8).
        init_step (float): initial step size eta of each mask module.
            Default: 1.0.
        merge_mode (str): the mask module of every block: ``'ltm'`` (the
            learned :class:`~mmltm.ops.TokenMerger`) or ``'tome'`` (ToMe's
            training-free bipartite matching over all patch tokens, no
            parameters), for like-for-like comparisons at the same
            ``compression_ratio``. Default: ``'ltm'``.
        **kwargs: every other ``VisionTransformer`` argument.
    """
    arch_zoo = {
        name: {**settings,
               'compression_ratio': DEFAULT_VIT_COMPRESSION_RATIOS.get(
                   name, DEFAULT_COMPRESSION_RATIO)}
        for name, settings in VisionTransformer.arch_zoo.items()
    }

    def __init__(self,
                 arch: Union[str, dict] = 'deit-small',
                 compression_ratio: Optional[float] = None,
                 init_step: float = 1.0,
                 merge_mode: str = 'ltm',
                 **kwargs) -> None:
        if compression_ratio is None:
            preset = (self.arch_zoo.get(arch.lower(), {})
                      if isinstance(arch, str) else arch)
            compression_ratio = preset.get('compression_ratio',
                                           DEFAULT_COMPRESSION_RATIO)
        # raise before the (slow) build, naming the bad value
        self.compression_ratio = check_compression_ratio(compression_ratio)
        self.merge_mode = check_merge_mode(merge_mode)
        super().__init__(arch=arch, **kwargs)
        convert_encoder_layers(self.layers, self.compression_ratio, init_step,
                               merge_mode)
        self.record_masks = False
        self.last_masks: List[Optional[MergeMask]] = []
        if self.frozen_stages > 0:
            # mmpretrain froze the layers before the token mergers existed
            self._freeze_stages()

    @property
    def token_mergers(self) -> List[torch.nn.Module]:
        return [layer.token_merger for layer in self.layers]

    def record_merge_masks(self, enabled: bool = True) -> None:
        """Keep every block's ``MergeMask`` of the last forward in
        :attr:`last_merge_masks` (for visualisation and analysis)."""
        self.record_masks = enabled
        if not enabled:
            self.last_masks = []

    @property
    def last_merge_masks(self) -> List[Optional[MergeMask]]:
        return self.last_masks

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

        outs, masks, mask = [], [], None
        for i, layer in enumerate(self.layers):
            x, mask = layer(x, patch_resolution, mask, self.num_extra_tokens)
            masks.append(mask)
            if i == len(self.layers) - 1 and self.final_norm:
                x = self.ln1(x)
            if i in self.out_indices:
                outs.append(self._format_output(x, patch_resolution))
        if self.record_masks:
            self.last_masks = masks
        return tuple(outs)
