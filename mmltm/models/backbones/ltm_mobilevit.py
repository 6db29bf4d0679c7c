"""LTM-MobileViT: mmpretrain's MobileViT with every transformer block an LTM
block.

The paper (Wang & Yang, arXiv 2407.15219) replaces all transformer blocks of
MobileViT-XS/S and reports LTM-MobileViT-XS at 0.52 G vs 0.7 G FLOPs and
LTM-MobileViT-S at 1.17 G vs 1.4 G; its README trains ``ltm_mobilevit_s``
with ``--compression-ratio 0.8``.

Where the transformer blocks are: every ``MobileVitBlock`` unfolds its
``(B, C, H, W)`` map into ``P = p_h * p_w`` sequences (one per position
inside a ``p_h x p_w`` patch, 2x2 in every arch) of ``N = n_h * n_w``
patch tokens, runs its ``global_rep`` transformer on the ``B * P``
sequences, and folds the result back to ``(B, C, H, W)``. The patch tokens
of one sequence lie on the ``n_h x n_w`` patch grid (row-major), which is
the grid merging works on (the paper's merge-weight figure lives on it too).

The LTM transformer layer is the one of LTM-ViT
(:class:`~mmltm.models.layers.LTMTransformerEncoderLayer`)::

    Z   = X + MSA(LN(X))                       # N tokens of one sequence
    G   = TokenMerger(Z, (n_h, n_w), G_prev)   # per sequence (B*P of them)
    out = Z + unmerge_tokens(FFN(LN(merge_tokens(Z, G))), G)

Decisions (the paper leaves them open):
  * Each of the ``B * P`` sequences gets its own soft weights (they are
    batch entries for the mask module); all share the row/column-even cell
    layout of the ``n_h x n_w`` grid.
  * Merging and unmerging happen inside every transformer layer, so the
    sequence entering the fold, ``conv_proj`` and the fusion conv is the
    full ``N``-token one: the fold needs no extra step.
  * The mask chains through the layers of one ``MobileVitBlock`` (they share
    a grid); each block starts from the uniform mask.
  * Default ratio 0.5 for every arch
    (:data:`DEFAULT_MOBILEVIT_COMPRESSION_RATIOS`). The paper's FLOPs
    (XS 0.52 / 0.7 G = 0.74x, S 1.17 / 1.4 G = 0.84x at 224x224) are out of
    reach with FFN-only merging: the convolutions, which LTM does not touch,
    carry most of MobileViT's FLOPs and the FFNs (mlp_ratio 2) only 15-20 %.
    Measured with mmengine's counter at 224x224 (baselines XS 0.72 G,
    S 1.44 G): ratio 0.8 (the value of the authors' README command) gives
    only 0.98x; 0.5 gives XS 0.918x, S 0.900x; even 0.3 gives XS 0.887x,
    S 0.863x. 0.5 (two tokens per merged token) is the lowest ratio we
    consider safe for accuracy without evidence from the paper; pass
    ``compression_ratio=0.8`` for the README setting.
  * ``merge_scope='stage'`` (:mod:`mmltm.models.layers.merge_scope`): the
    first transformer layer of each ``MobileVitBlock`` merges, the other
    layers of its ``global_rep`` run whole (attention and FFN) on the
    ``N'`` merged tokens of every sequence, and the sequences are unmerged
    as a residual (``Z0 + unmerge(m - m0, G)``) before ``global_rep``'s
    final LayerNorm and the fold. Global attention needs no 2-D grid, so
    ``merge_mode='tome'`` runs here too. Default ratios:
    :data:`DEFAULT_MOBILEVIT_STAGE_COMPRESSION_RATIOS` (0.5, as in 'ffn').
    Measured (classifier FLOPs, mmengine's counter, 224x224): 'stage' at
    0.5 gives S 0.839x (the paper's 0.84x: reached) and XS 0.869x; the
    paper's XS 0.74x is out of reach also in 'stage' (0.25: 0.806x, 0.1:
    0.763x): the convolutions still carry most of the FLOPs.
  * mmpretrain builds the blocks inside ``MobileViT.__init__``, so the built
    ``MobileVitBlock`` s, their ``global_rep`` sequences and their
    ``TransformerEncoderLayer`` s are re-classed (the approach of LTM-Swin /
    LTM-ViT). State-dict keys stay exactly mmpretrain's plus the mask
    module's (``layers.{i}.1.global_rep.{j}.token_merger.*``) per
    transformer layer.
"""
import math
from typing import Dict, List, Optional, Tuple, Union

