"""EfficientViT (Cai et al.): multi-scale ReLU linear attention backbone.

H. Cai, J. Li, M. Hu, C. Gan, S. Han, "EfficientViT: Multi-Scale Linear
Attention for High-Resolution Dense Prediction", ICCV 2023
(arXiv 2205.14756). Not the MSRA EfficientViT (Liu et al., CVPR 2023).

mmpretrain 1.2 has no EfficientViT, and no maintained PyPI package ships it
as an OpenMMLab backbone (``timm`` has one, but pulling timm in for one
backbone, with timm's module names and init, would make it the only
non-OpenMMLab model here), so this is our own implementation from the
paper's description, built from mmcv ``ConvModule``s:

* stage 0 (stride 2): 3x3 conv, then ``depths[0]`` residual depthwise-
  separable convs (:class:`DSConv`);
* stages 1-2 (strides 4, 8): ``depths[i]`` MBConvs (:class:`MBConv`,
  expand 4), the first with stride 2, the others residual;
* stages 3-4 (strides 16, 32): a stride-2 MBConv, then ``depths[i]``
  :class:`EfficientViTBlock` s. A block is a "context" part, lightweight
  multi-scale linear attention (:class:`LiteMLA`: 1x1 qkv, 5x5 depthwise +
  grouped 1x1 aggregation for a second scale, ReLU-kernel linear attention
  per 16-channel head, 1x1 projection + BN), and a "local" part, an MBConv
  that takes the place of a transformer's MLP; both residual.
* BN after convs, Hardswish activations; the MBConvs of stages 3-4 have no
  norm after their first two convs ("fewer norm") but carry biases there.

For classification Cai et al. end with a 1x1 conv to ``head_channels``
(1536 for B1) before global pooling; as with mmpretrain's MobileViT
(``conv_1x1_exp``) that conv sits in the backbone here (``head_channels``
argument, on by the classification configs, off for dense prediction).
The rest, pooling + Linear(1536, 1600) + LayerNorm + Hardswish, is
mmpretrain's ``LinearNeck`` and the last Linear(1600, 1000) its
``LinearClsHead`` (so the IB head sees the 1600-d pre-classifier feature);
the first Linear has a bias, 1.6 k parameters more than the original.
Measured with mmengine's counter at 224x224 (tests/test_models/
test_ltm_efficientvit.py): B0 3.41 M / 0.104 G, B1 9.10 M / 0.528 G,
B2 24.3 M / 1.60 G, B3 48.6 M / 3.99 G MACs, against the published
3.4 M / 0.1 G, 9.1 M / 0.52 G, 24 M / 1.6 G, 49 M / 3.9 G.

Module names are ours (no pretrained checkpoints of Cai et al. are
converted here); they follow OpenMMLab's (``ConvModule``: ``conv`` / ``bn``).
"""
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import ConvModule
from mmengine.model import BaseModule, ModuleList, Sequential
from mmpretrain.models.backbones.base_backbone import BaseBackbone

from mmltm.registry import register_model



def _check_residual(name: str, residual: bool, stride: int, in_channels: int,
                    out_channels: int) -> bool:
    """``residual``, or a ``ValueError`` where the shortcut cannot apply."""
    if residual and (stride != 1 or in_channels != out_channels):
        raise ValueError(f'a residual {name} needs stride 1 and in_channels == out_channels, '
                         f'got stride={stride}, {in_channels} -> {out_channels}')
    return residual


