"""The LTM block of mmpretrain's ``TransformerEncoderLayer`` (LTM-ViT and
LTM-MobileViT)::

    Z    = X + MSA(LN(X))                       # all E + N tokens
    G    = token_merger(Z_patch, (h, w), G_prev) # patch tokens only
    X~   = [Z_extra, merge_tokens(Z_patch, G)]   # E + N' tokens
    D    = FFN(LN(X~))                           # one FFN call on E + N' tokens
    out  = [Z_extra + D_extra, Z_patch + unmerge_tokens(D_patch, G)]

The ``E`` extra tokens (a class token) are never merged; they run through
the same FFN call as the merged patch tokens (one Linear on ``E + N'``
tokens, which is also what the FLOP counter sees). On a grid too small to
merge the layer runs mmpretrain's own forward.

In ``merge_scope='stage'`` (:mod:`.merge_scope`) the merging layer hands on
``X~ + D`` (``E + N'`` tokens) and the layers after it run mmpretrain's own
forward on those ``E + N'`` tokens: global attention needs no grid, so the
merged tokens of every merge mode (ToMe's too) can go on.
"""
from typing import Callable, Iterable, Optional, Tuple

import numpy as np
import torch
import torch.nn as nn
from mmpretrain.models.backbones.vision_transformer import TransformerEncoderLayer

from mmltm.ops import MergeMask, unmerge_add
from .ltm_block import LTMBlockMixin, ffn_residual_branch
from .merge_scope import MergedStage

__all__ = ['LTMTransformerEncoderLayer', 'convert_encoder_layers']


class LTMTransformerEncoderLayer(LTMBlockMixin, TransformerEncoderLayer):
    """An mmpretrain ``TransformerEncoderLayer`` whose FFN runs on merged
    tokens (module docstring). Built by re-classing a built layer
    (:meth:`from_block`, :func:`convert_encoder_layers`)."""

    def forward(self, x: torch.Tensor, hw: Tuple[int, int],
                prev: Optional[MergeMask] = None,
                num_extra_tokens: int = 0
                ) -> Tuple[torch.Tensor, Optional[MergeMask]]:
        """Args:
            x (Tensor): ``(B, E + h*w, C)``; the first ``E`` tokens are extra
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
            return self.block_output(super().forward(x), None)
        z = x + self.attn(self.ln1(x))
        extra, patches = z[:, :num_extra_tokens], z[:, num_extra_tokens:]
        mask, merged = self.token_merger.merge(patches, hw, prev)
        delta = ffn_residual_branch(self.ffn, self.ln2(torch.cat([extra, merged], dim=1)))
        out_patches = unmerge_add(patches, delta[:, num_extra_tokens:], mask)
        out = torch.cat([extra + delta[:, :num_extra_tokens], out_patches], dim=1)
        return self.block_output(out, mask)

    def forward_merging(self, x: torch.Tensor, hw: Tuple[int, int],
                        num_extra_tokens: int = 0
                        ) -> Tuple[torch.Tensor, Optional[MergedStage]]:
        """The merging layer of ``merge_scope='stage'``: ``(X~ + D, stage)``,
        ``E + N'`` tokens; ``(out, None)`` (full, mmpretrain's forward) when
        the grid is too small to merge."""
        hw = (int(hw[0]), int(hw[1]))
        if self.token_merger.is_identity(hw):
            return self.block_output(super().forward(x), None)
        z = x + self.attn(self.ln1(x))
        extra, patches = z[:, :num_extra_tokens], z[:, num_extra_tokens:]
        mask, merged = self.token_merger.merge(patches, hw, None)
        x_merged = torch.cat([extra, merged], dim=1)
        out = x_merged + ffn_residual_branch(self.ffn, self.ln2(x_merged))
        return self.merging_output(out, MergedStage(patches, merged, mask, num_extra_tokens))

    def forward_whole(self, x: torch.Tensor, hw: Tuple[int, int],
                      num_extra_tokens: int = 0) -> torch.Tensor:
        """mmpretrain's forward on ``x`` (``E + h*w`` tokens, ``hw`` the
        full or the merged grid); the mask module does not run."""
        if x.shape[1] != num_extra_tokens + int(hw[0]) * int(hw[1]):
            raise ValueError(f'{type(self).__name__}.forward_whole: {x.shape[1]} tokens are '
                             f'not {num_extra_tokens} extra tokens + a {hw[0]}x{hw[1]} grid')
        return self.whole_output(super().forward(x))


def convert_encoder_layers(layers: Iterable[nn.Module],
                           make_merger: Callable[[int], nn.Module]) -> None:
    """Re-class every mmpretrain ``TransformerEncoderLayer`` in ``layers``
    into an :class:`LTMTransformerEncoderLayer` whose ``token_merger`` is
    ``make_merger(layer.embed_dims)`` (see
    :func:`~mmltm.models.layers.token_merger_factory`)."""
    for layer in layers:
        LTMTransformerEncoderLayer.from_block(layer, make_merger(layer.embed_dims))
        for module in layer.modules():  # mmpretrain's np.linspace gives numpy
            if isinstance(getattr(module, 'drop_prob', None), np.floating):  # drop rates,
                module.drop_prob = float(module.drop_prob)  # a graph break in dynamo