import torch
import torch.nn as nn
from mmpretrain.models.backbones.mobilevit import MobileViT, MobileVitBlock

from mmltm.models.layers import (LTMBackboneMixin, LTMTransformerEncoderLayer,
                                 StageRunner, check_merge_scope, convert_encoder_layers,
                                 lookup_preset, match_preset, reclass,
                                 token_merger_factory)
from mmltm.ops import check_merge_mode
from mmltm.registry import register_model

#: default ``compression_ratio`` per arch (see the module docstring)
DEFAULT_MOBILEVIT_COMPRESSION_RATIOS: Dict[str, float] = {
    'small': 0.5,
    'x_small': 0.5,
    'xx_small': 0.5,
}
DEFAULT_COMPRESSION_RATIO = 0.5

#: default ``compression_ratio`` per arch in ``merge_scope='stage'``: 0.5 as
#: in 'ffn' (see the module docstring for the FLOPs it gives)
DEFAULT_MOBILEVIT_STAGE_COMPRESSION_RATIOS: Dict[str, float] = {
    'small': 0.5,
    'x_small': 0.5,
    'xx_small': 0.5,
}
DEFAULT_STAGE_COMPRESSION_RATIO = 0.5


class LTMGlobalRep(nn.Sequential):
    """``MobileVitBlock.global_rep`` (transformer layers + a final norm) that
    threads the merging mask through its layers.

    ``MobileVitBlock.forward`` calls it with the unfolded ``(B*P, N, C)``
    tokens only, so the owning :class:`LTMMobileVitBlock` sets :attr:`grid`
    (``(n_h, n_w)``) for the duration of its forward. ``merge_scope`` is
    the backbone's; the final LayerNorm always gets the full sequences.
    """
    grid: Optional[Tuple[int, int]] = None
    merge_scope: str = 'ffn'

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.grid is None:
            raise RuntimeError('LTMGlobalRep needs the patch grid: call it '
                               'through its LTMMobileVitBlock')
        *layers, norm = self
        runner = StageRunner(self.merge_scope, self.grid)
        for layer in layers:
            x = runner(layer, x)
        return norm(runner.full(x))


class LTMMobileVitBlock(MobileVitBlock):
    """A ``MobileVitBlock`` whose transformer layers are LTM layers.

    Its unfold / fold steps are mmpretrain's; it only tells ``global_rep``
    the patch grid the unfolded tokens lie on.
    """
    global_rep: LTMGlobalRep

    @classmethod
    def from_block(cls, block: MobileVitBlock, make_merger,
                   merge_scope: str = 'ffn') -> 'LTMMobileVitBlock':
        """Turn ``block`` into an LTM block in place, keeping its parameters;
        ``make_merger(dims)`` builds each transformer layer's mask module."""
        reclass(block, cls)
        reclass(block.global_rep, LTMGlobalRep, merge_scope=merge_scope)
        # the last entry of global_rep is its LayerNorm
        convert_encoder_layers(list(block.global_rep)[:-1], make_merger)
        return block

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # local_rep keeps H x W (stride-1 'same' convs); MobileVitBlock
        # resizes the map up to a multiple of the patch size before unfolding
        H, W = x.shape[-2:]
        patch_h, patch_w = self.patch_size
        self.global_rep.grid = (math.ceil(H / patch_h), math.ceil(W / patch_w))
        try:
            return super().forward(x)
        finally:
            self.global_rep.grid = None