class DSConv(BaseModule):
    """Depthwise-separable conv: kxk depthwise (norm, act) + 1x1 (norm).

    Args:
        in_channels (int): input channels.
        out_channels (int): output channels.
        stride (int): stride of the depthwise conv. Default: 1.
        kernel_size (int): depthwise kernel size. Default: 3.
        residual (bool): add the input (needs stride 1 and equal channels).
            Default: False.
        norm_cfg (dict): norm after each conv. Default: BN.
        act_cfg (dict): activation after the depthwise conv. Default: HSwish.
        init_cfg (dict, optional): initialisation config.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1,
                 kernel_size: int = 3, residual: bool = False,
                 norm_cfg: dict = dict(type='BN'),
                 act_cfg: dict = dict(type='HSwish'),
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.residual = _check_residual('DSConv', residual, stride, in_channels,
                                        out_channels)
        self.depth_conv = ConvModule(
            in_channels, in_channels, kernel_size, stride=stride,
            padding=kernel_size // 2, groups=in_channels,
            norm_cfg=norm_cfg, act_cfg=act_cfg)
        self.point_conv = ConvModule(
            in_channels, out_channels, 1, norm_cfg=norm_cfg, act_cfg=None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.point_conv(self.depth_conv(x))
        return x + out if self.residual else out


class MBConv(BaseModule):
    """Inverted residual: 1x1 expand, kxk depthwise, 1x1 project.

    Args:
        in_channels (int): input channels.
        out_channels (int): output channels.
        stride (int): stride of the depthwise conv. Default: 1.
        expand_ratio (float): hidden channels = in_channels * expand_ratio.
            Default: 4.
        kernel_size (int): depthwise kernel size. Default: 3.
        fewer_norm (bool): no norm (but a bias) after the first two convs,
            as in the MBConvs of EfficientViT's attention stages.
            Default: False.
        residual (bool): add the input (needs stride 1 and equal channels).
            Default: False.
        norm_cfg (dict): norm config. Default: BN.
        act_cfg (dict): activation after the first two convs. Default: HSwish.
        init_cfg (dict, optional): initialisation config.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1,
                 expand_ratio: float = 4, kernel_size: int = 3,
                 fewer_norm: bool = False, residual: bool = False,
                 norm_cfg: dict = dict(type='BN'),
                 act_cfg: dict = dict(type='HSwish'),
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.residual = _check_residual('MBConv', residual, stride, in_channels,
                                        out_channels)
        mid = round(in_channels * expand_ratio)
        inner_norm = None if fewer_norm else norm_cfg
        self.inverted_conv = ConvModule(
            in_channels, mid, 1, norm_cfg=inner_norm, act_cfg=act_cfg)
        self.depth_conv = ConvModule(
            mid, mid, kernel_size, stride=stride, padding=kernel_size // 2,
            groups=mid, norm_cfg=inner_norm, act_cfg=act_cfg)
        self.point_conv = ConvModule(mid, out_channels, 1, norm_cfg=norm_cfg,
                                     act_cfg=None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.point_conv(self.depth_conv(self.inverted_conv(x)))
        return x + out if self.residual else out


class LiteMLA(BaseModule):
    """Lightweight multi-scale linear attention (ReLU kernel).

    ``qkv`` (1x1) gives q, k, v for ``heads = in_channels // head_dim``
    heads of ``head_dim`` channels; every scale in ``scales`` adds a second
    set of q, k, v made by a ``s x s`` depthwise conv and a grouped 1x1 conv
    (one group per head and q/k/v), so there are ``heads * (1 + len(scales))``
    heads in all. Each head computes
    ``out = (V [ReLU(K)]^T) ReLU(Q) / (1^T [ReLU(K)]^T ReLU(Q))``, linear in
    the number of pixels, and a 1x1 conv + norm projects the concatenation.

    Args:
        in_channels (int): input channels.
        out_channels (int): output channels.
        head_dim (int): channels per head. Default: 16.
        heads_ratio (float): heads = in_channels // head_dim * heads_ratio.
            Default: 1.0.
        scales (Sequence[int]): kernel sizes of the extra aggregation scales.
            Default: (5,).
        eps (float): added to the denominator. Default: 1e-15.
        norm_cfg (dict): norm after the projection. Default: BN.
        init_cfg (dict, optional): initialisation config.
    """

    def __init__(self, in_channels: int, out_channels: int, head_dim: int = 16,
                 heads_ratio: float = 1.0, scales: Sequence[int] = (5, ),
                 eps: float = 1e-15, norm_cfg: dict = dict(type='BN'),
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        heads = int(in_channels // head_dim * heads_ratio)
        if heads < 1:
            raise ValueError(f'LiteMLA: in_channels={in_channels} gives no head '
                             f'of head_dim={head_dim}')
        self.head_dim = head_dim
        self.eps = eps
        total = heads * head_dim
        self.qkv = ConvModule(in_channels, 3 * total, 1, bias=False,
                              norm_cfg=None, act_cfg=None)
        self.aggreg = ModuleList([
            Sequential(
                nn.Conv2d(3 * total, 3 * total, s, padding=s // 2,
                          groups=3 * total, bias=False),
                nn.Conv2d(3 * total, 3 * total, 1, groups=3 * heads,
                          bias=False)) for s in scales
        ])
        self.proj = ConvModule(total * (1 + len(scales)), out_channels, 1,
                               norm_cfg=norm_cfg, act_cfg=None)

    def linear_attention(self, qkv: torch.Tensor) -> torch.Tensor:
        """``(B, 3 * heads * d, H, W)`` q/k/v per head -> ``(B, heads * d, H, W)``."""
        B, _, H, W = qkv.shape
        d = self.head_dim
        # the ratio of two sums of products is sensitive in half precision
        qkv = qkv.float().reshape(B, -1, 3 * d, H * W)
        q, k, v = F.relu(qkv[:, :, :d]), F.relu(qkv[:, :, d:2 * d]), qkv[:, :, 2 * d:]
        # a row of ones under v yields the normaliser in the same matmuls
        v = F.pad(v, (0, 0, 0, 1), value=1.0)
        vk = torch.matmul(v, k.transpose(-1, -2))  # (B, heads, d+1, d)
        out = torch.matmul(vk, q)  # (B, heads, d+1, HW)
        out = out[:, :, :-1] / (out[:, :, -1:] + self.eps)
        return out.reshape(B, -1, H, W)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        qkv = self.qkv(x)
        qkv = torch.cat([qkv] + [op(qkv) for op in self.aggreg], dim=1)
        return self.proj(self.linear_attention(qkv).to(x.dtype))


class EfficientViTBlock(BaseModule):
    """``x = x + LiteMLA(x); x = x + MBConv(x)``: the attention ("context")
    part and the MLP-like ("local") part of an EfficientViT block.

    Args:
        channels (int): channels in and out.
        head_dim (int): channels per attention head. Default: 16.
        expand_ratio (float): MBConv expansion. Default: 4.
        scales (Sequence[int]): LiteMLA aggregation scales. Default: (5,).
        norm_cfg (dict): norm config. Default: BN.
        act_cfg (dict): activation config. Default: HSwish.
        init_cfg (dict, optional): initialisation config.
    """

    def __init__(self, channels: int, head_dim: int = 16,
                 expand_ratio: float = 4, scales: Sequence[int] = (5, ),
                 norm_cfg: dict = dict(type='BN'),
                 act_cfg: dict = dict(type='HSwish'),
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.attn = LiteMLA(channels, channels, head_dim=head_dim,
                            scales=scales, norm_cfg=norm_cfg)
        self.ffn = MBConv(channels, channels, expand_ratio=expand_ratio,
                          fewer_norm=True, norm_cfg=norm_cfg, act_cfg=act_cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(x)
        return x + self.ffn(x)


@register_model()
class EfficientViT(BaseBackbone):
    """EfficientViT backbone (Cai et al., ICCV 2023); see the module docstring.

    Args:
        arch (str | dict): ``'b0'``, ``'b1'``, ``'b2'``, ``'b3'`` or a dict with
            ``widths`` (5 ints), ``depths`` (5 ints) and ``head_dim``.
            Default: ``'b1'``.
        in_channels (int): image channels. Default: 3.
        out_indices (Sequence[int] | int): stages to return, 0-4 (strides
            2, 4, 8, 16, 32). Default: (4,).
        head_channels (int, optional): if set, a 1x1 conv + norm + act to this
            many channels is applied to the last stage's output (the first
            layer of Cai et al.'s classifier). Default: None.
        expand_ratio (float): MBConv expansion. Default: 4.
        frozen_stages (int): stages 0..frozen_stages are frozen (eval mode,
            no grad); -1 freezes nothing. Default: -1.
        norm_eval (bool): keep BN layers in eval mode while training.
            Default: False.
        norm_cfg (dict): norm config. Default: BN.
        act_cfg (dict): activation config. Default: HSwish.
        init_cfg (dict | list, optional): initialisation config.
            Default: truncated normal (std 0.02) for convs and linears,
            constant 1 / 0 for norms.
    """
    arch_zoo: Dict[str, Dict] = {
        'b0': dict(widths=(8, 16, 32, 64, 128), depths=(1, 2, 2, 2, 2),
                   head_dim=16),
        'b1': dict(widths=(16, 32, 64, 128, 256), depths=(1, 2, 3, 3, 4),
                   head_dim=16),
        'b2': dict(widths=(24, 48, 96, 192, 384), depths=(1, 3, 4, 4, 6),
                   head_dim=32),
        'b3': dict(widths=(32, 64, 128, 256, 512), depths=(1, 4, 6, 6, 9),
                   head_dim=32),
    }
    num_stages = 5

    def __init__(self,
                 arch: Union[str, dict] = 'b1',
                 in_channels: int = 3,
                 out_indices: Union[int, Sequence[int]] = (4, ),
                 head_channels: Optional[int] = None,
                 expand_ratio: float = 4,
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 norm_cfg: dict = dict(type='BN'),
                 act_cfg: dict = dict(type='HSwish'),
                 init_cfg: Optional[Union[dict, List[dict]]] = [
                     dict(type='TruncNormal', layer=['Conv2d', 'Linear'],
                          std=.02, bias=0.),
                     dict(type='Constant', layer=['_BatchNorm', 'GroupNorm',
                                                  'LayerNorm'], val=1., bias=0.)
                 ]) -> None:
        super().__init__(init_cfg=init_cfg)
        self.arch_settings = self._resolve_arch(arch)
        widths = list(self.arch_settings['widths'])
        depths = list(self.arch_settings['depths'])
        head_dim = self.arch_settings['head_dim']
        if isinstance(out_indices, int):
            out_indices = [out_indices]
        self.out_indices = []
        for index in out_indices:
            resolved = index + self.num_stages if index < 0 else index
            if not 0 <= resolved < self.num_stages:
                raise ValueError(f'out_indices entry {index} is out of range; '
                                 f'allowed: 0..{self.num_stages - 1} (or negative)')
            self.out_indices.append(resolved)
        if frozen_stages not in range(-1, self.num_stages):
            raise ValueError(f'frozen_stages={frozen_stages} must be in '
                             f'[-1, {self.num_stages - 1}]')
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        self.widths = widths

        common = dict(norm_cfg=norm_cfg, act_cfg=act_cfg)
        stages = []
        # stage 0: stride-2 conv + residual depthwise-separable convs
        stem = [ConvModule(in_channels, widths[0], 3, stride=2, padding=1,
                           **common)]
        stem += [DSConv(widths[0], widths[0], residual=True, **common)
                 for _ in range(depths[0])]
        stages.append(Sequential(*stem))
        # stages 1-2: MBConvs
        for i in (1, 2):
            blocks = [MBConv(widths[i - 1], widths[i], stride=2,
                             expand_ratio=expand_ratio, **common)]
            blocks += [MBConv(widths[i], widths[i], expand_ratio=expand_ratio,
                              residual=True, **common)
                       for _ in range(depths[i] - 1)]
            stages.append(Sequential(*blocks))
        # stages 3-4: a stride-2 MBConv, then EfficientViT blocks
        for i in (3, 4):
            blocks = [MBConv(widths[i - 1], widths[i], stride=2,
                             expand_ratio=expand_ratio, fewer_norm=True,
                             **common)]
            blocks += [EfficientViTBlock(widths[i], head_dim=head_dim,
                                         expand_ratio=expand_ratio, **common)
                       for _ in range(depths[i])]
            stages.append(Sequential(*blocks))
        self.stages = ModuleList(stages)

        self.head_channels = head_channels
        if head_channels is not None:
            self.head_conv = ConvModule(widths[-1], head_channels, 1, **common)
        else:
            self.head_conv = None
        self._freeze_stages()

    @classmethod
    def _resolve_arch(cls, arch: Union[str, dict]) -> Dict:
        if isinstance(arch, str):
            if arch.lower() not in cls.arch_zoo:
                raise ValueError(f'arch={arch!r} is not supported; allowed: '
                                 f'{sorted(cls.arch_zoo)} or a dict')
            return dict(cls.arch_zoo[arch.lower()])
        required = {'widths', 'depths', 'head_dim'}
        if not isinstance(arch, dict) or not required <= set(arch):
            raise ValueError(f'a custom arch must be a dict with keys {required}, '
                             f'got {arch!r}')
        if len(arch['widths']) != 5 or len(arch['depths']) != 5:
            raise ValueError('arch widths and depths need 5 entries (stages 0-4)')
        return dict(arch)

    def _freeze_stages(self) -> None:
        for i in range(self.frozen_stages + 1):
            stage = self.stages[i]
            stage.eval()
            for param in stage.parameters():
                param.requires_grad = False

    def train(self, mode: bool = True) -> 'EfficientViT':
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()
        return self

    def forward_stage(self, index: int, x: torch.Tensor) -> torch.Tensor:
        """Run stage ``index`` (LTM-EfficientViT threads masks here)."""
        return self.stages[index](x)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        outs = []
        for i in range(self.num_stages):
            x = self.forward_stage(i, x)
            if i == self.num_stages - 1 and self.head_conv is not None:
                x = self.head_conv(x)
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)
