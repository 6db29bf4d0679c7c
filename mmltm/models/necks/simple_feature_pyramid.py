"""A ViTDet-style simple feature pyramid for plain (single-scale) backbones.

Y. Li, H. Mao, R. Girshick, K. He, "Exploring Plain Vision Transformer
Backbones for Object Detection", ECCV 2022: from the last stride-16 map of
a ViT, build strides 4 / 8 / 16 / 32 with deconvolutions and pooling, each
followed by a 1x1 and a 3x3 conv; an extra stride-64 level is a stride-2
max pooling of the coarsest one (what Mask R-CNN's RPN expects).

mmdet 3.3 keeps its ``SimpleFPN`` in ``projects/ViTDet`` (not part of the
installed package) and mmseg's ``Feature2Pyramid`` only resamples, without
the output convs or a channel change, so mmltm has its own. The LTM
backbones unmerge inside every block, so the map this neck receives is the
ordinary full ``(B, C, H/16, W/16)`` map.
"""
from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import ConvModule, build_activation_layer, build_norm_layer
from mmengine.model import BaseModule

from mmltm.registry import register_model

_ALLOWED_SCALES = (4.0, 2.0, 1.0, 0.5, 0.25)


@register_model()
class SimpleFeaturePyramid(BaseModule):
    """Multi-scale maps from one backbone map (ViTDet's simple pyramid).

    Args:
        in_channels (int): channels of the backbone map.
        out_channels (int): channels of every output level.
        scale_factors (Sequence[float]): resampling factor of each level
            relative to the input, from {4, 2, 1, 0.5, 0.25}.
            Default: (4.0, 2.0, 1.0, 0.5), i.e. strides 4-32 for a stride-16
            input.
        num_outs (int, optional): number of outputs; extra levels beyond
            ``len(scale_factors)`` are stride-2 max poolings of the last one
            (5 for Mask R-CNN's RPN). Default: None (= len(scale_factors)).
        in_index (int): which backbone output to use. Default: -1.
        norm_cfg (dict): norm of the output convs and of the inner
            deconvolution of the 4x level. Default: ``GN`` with 32 groups
            (batch-size independent, as ViTDet's LayerNorm).
        act_cfg (dict): activation inside the 4x upsampling. Default: GELU.
        init_cfg (dict | list, optional): initialisation config.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 scale_factors: Sequence[float] = (4.0, 2.0, 1.0, 0.5),
                 num_outs: Optional[int] = None,
                 in_index: int = -1,
                 norm_cfg: dict = dict(type='GN', num_groups=32,
                                       requires_grad=True),
                 act_cfg: dict = dict(type='GELU'),
                 init_cfg: Optional[Union[dict, List[dict]]] = dict(
                     type='Xavier', layer=['Conv2d', 'ConvTranspose2d'],
                     distribution='uniform')) -> None:
        super().__init__(init_cfg=init_cfg)
        scale_factors = [float(s) for s in scale_factors]
        bad = [s for s in scale_factors if s not in _ALLOWED_SCALES]
        if bad or not scale_factors:
            raise ValueError(f'scale_factors={scale_factors!r}: each must be one '
                             f'of {_ALLOWED_SCALES} and at least one is needed')
        num_outs = len(scale_factors) if num_outs is None else num_outs
        if num_outs < len(scale_factors):
            raise ValueError(f'num_outs={num_outs} is smaller than the number of '
                             f'scale_factors ({len(scale_factors)})')
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.scale_factors = scale_factors
        self.num_outs = num_outs
        self.in_index = in_index

        self.resamplers = nn.ModuleList()
        self.lateral_convs = nn.ModuleList()
        self.output_convs = nn.ModuleList()
        for scale in scale_factors:
            self.resamplers.append(
                self._resampler(scale, in_channels, norm_cfg, act_cfg))
            self.lateral_convs.append(
                ConvModule(in_channels, out_channels, 1, norm_cfg=norm_cfg,
                           act_cfg=None))
            self.output_convs.append(
                ConvModule(out_channels, out_channels, 3, padding=1,
                           norm_cfg=norm_cfg, act_cfg=None))

    @staticmethod
    def _resampler(scale: float, channels: int, norm_cfg: dict,
                   act_cfg: dict) -> nn.Module:
        if scale == 4.0:
            return nn.Sequential(
                nn.ConvTranspose2d(channels, channels, 2, stride=2),
                build_norm_layer(norm_cfg, channels)[1],
                build_activation_layer(act_cfg),
                nn.ConvTranspose2d(channels, channels, 2, stride=2))
        if scale == 2.0:
            return nn.ConvTranspose2d(channels, channels, 2, stride=2)
        if scale == 1.0:
            return nn.Identity()
        stride = int(round(1 / scale))
        return nn.MaxPool2d(kernel_size=stride, stride=stride)

    def forward(self, inputs: Union[torch.Tensor, Sequence[torch.Tensor]]
                ) -> Tuple[torch.Tensor, ...]:
        x = inputs if isinstance(inputs, torch.Tensor) else inputs[self.in_index]
        outs = [
            out_conv(lateral(resample(x)))
            for resample, lateral, out_conv in zip(
                self.resamplers, self.lateral_convs, self.output_convs)
        ]
        while len(outs) < self.num_outs:
            outs.append(F.max_pool2d(outs[-1], kernel_size=1, stride=2))
        return tuple(outs)