@register_model()
class LTMMobileViT(LTMBackboneMixin, MobileViT):
    """MobileViT with Learnable Token Merging (LTM-MobileViT).

    A drop-in for mmpretrain's ``MobileViT``: every argument keeps its
    meaning, outputs have the same shapes. ``token_mergers``,
    ``record_merge_masks`` and ``last_merge_masks`` (one list per entry of
    ``layers``; layers 0-1 hold no transformer) are
    :class:`~mmltm.models.layers.LTMBackboneMixin`'s.

    Args:
        arch (str | list): ``'small'``, ``'x_small'``, ``'xx_small'`` or a
            layer list, as in ``MobileViT``. Default: ``'small'``.
        compression_ratio (float, optional): N'/N, the fraction of patch
            tokens each transformer layer's FFN keeps, in (0, 1]; 1.0
            reproduces ``MobileViT`` exactly. Default: None, i.e. the default
            of the preset the layer list equals
            (:data:`DEFAULT_MOBILEVIT_COMPRESSION_RATIOS`), else 0.5.
        init_step (float, optional): initial step size eta of each mask
            module, for the merge modes that have one. Default: None (the
            module's default, 1.0).
        merge_mode (str): ``'ltm'`` (the learned
            :class:`~mmltm.ops.TokenMerger`) or ``'tome'`` (ToMe's
            training-free bipartite matching on each sequence, no parameters;
            the paper's ToMe-MobileViT rows). Default: ``'ltm'``.
        merger_cfg (dict, optional): extra keyword arguments of every
            layer's mask module (:func:`~mmltm.ops.build_token_merger`).
            Default: None.
        merge_scope (str): ``'ffn'`` (every transformer layer's FFN on
            merged tokens) or ``'stage'`` (the first layer of each
            ``MobileVitBlock`` merges, the others run on the merged
            sequences; module docstring). Default: ``'ffn'``. In ``'stage'``
            the default ratio is
            :data:`DEFAULT_MOBILEVIT_STAGE_COMPRESSION_RATIOS`.
        **kwargs: every other ``MobileViT`` argument.
    """
    default_compression_ratios = DEFAULT_MOBILEVIT_COMPRESSION_RATIOS
    fallback_compression_ratio = DEFAULT_COMPRESSION_RATIO
    stage_default_compression_ratios = DEFAULT_MOBILEVIT_STAGE_COMPRESSION_RATIOS
    stage_fallback_compression_ratio = DEFAULT_STAGE_COMPRESSION_RATIO

    def __init__(self,
                 arch: Union[str, list] = 'small',
                 compression_ratio: Optional[float] = None,
                 init_step: Optional[float] = None,
                 merge_mode: str = 'ltm',
                 merger_cfg: Optional[dict] = None,
                 merge_scope: str = 'ffn',
                 **kwargs) -> None:
        # every LTM argument is checked before the (slow) mmpretrain build
        self.merge_scope = check_merge_scope(merge_scope)
        key, layers = lookup_preset(arch, self.arch_settings, custom='a layer list')
        preset = match_preset(layers, self.arch_settings, prefer=key)
        self.compression_ratio = self.resolve_compression_ratio(compression_ratio, preset,
                                                                merge_scope)
        self.merge_mode = check_merge_mode(merge_mode)
        # ['mobilevit', out_channels, stride, transformer_dim, ...]
        dims = [layer[3] for layer in layers if layer[0] == 'mobilevit']
        make_merger = token_merger_factory(
            merge_mode, self.compression_ratio, merger_cfg,
            options=dict(init_step=init_step), probe_dims=dims[0] if dims else None)
        super().__init__(arch=arch, **kwargs)
        for module in self.modules():
            if isinstance(module, MobileVitBlock):
                LTMMobileVitBlock.from_block(module, make_merger, merge_scope)
        # MobileViT freezes its stages in train(); the token mergers of frozen
        # stages are frozen there too, nothing else to do here.

    def ltm_stages(self) -> List[List[LTMTransformerEncoderLayer]]:
        return [[m for m in layer.modules() if isinstance(m, LTMTransformerEncoderLayer)]
                for layer in self.layers]
