"""LTM-Swin: Swin Transformer with every block an LTM block.

The paper (Wang & Yang, arXiv 2407.15219) replaces all transformer blocks of
Swin-T/B with LTM blocks and reports LTM-Swin-T at 3.8 G vs 4.5 G FLOPs
(0.84x) with unchanged parameter counts. This module extends mmdet's
``SwinTransformer`` (the backbone mmdet's and mmseg's Swin configs use) so
that a user changes only ``type=`` in an existing config.

The LTM block (merge math in :mod:`mmltm.ops.token_merging`, equations
(L1)-(L6) there)::

    Z    = X + ShiftWindowMSA(LN(X))          # full H x W grid, windows as in Swin
    G    = TokenMerger(Z, (H, W), G_prev)     # G_prev: previous block of the stage
    X~   = merge_tokens(Z, G)                 # N' = h' x w' tokens (row/column-even)
    out  = Z + unmerge_tokens(FFN(LN(X~)), G) # FFN on N' tokens, residual at full res

Decisions for Swin the paper leaves open (see also the ops docstring):
  * Window attention, its shift masks, relative position bias and
    PatchMerging all need the full grid, so merging covers the FFN only and
    the block returns the full ``(B, H*W, C)`` sequence: stage outputs are
    ordinary maps for FPN/UperNet with no extra unmerge step.
  * Merging is done on the whole (unpadded) H x W map of the stage, not per
    window: the FFN is token-wise, so cells may straddle window borders, and
    odd sizes need no padding.
  * Masks chain from block to block inside a stage (the grid is shared); a
    stage's first block starts from the uniform mask.
  * Default ``compression_ratio`` (0.7 for T/S, 0.65 for B) is chosen to
    reproduce the paper's FLOP ratios with mmengine's counter at 224x224
    (Swin-T 0.83x, paper 0.84x; Swin-B 0.79x, paper 0.78x). The paper's own
    value for Swin is not known.
  * The stage grids depend on the input size, so a block may have mask
    parameters and still not merge (e.g. the 2x2 grid of stage 4 on a 64x64
    image): it then ties them into its output with an exact zero in
    training, so DDP needs no ``find_unused_parameters``
    (:func:`~mmltm.models.layers.tie_unused_parameters`).
  * mmdet builds its blocks inside ``SwinTransformer.__init__`` with no hook
    to pick their class, so the built blocks are re-classed into the LTM
    subclasses (:mod:`mmltm.models.layers`) and given a ``token_merger``.
    Parameters, buffers and state-dict keys stay exactly mmdet's, plus the
    mask module's (``stages.{i}.blocks.{j}.token_merger.*``) per block.
"""
import warnings
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.utils.checkpoint as cp
from mmdet.models.backbones.swin import (SwinBlock, SwinBlockSequence,
                                         SwinTransformer, swin_converter)

from mmltm.models.layers import (LTMBackboneMixin, LTMBlockMixin, ffn_residual_branch,
                                 lookup_preset, match_preset, reclass,
                                 token_merger_factory)
from mmltm.models.utils import load_backbone_state_dict
from mmltm.ops import MergeMask, check_merge_mode, unmerge_add
from mmltm.registry import register_model

#: default compression ratio per arch, chosen so that mmengine's FLOP count
#: at 224x224 matches the paper's ratio: Swin-T 3.8/4.5 G = 0.84 (ours 0.83
#: at 0.7), Swin-B 12.0/15.4 G = 0.78 (ours 0.79 at 0.65). Swin-S is not in
#: the paper; it takes Swin-T's value, and so do sizes of no preset.
DEFAULT_COMPRESSION_RATIO = {'tiny': 0.7, 'small': 0.7, 'base': 0.65}


class LTMSwinBlock(LTMBlockMixin, SwinBlock):
    """A Swin block whose FFN runs on merged tokens (see module docstring).

    Built by re-classing an mmdet ``SwinBlock`` (:meth:`from_block`).
    """

    def _ltm_forward(self, x: torch.Tensor, hw_shape: Tuple[int, int],
                     prev: Optional[MergeMask]):
        z = x + self.attn(self.norm1(x), hw_shape)
        if self.token_merger.is_identity(hw_shape):
            return self.block_output(self.ffn(self.norm2(z), identity=z), None)
        mask, merged = self.token_merger.merge(z, hw_shape, prev)
        delta = ffn_residual_branch(self.ffn, self.norm2(merged))
        return self.block_output(unmerge_add(z, delta, mask), mask)

    def forward(self, x: torch.Tensor, hw_shape: Tuple[int, int],
                prev: Optional[MergeMask] = None):
        """Returns ``(x, mask)``: the full-grid output and this block's G."""
        if self.with_cp and x.requires_grad:
            return cp.checkpoint(self._ltm_forward, x, hw_shape, prev,
                                 use_reentrant=False)
        return self._ltm_forward(x, hw_shape, prev)


