"""mmpretrain ``ImageClassifier`` for IB heads and mmdet-style backbones.

Two small differences from mmpretrain's ``ImageClassifier``, nothing else:

* mmdet's ``SwinTransformer`` (and so ``LTMSwinTransformer``) returns its
  stage outputs as a *list*; mmpretrain's necks (``GlobalAveragePooling``)
  accept only a tuple or a tensor. The backbone output is turned into a
  tuple, so mmdet/mmseg-style backbones plug into mmpretrain recipes as is.
* The IB bound of LTM has an input term, ``-H(phi_in(x))``, scored on the
  (pre-processed, possibly mixed) input images, but ``ImageClassifier.loss``
  hands its head only the features. ``loss`` passes ``inputs=`` to heads that
  declare ``requires_inputs = True``
  (:class:`~mmltm.models.heads.IBLinearClsHead`).
"""
from typing import List

import torch

from mmltm.registry import register_model

try:
    from mmpretrain.models.classifiers import ImageClassifier
    from mmpretrain.structures import DataSample
except ImportError as err:  # pragma: no cover
    raise ImportError('IBImageClassifier needs mmpretrain') from err


@register_model()
class IBImageClassifier(ImageClassifier):
    """``ImageClassifier`` that forwards the input batch to IB heads and
    tuples list backbone outputs (see the module docstring). With a plain
    head (e.g. ``LinearClsHead``) it computes exactly ``ImageClassifier``.

    Args: as mmpretrain's ``ImageClassifier``.
    """

    def extract_feat(self, inputs: torch.Tensor, stage: str = 'neck'):
        """As ``ImageClassifier.extract_feat``; a list from the backbone
        becomes a tuple before the neck."""
        if stage not in ('backbone', 'neck', 'pre_logits'):
            raise ValueError(f'stage={stage!r}; expected "backbone", "neck" '
                             'or "pre_logits"')
        x = self.backbone(inputs)
        if isinstance(x, list):
            x = tuple(x)
        if stage == 'backbone':
            return x
        if self.with_neck:
            x = self.neck(x)
        if stage == 'neck':
            return x
        return self.head.pre_logits(x)

    def loss(self, inputs: torch.Tensor,
             data_samples: List[DataSample]) -> dict:
        """Losses of a batch; see ``ImageClassifier.loss``."""
        feats = self.extract_feat(inputs)
        if getattr(self.head, 'requires_inputs', False):
            return self.head.loss(feats, data_samples, inputs=inputs)
        return self.head.loss(feats, data_samples)
