"""mmpretrain linear head trained with the LTM objective ``CE + w * IBB``.

The head is mmpretrain's ``LinearClsHead`` (same ``fc``, same predictions,
same CE/label-smoothing loss on ``gt_score``/``gt_label``) plus the cluster
tables of the variational IB bound (:mod:`mmltm.models.losses.ib_loss`) as
buffers, so that they travel with checkpoints and a resumed run needs no new
input clustering. ``IBClusterHook`` fills the tables and switches the IB term
on after its warm-up; without the hook the head trains with CE only (and
says so once).

``loss()`` returns ``loss_cls`` (CE) and ``loss_ib`` (``ib_weight * IBB``;
a zero during the warm-up) as separate keys, so that both are logged and
summed by mmengine, plus ``ib_bound`` (the unweighted bound, not summed) once
clusters exist.
"""
import warnings
from typing import List, Optional, Tuple

import torch

from mmltm.registry import MODELS, register_model
from ..losses.ib_loss import VariationalIBLoss, flatten_images

try:  # mmpretrain is a hard dependency of the head, not of mmltm as a whole
    from mmpretrain.models.heads import LinearClsHead
    from mmpretrain.structures import DataSample
except ImportError as err:  # pragma: no cover
    raise ImportError('IBLinearClsHead needs mmpretrain') from err


def _build_ib_loss(cfg) -> VariationalIBLoss:
    if isinstance(cfg, VariationalIBLoss):
        return cfg
    if isinstance(cfg, dict):
        module = MODELS.build(cfg)
        if isinstance(module, VariationalIBLoss):
            return module
    raise TypeError(f'ib_loss must be a VariationalIBLoss or its config, '
                    f'got {cfg!r}')


