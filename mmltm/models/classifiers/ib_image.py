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

:meth:`IBImageClassifier.ib_gradient_ratio` measures how strongly the IB
term pulls on the mask module compared with CE (``IBClusterHook`` logs it
once per epoch as ``ib_grad_ratio``).
"""
from typing import Dict, List, Optional

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

    def ib_gradient_ratio(self,
                          inputs: torch.Tensor,
                          data_samples: List[DataSample],
                          name_filter: str = 'token_merger'
                          ) -> Optional[Dict[str, float]]:
        """``||d loss_ib / d theta|| / ||d loss_cls / d theta||`` over the
        parameters ``theta`` whose name contains ``name_filter`` (by default
        every mask-module parameter), on one batch.

        Two ``autograd.grad`` calls on one forward; parameter ``.grad``
        fields are not touched. The caller picks the mode (the hook uses
        eval mode, so that BN statistics and the RNG are not changed).

        Args:
            inputs (Tensor): A pre-processed batch.
            data_samples (list[DataSample]): Its labels.
            name_filter (str): Substring of the parameter names.

        Returns:
            dict | None: ``ratio``, ``ib_norm``, ``ce_norm`` and
            ``num_params`` (tensors counted); ``ratio`` is exactly 0.0 when
            the IB term is off (warm-up, ``ib_weight=0``) and inf when the
            CE gradient is 0 but the IB one is not. None if the model has no
            trainable parameter matching ``name_filter``.
        """
        params = [p for n, p in self.named_parameters()
                  if name_filter in n and p.requires_grad]
        if not params:
            return None
        losses = self.loss(inputs, data_samples)

        def grad_norm(loss: torch.Tensor, retain: bool) -> float:
            if not loss.requires_grad:
                return 0.0
            grads = torch.autograd.grad(loss, params, retain_graph=retain,
                                        allow_unused=True)
            total = sum(g.float().pow(2).sum() for g in grads
                        if g is not None)
            return float(torch.as_tensor(total).sqrt())

        ib_norm = grad_norm(losses['loss_ib'], retain=True)
        ce_norm = grad_norm(losses['loss_cls'], retain=False)
        if ib_norm == 0.0:
            ratio = 0.0
        else:
            ratio = ib_norm / ce_norm if ce_norm > 0 else float('inf')
        return dict(ratio=ratio, ib_norm=ib_norm, ce_norm=ce_norm,
                    num_params=len(params))

    def loss(self, inputs: torch.Tensor,
             data_samples: List[DataSample]) -> dict:
        """Losses of a batch; see ``ImageClassifier.loss``."""
        feats = self.extract_feat(inputs)
        if getattr(self.head, 'requires_inputs', False):
            return self.head.loss(feats, data_samples, inputs=inputs)
        return self.head.loss(feats, data_samples)