class LTMSwinBlockSequence(SwinBlockSequence):
    """A Swin stage that threads the merging mask through its blocks."""

    def forward(self, x: torch.Tensor, hw_shape: Tuple[int, int]):
        mask = None
        for block in self.blocks:
            x, mask = block(x, hw_shape, mask)
        if self.downsample:
            x_down, down_hw_shape = self.downsample(x, hw_shape)
            return x_down, down_hw_shape, x, hw_shape
        return x, hw_shape, x, hw_shape


@register_model()
class LTMSwinTransformer(LTMBackboneMixin, SwinTransformer):
    """Swin Transformer with Learnable Token Merging (LTM-Swin).

    A drop-in for mmdet's/mmseg's ``SwinTransformer``: every argument keeps
    mmdet's meaning, outputs are the same ``(B, C_i, H/s_i, W/s_i)`` maps.
    ``token_mergers``, ``record_merge_masks`` and ``last_merge_masks`` (one
    list per stage) are :class:`~mmltm.models.layers.LTMBackboneMixin`'s.

    Args:
        arch (str, optional): ``'tiny'``, ``'small'`` or ``'base'`` (also
            ``'t'``, ``'s'``, ``'b'``); sets ``embed_dims``, ``depths`` and
            ``num_heads``, which override it where given. Default: None,
            i.e. ``'tiny'``'s sizes where they are not given.
        compression_ratio (float, optional): N'/N, the fraction of tokens
            kept for each block's FFN, in (0, 1]; 1.0 reproduces Swin
            exactly. Merging covers the whole map of a stage, so any ratio
            keeps at least one token. Default: None, i.e. the default of the
            preset whose sizes the resolved sizes equal
            (:data:`DEFAULT_COMPRESSION_RATIO`: 0.7 for tiny and small,
            0.65 for base; Swin-B sizes given without ``arch`` count as
            base), 0.7 for sizes of no preset.
        init_step (float, optional): initial step size eta of each mask
            module, for the merge modes that have one
            (:data:`~mmltm.models.layers.MODE_ARGUMENTS`). Default: None (the
            module's default, 1.0).
        merge_mode (str): the mask module of every block: ``'ltm'`` (the
            learned :class:`~mmltm.ops.TokenMerger`) or ``'tome'`` (ToMe's
            training-free bipartite matching, :class:`~mmltm.ops.tome.ToMeMerger`,
            matched within ``window_size`` x ``window_size`` tiles so that its
            cost stays linear at detection sizes; no parameters), for
            like-for-like comparisons at the same ``compression_ratio``.
            Default: ``'ltm'``.
        merger_cfg (dict, optional): extra keyword arguments of every
            block's mask module (passed to :func:`~mmltm.ops.build_token_merger`;
            e.g. ``dict(window_size=None)`` for global ToMe matching).
            Default: None.
        pretrain_img_size, in_channels, embed_dims, patch_size, window_size,
        mlp_ratio, depths, num_heads, strides, out_indices, qkv_bias,
        qk_scale, patch_norm, drop_rate, attn_drop_rate, drop_path_rate,
        use_abs_pos_embed, act_cfg, norm_cfg, with_cp, pretrained,
        convert_weights, frozen_stages, init_cfg: as in mmdet's
            ``SwinTransformer`` (same defaults, except that ``embed_dims``,
            ``depths`` and ``num_heads`` default to ``arch``'s values; given
            explicitly, they override the preset).

    Attributes:
        arch (str | None): the preset the resolved sizes equal (``'tiny'``,
            ``'small'``, ``'base'``), None for other sizes.
    """
    arch_zoo: Dict[str, Dict] = {
        'tiny': dict(embed_dims=96, depths=(2, 2, 6, 2), num_heads=(3, 6, 12, 24)),
        'small': dict(embed_dims=96, depths=(2, 2, 18, 2), num_heads=(3, 6, 12, 24)),
        'base': dict(embed_dims=128, depths=(2, 2, 18, 2), num_heads=(4, 8, 16, 32)),
    }
    _arch_alias = {'t': 'tiny', 's': 'small', 'b': 'base'}
    default_compression_ratios = DEFAULT_COMPRESSION_RATIO
    fallback_compression_ratio = DEFAULT_COMPRESSION_RATIO['tiny']

    def __init__(self,
                 arch: Optional[str] = None,
                 compression_ratio: Optional[float] = None,
                 init_step: Optional[float] = None,
                 merge_mode: str = 'ltm',
                 merger_cfg: Optional[dict] = None,
                 pretrain_img_size=224,
                 in_channels: int = 3,
                 embed_dims: Optional[int] = None,
                 patch_size: int = 4,
                 window_size: int = 7,
                 mlp_ratio: int = 4,
                 depths: Optional[Sequence[int]] = None,
                 num_heads: Optional[Sequence[int]] = None,
                 strides: Sequence[int] = (4, 2, 2, 2),
                 out_indices: Sequence[int] = (0, 1, 2, 3),
                 qkv_bias: bool = True,
                 qk_scale: Optional[float] = None,
                 patch_norm: bool = True,
                 drop_rate: float = 0.,
                 attn_drop_rate: float = 0.,
                 drop_path_rate: float = 0.1,
                 use_abs_pos_embed: bool = False,
                 act_cfg: dict = dict(type='GELU'),
                 norm_cfg: dict = dict(type='LN'),
                 with_cp: bool = False,
                 pretrained: Optional[str] = None,
                 convert_weights: bool = False,
                 frozen_stages: int = -1,
                 init_cfg: Optional[dict] = None) -> None:
        # every LTM argument is checked before the (slow) mmdet build
        preset, sizes = self._resolve_arch(arch, embed_dims=embed_dims,
                                           depths=depths, num_heads=num_heads)
        self.compression_ratio = self.resolve_compression_ratio(compression_ratio, preset)
        self.merge_mode = check_merge_mode(merge_mode)
        make_merger = token_merger_factory(
            merge_mode, self.compression_ratio, merger_cfg,
            options=dict(init_step=init_step), context=dict(window_size=window_size),
            probe_dims=sizes['embed_dims'])
        if use_abs_pos_embed:
            # mmdet's own Swin cannot run with it: its (1, L, C) parameter is
            # added to a (B, L, C) sequence fine, but init_weights views it as
            # (N, C, H, W). We keep mmdet's behaviour and only warn.
            warnings.warn('use_abs_pos_embed=True follows mmdet SwinTransformer')
        super().__init__(
            pretrain_img_size=pretrain_img_size, in_channels=in_channels,
            patch_size=patch_size, window_size=window_size, mlp_ratio=mlp_ratio,
            strides=strides, out_indices=out_indices, qkv_bias=qkv_bias,
            qk_scale=qk_scale, patch_norm=patch_norm, drop_rate=drop_rate,
            attn_drop_rate=attn_drop_rate, drop_path_rate=drop_path_rate,
            use_abs_pos_embed=use_abs_pos_embed, act_cfg=act_cfg,
            norm_cfg=norm_cfg, with_cp=with_cp, pretrained=pretrained,
            convert_weights=convert_weights, frozen_stages=frozen_stages,
            init_cfg=init_cfg, **sizes)
        self.arch = preset
        for stage in self.stages:
            reclass(stage, LTMSwinBlockSequence)
            for block in stage.blocks:
                LTMSwinBlock.from_block(block, make_merger(block.ffn.embed_dims))
        # mmdet's _freeze_stages ran before the token mergers existed
        self._freeze_stages()

    @classmethod
    def _resolve_arch(cls, arch: Optional[str], **given) -> Tuple[Optional[str], Dict]:
        """``(preset or None, sizes)``: the sizes of ``arch`` (default
        'tiny') overridden by the explicit ones, and the preset they equal."""
        if arch is not None and not isinstance(arch, str):
            raise ValueError(f'arch={arch!r} is not supported; allowed: a name of '
                             f'{sorted(cls.arch_zoo)} (or t/s/b), or None')
        key, preset_sizes = lookup_preset(arch or 'tiny', cls.arch_zoo, cls._arch_alias,
                                          custom='None with the sizes given')
        sizes = {**preset_sizes, **{k: v for k, v in given.items() if v is not None}}
        return match_preset(sizes, cls.arch_zoo, prefer=key), sizes

    def ltm_stages(self) -> List[List[LTMSwinBlock]]:
        return [list(stage.blocks) for stage in self.stages]

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """The stage outputs of ``out_indices`` as ``(B, C_i, H_i, W_i)`` maps.

        A tuple (mmdet's Swin returns a list), as mmpretrain's necks require.
        """
        return tuple(super().forward(x))

    def init_weights(self) -> None:
        """Random init as mmdet's Swin, or load ``init_cfg``'s checkpoint.

        Unlike mmdet (which loads with ``strict=False`` silently), a
        checkpoint may lack only the LTM token-merger parameters and the
        per-stage output norms (absent from classification checkpoints);
        anything else missing, or a shape mismatch, raises ``ValueError``
        naming the keys. Official Swin checkpoints need
        ``convert_weights=True`` as in mmdet.
        """
        init_cfg = self.init_cfg or {}
        if init_cfg.get('type') != 'Pretrained':
            super().init_weights()
            return
        if 'checkpoint' not in init_cfg:
            raise ValueError(f'init_cfg={init_cfg} of {type(self).__name__} needs '
                             f'a "checkpoint" path')
        load_backbone_state_dict(
            self, init_cfg['checkpoint'], prefix=init_cfg.get('prefix', 'backbone.'),
            converter=swin_converter if self.convert_weights else None,
            allow_missing=(r'^norm\d+\.',))
        self._is_init = True