@register_model()
class IBLinearClsHead(LinearClsHead):
    """Linear classification head with the LTM information-bottleneck term.

    Args:
        num_classes (int): Number of classes C.
        in_channels (int): Channels of the pooled feature.
        ib_weight (float): Weight of the IB bound (authors: 0.1). 0 keeps the
            tables and their refresh (for monitoring) but trains with CE only.
            Default: 0.1.
        ib_loss (dict | VariationalIBLoss): The bound. Default:
            ``dict(type='VariationalIBLoss', beta=1.0)``.
        num_clusters (int, optional): K, output clusters. Default:
            ``num_classes`` (as the authors).
        num_input_clusters (int, optional): K_in, input clusters. Default:
            ``num_clusters``.
        input_size (int): Images are pooled to ``input_size x input_size``
            before input clustering (see ``flatten_images``). Default: 32.
        input_channels (int): Channels of the input images. Default: 3.
        **kwargs: ``loss``, ``topk``, ``cal_acc``, ``init_cfg`` of
            ``LinearClsHead``.
    """
    #: :class:`IBImageClassifier` passes ``inputs=`` to :meth:`loss`
    requires_inputs = True

    def __init__(self,
                 num_classes: int,
                 in_channels: int,
                 ib_weight: float = 0.1,
                 ib_loss: dict = dict(type='VariationalIBLoss', beta=1.0),
                 num_clusters: Optional[int] = None,
                 num_input_clusters: Optional[int] = None,
                 input_size: int = 32,
                 input_channels: int = 3,
                 **kwargs) -> None:
        super().__init__(num_classes=num_classes, in_channels=in_channels,
                         **kwargs)
        if not ib_weight >= 0:
            raise ValueError(f'ib_weight={ib_weight!r} must be >= 0')
        num_clusters = num_classes if num_clusters is None else num_clusters
        num_input_clusters = (num_clusters if num_input_clusters is None
                              else num_input_clusters)
        for name, value in (('num_clusters', num_clusters),
                            ('num_input_clusters', num_input_clusters),
                            ('input_size', input_size),
                            ('input_channels', input_channels)):
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f'{name}={value!r} must be a positive int')
        self.ib_weight = float(ib_weight)
        self.ib_loss = _build_ib_loss(ib_loss)
        self.num_clusters = num_clusters
        self.num_input_clusters = num_input_clusters
        self.input_size = input_size
        self.input_channels = input_channels
        in_dims = input_channels * input_size * input_size
        # cluster tables (persistent: saved in checkpoints)
        self.register_buffer('ib_input_centroids',
                             torch.zeros(num_input_clusters, in_dims))
        self.register_buffer('ib_output_centroids',
                             torch.zeros(num_clusters, in_channels))
        self.register_buffer('ib_q', torch.full((num_clusters, num_classes),
                                                1.0 / num_clusters))
        self.register_buffer('ib_input_ready', torch.tensor(False))
        self.register_buffer('ib_output_ready', torch.tensor(False))
        #: set by IBClusterHook from the schedule (not saved: the hook
        #: re-derives it from the current epoch/iteration)
        self.ib_active = False
        #: set by IBClusterHook.before_train (only for the warning below)
        self.ib_hook_attached = False
        self._warned_no_hook = False

    # ----------------------------------------------------------- tables
    def flatten_inputs(self, inputs: torch.Tensor) -> torch.Tensor:
        """The IB's view of a batch of (pre-processed) images."""
        if inputs.dim() != 4 or inputs.shape[1] != self.input_channels:
            raise ValueError(f'inputs must be (B, {self.input_channels}, H, W)'
                             f', got {tuple(inputs.shape)}')
        return flatten_images(inputs, self.input_size)

    @torch.no_grad()
    def set_input_clusters(self, centroids: torch.Tensor) -> None:
        """Store L2-normalised input centroids ``(K_in, C_in * s * s)``."""
        self._check_shape('input centroids', centroids,
                          self.ib_input_centroids.shape)
        self.ib_input_centroids.copy_(
            torch.nn.functional.normalize(centroids.float(), dim=1))
        self.ib_input_ready.fill_(True)

    @torch.no_grad()
    def set_output_clusters(self, centroids: torch.Tensor,
                            q: torch.Tensor) -> None:
        """Store L2-normalised output centroids ``(K, D)`` together with the
        ``Q`` (K, C) computed *with these centroids* (see the hook)."""
        self._check_shape('output centroids', centroids,
                          self.ib_output_centroids.shape)
        self._check_shape('Q', q, self.ib_q.shape)
        self.ib_output_centroids.copy_(
            torch.nn.functional.normalize(centroids.float(), dim=1))
        self.ib_q.copy_(q.float())
        self.ib_output_ready.fill_(True)

    @staticmethod
    def _check_shape(name, tensor, shape) -> None:
        if tuple(tensor.shape) != tuple(shape):
            raise ValueError(f'{name} must have shape {tuple(shape)}, got '
                             f'{tuple(tensor.shape)}')

    # ------------------------------------------------------------- loss
    def _targets(self, data_samples: List[DataSample]) -> torch.Tensor:
        # soft labels (mixup/cutmix) if present, as ClsHead._get_loss does
        if 'gt_score' in data_samples[0]:
            return torch.stack([s.gt_score for s in data_samples])
        return torch.cat([s.gt_label for s in data_samples])

    def ib_bound(self, pre_logits: torch.Tensor, target: torch.Tensor,
                 inputs: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Batch mean of the bound for pooled features ``pre_logits``."""
        if not bool(self.ib_output_ready):
            raise RuntimeError('IBLinearClsHead: output clusters are not set; '
                               'add IBClusterHook to custom_hooks')
        input_flat = input_centroids = None
        if inputs is not None and bool(self.ib_input_ready):
            input_flat = self.flatten_inputs(inputs)
            input_centroids = self.ib_input_centroids
        return self.ib_loss(pre_logits, target.to(pre_logits.device),
                            self.ib_output_centroids, self.ib_q, input_flat,
                            input_centroids)

    def loss(self,
             feats: Tuple[torch.Tensor],
             data_samples: List[DataSample],
             inputs: Optional[torch.Tensor] = None,
             **kwargs) -> dict:
        """CE and IB losses.

        Args:
            feats (tuple[Tensor]): neck outputs; the last is the pooled
                feature.
            data_samples (list[DataSample]): with ``gt_label`` or
                ``gt_score``.
            inputs (Tensor, optional): the pre-processed (possibly mixed)
                images, for the input term of the bound (passed by
                ``IBImageClassifier``). Without them the reported bound
                lacks its input term, a constant of the network.

        Returns:
            dict[str, Tensor]: ``loss_cls``, ``loss_ib`` and, when the
            output clusters exist, ``ib_bound`` (unweighted, detached).
        """
        pre_logits = self.pre_logits(feats)
        cls_score = self.fc(pre_logits)
        losses = self._get_loss(cls_score, data_samples, **kwargs)
        losses['loss_cls'] = losses.pop('loss')

        ready = bool(self.ib_output_ready)
        if self.ib_active and self.ib_weight > 0:
            bound = self.ib_bound(pre_logits, self._targets(data_samples),
                                  inputs)
            losses['loss_ib'] = self.ib_weight * bound
            losses['ib_bound'] = bound.detach()
        else:
            if (self.training and self.ib_weight > 0 and not ready
                    and not self.ib_hook_attached
                    and not self._warned_no_hook):
                warnings.warn('IBLinearClsHead: IB clusters were never set '
                              '(no IBClusterHook?), training with CE only')
                self._warned_no_hook = True
            # a constant zero keeps the set of logged keys fixed
            losses['loss_ib'] = cls_score.new_zeros(())
            if ready:
                with torch.no_grad():
                    losses['ib_bound'] = self.ib_bound(
                        pre_logits.detach(), self._targets(data_samples),
                        inputs)
        return losses
