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
  * ``merge_scope='ffn'`` (the default): window attention, its shift
    masks, relative position bias and PatchMerging run on the full grid,
    merging covers the FFN only and the block returns the full
    ``(B, H*W, C)`` sequence: stage outputs are ordinary maps for
    FPN/UperNet with no extra unmerge step.
  * Merging is done on the whole (unpadded) H x W map of the stage, not per
    window: the FFN is token-wise, so cells may straddle window borders, and
    odd sizes need no padding.
  * ``'ffn'``: masks chain from block to block inside a stage (the grid is
    shared); a stage's first block starts from the uniform mask.
  * Default ``'ffn'`` ``compression_ratio`` (0.7 for T/S, 0.65 for B) is chosen to
    reproduce the paper's FLOP ratios with mmengine's counter at 224x224
    (Swin-T 0.83x, paper 0.84x; Swin-B 0.79x, paper 0.78x). The paper's own
    value for Swin is not known.
  * The stage grids depend on the input size, so a block may have mask
    parameters and still not merge (e.g. the 2x2 grid of stage 4 on a 64x64
    image): it then ties them into its output with an exact zero in
    training, so DDP needs no ``find_unused_parameters``
    (:func:`~mmltm.models.layers.tie_unused_parameters`).
  * ``merge_scope='stage'`` (:mod:`mmltm.models.layers.merge_scope`): a
    stage's first block merges (window attention on the full grid, FFN on
    the merged tokens) and hands on the merged ``h' x w'`` tokens; the
    stage's other blocks run whole on that grid: mmdet's ``ShiftWindowMSA``
    pads any ``h' x w'`` to window multiples and builds its shift mask for
    the padded size in every forward, relative position bias is per
    window. The stage output (to necks) and the PatchMerging input are the
    residual unmerge ``Z0 + unmerge(m - m0, G)``; PatchMerging then runs
    on the full grid as in Swin (one unmerge per stage; merging the merged
    grid directly would change PatchMerging's 2x2 neighbourhoods). Padding
    would waste what merging saves (a 14x14 stage merged to 12x12 is padded
    back to 14x14 for attention), so ``compression_ratio`` may be a
    per-stage sequence and the ``'stage'`` default
    (:data:`DEFAULT_STAGE_COMPRESSION_RATIO`) merges stages 1-2 at 224x224
    to multiples of the 7x7 window (56->42, 28->14), leaves the 7x7 stage 4
    alone (a stage too small to merge runs as Swin) and stage 3 (14x14)
    alone for Swin-T, 14->12 for Swin-S/B (padded back to 14x14 for
    attention, as every grid between 7x7 and 14x14 is). At other input
    sizes the merged grids follow the same ratios (and may pad by up to 6
    rows / columns). A float ratio applies to every stage (at 224x224
    Swin-T 'stage' 0.7 pads stage 3 and measures 0.820x). Only a stage's
    first block merges (no compounding; see the layers module).
    ``merge_mode='tome'`` has no 2-D merged grid for the windows and is
    rejected in ``'stage'`` at build time.
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

from mmltm.models.layers import (LTMBackboneMixin, LTMBlockMixin, MergedStage,
                                 StageRunner, check_merge_scope, check_scope_mode,
                                 check_stage_ratios, ffn_residual_branch,
                                 lookup_preset, match_preset, reclass,
                                 token_merger_factory)
from mmltm.models.utils import load_backbone_state_dict
from mmltm.ops import MergeMask, check_merge_mode, unmerge_add
from mmltm.ops.grid_plan import pin_input_size
from mmltm.registry import register_model

#: default compression ratio per arch, chosen so that mmengine's FLOP count
#: at 224x224 matches the paper's ratio: Swin-T 3.8/4.5 G = 0.84 (ours 0.83
#: at 0.7), Swin-B 12.0/15.4 G = 0.78 (ours 0.79 at 0.65). Swin-S is not in
#: the paper; it takes Swin-T's value, and so do sizes of no preset.
DEFAULT_COMPRESSION_RATIO = {'tiny': 0.7, 'small': 0.7, 'base': 0.65}

#: the per-stage ratios of ``merge_scope='stage'``, chosen for the paper's
#: FLOPs ratios with mmengine's counter at 224x224 and merged grids that fit
#: the 7x7 windows where they can: stage 1 56x56 -> 42x42 (0.5625 =
#: (42/56)^2), stage 2 28x28 -> 14x14 (0.25), stage 4 (7x7) never. Swin-T
#: leaves its 14x14 stage 3 alone: 0.842x (paper 0.84). Swin-B needs stage 3
#: (18 of its 24 blocks) merged too; between 14x14 and 7x7 every grid is
#: padded back to 14x14 for attention, so it takes 14x14 -> 12x12 (36/49)
#: for its FFN / the tokens of the padded windows: 0.792x (paper 0.78).
#: Swin-S (not in the paper) has Swin-B's depths and takes its layout
#: (0.793x; Swin-T's would leave it at 0.919x); sizes of no preset take
#: Swin-T's. The
#: ratios are exact (the planned grids are exactly these); measured in
#: tests/test_models/test_merge_scope.py.
STAGE_56_TO_42, STAGE_28_TO_14, STAGE_14_TO_12 = 0.5625, 0.25, 36 / 49
DEFAULT_STAGE_COMPRESSION_RATIO = {
    'tiny': (STAGE_56_TO_42, STAGE_28_TO_14, 1.0, 1.0),
    'small': (STAGE_56_TO_42, STAGE_28_TO_14, STAGE_14_TO_12, 1.0),
    'base': (STAGE_56_TO_42, STAGE_28_TO_14, STAGE_14_TO_12, 1.0),
}


class LTMSwinBlock(LTMBlockMixin, SwinBlock):
    """A Swin block whose FFN runs on merged tokens (see module docstring).

    Built by re-classing an mmdet ``SwinBlock`` (:meth:`from_block`).
    """

    def _ltm_forward(self, x: torch.Tensor, hw_shape: Tuple[int, int],
                     prev: Optional[MergeMask], hand_on: bool = False):
        z = x + self.attn(self.norm1(x), hw_shape)
        if self.token_merger.is_identity(hw_shape):
            return self.block_output(self.ffn(self.norm2(z), identity=z), None)
        mask, merged = self.token_merger.merge(z, hw_shape, prev)
        delta = ffn_residual_branch(self.ffn, self.norm2(merged))
        if hand_on:  # 'stage': the merged tokens go on
            return self.merging_output(merged + delta, MergedStage(z, merged, mask))
        return self.block_output(unmerge_add(z, delta, mask), mask)

    def forward(self, x: torch.Tensor, hw_shape: Tuple[int, int],
                prev: Optional[MergeMask] = None):
        """Returns ``(x, mask)``: the full-grid output and this block's G."""
        return self._checkpointed(x, hw_shape, prev, False)

    def forward_merging(self, x: torch.Tensor, hw_shape: Tuple[int, int]):
        """``merge_scope='stage'``: ``(merged tokens, MergedStage)``, or the
        full-grid output and None when the grid is too small to merge."""
        return self._checkpointed(x, hw_shape, None, True)

    def _checkpointed(self, x, hw_shape, prev, hand_on):
        if self.with_cp and x.requires_grad:
            return cp.checkpoint(self._ltm_forward, x, hw_shape, prev, hand_on,
                                 use_reentrant=False)
        return self._ltm_forward(x, hw_shape, prev, hand_on)

    def forward_whole(self, x: torch.Tensor, hw_shape: Tuple[int, int]) -> torch.Tensor:
        """mmdet's ``SwinBlock`` forward on the ``hw_shape`` grid (the
        merged grid in ``'stage'``); the mask module does not run."""
        return self.whole_output(SwinBlock.forward(self, x, hw_shape))


class LTMSwinBlockSequence(SwinBlockSequence):
    """A Swin stage that runs its blocks in ``merge_scope``
    (:class:`~mmltm.models.layers.StageRunner`) and hands the full grid to
    PatchMerging and to the stage output."""
    merge_scope: str = 'ffn'

    def forward(self, x: torch.Tensor, hw_shape: Tuple[int, int]):
        runner = StageRunner(self.merge_scope, hw_shape)
        for block in self.blocks:
            x = runner(block, x)
        x = runner.full(x)
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
        compression_ratio (float | Sequence[float], optional): N'/N, the
            fraction of tokens kept by each merging block, in (0, 1], or one
            such ratio per stage (4 entries); 1.0 reproduces Swin exactly.
            Merging covers the whole map of a stage, so any ratio keeps at
            least one token. Default: None, i.e. the default of the preset
            whose sizes the resolved sizes equal, in ``merge_scope``:
            ``'ffn'`` :data:`DEFAULT_COMPRESSION_RATIO` (0.7 for tiny and
            small, 0.65 for base; Swin-B sizes given without ``arch`` count
            as base), 0.7 for sizes of no preset; ``'stage'``
            :data:`DEFAULT_STAGE_COMPRESSION_RATIO` (tiny ``(0.5625, 0.25,
            1.0, 1.0)``, small and base ``(0.5625, 0.25, 36 / 49, 1.0)``),
            tiny's for sizes of no preset (sizes with other than 4
            stages need an explicit ratio in ``'stage'``).
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
        merge_scope (str): ``'ffn'`` (every block's FFN on merged tokens) or
            ``'stage'`` (each stage's first block merges, the others run on
            the merged grid; module docstring; not with ``'tome'``).
            Default: ``'ffn'``.
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
    stage_default_compression_ratios = DEFAULT_STAGE_COMPRESSION_RATIO
    stage_fallback_compression_ratio = DEFAULT_STAGE_COMPRESSION_RATIO['tiny']

    def __init__(self,
                 arch: Optional[str] = None,
                 compression_ratio: Optional[float] = None,
                 init_step: Optional[float] = None,
                 merge_mode: str = 'ltm',
                 merger_cfg: Optional[dict] = None,
                 merge_scope: str = 'ffn',
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
        self.merge_scope = check_merge_scope(merge_scope)
        self.merge_mode = check_merge_mode(merge_mode)
        check_scope_mode(merge_scope, merge_mode, type(self).__name__,
                         "the blocks after a stage's merger run window attention on "
                         "the merged grid")
        if compression_ratio is None:
            compression_ratio = self.default_compression_ratio(preset, merge_scope)
        # one ratio, or one per stage
        self.compression_ratio = check_stage_ratios(compression_ratio, len(sizes['depths']))
        stage_ratios = self.compression_ratio if isinstance(self.compression_ratio, tuple) \
            else (self.compression_ratio, ) * len(sizes['depths'])
        factories = {ratio: token_merger_factory(
            merge_mode, ratio, merger_cfg,
            options=dict(init_step=init_step), context=dict(window_size=window_size),
            probe_dims=sizes['embed_dims']) for ratio in sorted(set(stage_ratios))}
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
        for stage, ratio in zip(self.stages, stage_ratios):
            reclass(stage, LTMSwinBlockSequence, merge_scope=merge_scope)
            for block in stage.blocks:
                LTMSwinBlock.from_block(block, factories[ratio](block.ffn.embed_dims))
        # mmdet's _freeze_stages ran before the token mergers existed
        self._freeze_stages()

    @property
    def stage_compression_ratios(self) -> Tuple[float, ...]:
        """The ratio of each stage's mask modules."""
        if isinstance(self.compression_ratio, tuple):
            return self.compression_ratio
        return (self.compression_ratio, ) * len(self.stages)

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
        Under ``torch.compile(dynamic=True)`` the input size is pinned first
        (:func:`~mmltm.ops.grid_plan.pin_input_size`): the merge plans are
        static per size anyway, and mmdet's window padding traces 12x faster
        with static sizes.
        """
        pin_input_size(x)
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
