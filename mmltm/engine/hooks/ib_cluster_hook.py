"""The hook that builds and refreshes the cluster tables of the LTM IB bound.

What the authors' ``train.py`` does (``ltm_paper.md`` section 2), and what
this hook does instead where the two differ:

* Input clusters: k-means (K_in) on flattened training images, once before
  training (the authors: offline, first 1000 batches of rank 0, faiss).
  Here: in ``before_train`` on ``num_input_samples`` images of rank 0's shard
  of the training data, pooled to ``input_size`` (see ``flatten_images``);
  skipped when the head's buffers already hold them (resume / load_from).
* Output clusters and Q: at the start of every epoch after the warm-up, a
  no-grad pass over the training data (eval mode, no mixup), k-means (K) on
  the L2-normalised pooled features of rank 0, then Q from *the same
  features scored with the same new centroids* on every rank (all-reduced).
  The authors accumulated Q with the previous epoch's centroids and paired it
  with new k-means centroids whose cluster indices are arbitrary (the
  misalignment bug of ``ltm_paper_evidence.md`` 2.3); here centroids and Q
  are always consistent. Iteration-based loops refresh every ``interval``
  iterations (default: one pass of the train loader).
* Warm-up: the head's IB term is off (CE only) before
  ``int(warmup_ratio * max_epochs)`` epochs (or ``* max_iters`` iterations),
  as the authors' ``ib_warmup_epoch``; no refresh is done before then.
* Distributed: features are extracted on every rank from its own shard;
  k-means runs on rank 0 and its centroids are broadcast (``mmengine.dist``);
  Q and the monitoring joints are summed over all ranks.
* The passes draw their own data order and save/restore the python, numpy
  and torch RNG states, so that adding the hook (or the IB term) does not
  change the augmentation stream of training.
* Monitoring (as the authors' logs): ``I(X;F)`` between input and output
  cluster assignments and ``I(F;Y)`` between output clusters and labels,
  from the soft joints of the pass, and ``IB = I(X;F) - I(F;Y)``, in nats.
"""
import random
from contextlib import contextmanager, nullcontext
from typing import Iterator, Optional, Tuple

import numpy as np
import torch
from mmengine import dist
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.runner import IterBasedTrainLoop
from mmengine.runner.amp import autocast
from torch.utils.data import DataLoader

from mmltm.models.losses.ib_loss import (accumulate_q, cluster_scores,
                                         finalize_q, kmeans, l2_normalize,
                                         mutual_information)
from mmltm.registry import register_hook


@contextmanager
def _preserve_rng() -> Iterator[None]:
    """Run a block without consuming the global python/numpy/torch RNGs."""
    py_state, np_state = random.getstate(), np.random.get_state()
    torch_state = torch.get_rng_state()
    try:
        yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
        torch.set_rng_state(torch_state)


@register_hook()
class IBClusterHook(Hook):
    """Compute input clusters once, and output clusters + Q during training,
    for :class:`~mmltm.models.heads.IBLinearClsHead`.

    Args:
        warmup_ratio (float): fraction of the schedule trained with CE only
            (authors: 0.3), in [0, 1). Default: 0.3.
        interval (int, optional): refresh every ``interval`` epochs
            (epoch-based loops) or iterations (iteration-based loops).
            Default: 1 epoch, or ``len(train_dataloader)`` iterations.
        num_input_samples (int): images (of rank 0) clustered for the input
            clusters (authors: ~64,000). Default: 64000.
        num_feature_samples (int, optional): images per rank in each
            refresh pass; None = the whole shard (authors). Default: None.
        input_kmeans_iters (int): Lloyd iterations for the input clusters
            (authors: 20). Default: 20.
        output_kmeans_iters (int): for the output clusters (authors: 60).
            Default: 60.
        max_init_points (int, optional): k-means++ runs on at most this many
            points (its cost is O(N K D)). Default: None (all).
        batch_size (int, optional): batch size of the passes. Default: that
            of the train dataloader.
        num_workers (int, optional): workers of the passes. Default: that of
            the train dataloader.
        seed (int): seed of the passes' data order and of k-means. Default: 0.
        mi_samples (int): samples per rank used for the ``I(X;F)`` monitor
            (``I(F;Y)`` uses all); 0 disables both. Default: 10000.
    """
    priority = 'NORMAL'

    def __init__(self,
                 warmup_ratio: float = 0.3,
                 interval: Optional[int] = None,
                 num_input_samples: int = 64000,
                 num_feature_samples: Optional[int] = None,
                 input_kmeans_iters: int = 20,
                 output_kmeans_iters: int = 60,
                 max_init_points: Optional[int] = None,
                 batch_size: Optional[int] = None,
                 num_workers: Optional[int] = None,
                 seed: int = 0,
                 mi_samples: int = 10000) -> None:
        if not (0 <= warmup_ratio < 1):
            raise ValueError(f'warmup_ratio={warmup_ratio!r} must be in [0, 1)')
        for name, value, allow_none in (
                ('interval', interval, True),
                ('num_input_samples', num_input_samples, False),
                ('num_feature_samples', num_feature_samples, True),
                ('max_init_points', max_init_points, True),
                ('batch_size', batch_size, True)):
            if value is None and allow_none:
                continue
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f'{name}={value!r} must be a positive int'
                                 + (' or None' if allow_none else ''))
        for name, value in (('input_kmeans_iters', input_kmeans_iters),
                            ('output_kmeans_iters', output_kmeans_iters),
                            ('mi_samples', mi_samples)):
            if not isinstance(value, int) or value < 0:
                raise ValueError(f'{name}={value!r} must be an int >= 0')
        if num_workers is not None and num_workers < 0:
            raise ValueError(f'num_workers={num_workers!r} must be >= 0')
        self.warmup_ratio = float(warmup_ratio)
        self.interval = interval
        self.num_input_samples = num_input_samples
        self.num_feature_samples = num_feature_samples
        self.input_kmeans_iters = input_kmeans_iters
        self.output_kmeans_iters = output_kmeans_iters
        self.max_init_points = max_init_points
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.seed = int(seed)
        self.mi_samples = mi_samples
        self._loader: Optional[DataLoader] = None
        #: number of output-cluster refreshes done in this run
        self.num_refreshes = 0

    # ----------------------------------------------------------- helpers
    @staticmethod
    def _model(runner):
        model = runner.model
        return model.module if is_model_wrapper(model) else model

    def _head(self, runner):
        head = getattr(self._model(runner), 'head', None)
        if head is None or not hasattr(head, 'set_output_clusters'):
            raise TypeError(
                'IBClusterHook needs a model whose head is an IBLinearClsHead '
                f'(model.head.set_output_clusters), got head '
                f'{type(head).__name__}')
        return head

    def _by_iter(self, runner) -> bool:
        return isinstance(runner.train_loop, IterBasedTrainLoop)

    def ib_start(self, runner) -> int:
        """First epoch (or iteration) with the IB term on."""
        total = runner.max_iters if self._by_iter(runner) else runner.max_epochs
        return int(self.warmup_ratio * total)

    def _interval(self, runner) -> int:
        if self.interval is not None:
            return self.interval
        return len(runner.train_dataloader) if self._by_iter(runner) else 1

    def _build_loader(self, runner) -> DataLoader:
        from mmengine.dataset import DefaultSampler
        train_loader = runner.train_dataloader
        dataset = train_loader.dataset
        # a sampler of our own: shards by rank, and its order (seeded) does
        # not touch the training sampler
        sampler = DefaultSampler(dataset, shuffle=True, seed=self.seed)
        batch_size = self.batch_size or train_loader.batch_size or 32
        num_workers = (train_loader.num_workers
                       if self.num_workers is None else self.num_workers)
        return DataLoader(dataset, batch_size=batch_size, sampler=sampler,
                          num_workers=num_workers,
                          collate_fn=train_loader.collate_fn,
                          drop_last=False)

    def _amp_context(self, runner, device_type: str):
        from mmengine.optim import AmpOptimWrapper
        wrapper = getattr(runner, 'optim_wrapper', None)
        if isinstance(wrapper, AmpOptimWrapper):
            return autocast(device_type=device_type, dtype=wrapper.cast_dtype)
        return nullcontext()

    def _batches(self, runner, limit: Optional[int], pass_id: int):
        """Yield ``(inputs, labels)`` pre-processed without batch augments
        (no mixup) until ``limit`` samples of this rank were seen. The data
        order depends on ``seed`` and ``pass_id`` only (the same on every
        rank, so the shards stay disjoint)."""
        model = self._model(runner)
        self._loader.sampler.set_epoch(pass_id)
        seen = 0
        for data in self._loader:
            data = model.data_preprocessor(data, False)
            inputs = data['inputs']
            labels = torch.cat([s.gt_label for s in data['data_samples']])
            if limit is not None and seen + inputs.shape[0] > limit:
                keep = limit - seen
                inputs, labels = inputs[:keep], labels[:keep]
            seen += inputs.shape[0]
            yield inputs, labels.to(inputs.device)
            if limit is not None and seen >= limit:
                return

    @staticmethod
    def _broadcast(tensor: Optional[torch.Tensor], shape: Tuple[int, ...],
                   device) -> torch.Tensor:
        if dist.get_world_size() == 1:
            return tensor
        if dist.get_rank() != 0:
            tensor = torch.zeros(shape, device=device)
        dist.broadcast(tensor, src=0)
        return tensor

    def _kmeans_rank0(self, points: Optional[torch.Tensor], k: int,
                      iters: int, shape: Tuple[int, int], device,
                      what: str, pass_id: int) -> torch.Tensor:
        """k-means on rank 0's ``points`` (other ranks may pass None), then
        the L2-normalised centroids broadcast to every rank."""
        centroids = None
        if dist.get_rank() == 0:
            if points.shape[0] < k:
                raise ValueError(
                    f'IBClusterHook: {points.shape[0]} {what} on rank 0 but '
                    f'{k} clusters; use more samples or fewer clusters')
            centroids, _ = kmeans(points, k, num_iters=iters,
                                  seed=self.seed + pass_id,
                                  max_init_points=self.max_init_points)
            centroids = l2_normalize(centroids).to(device)
        return self._broadcast(centroids, shape, device)

    # --------------------------------------------------------- clusters
    @torch.no_grad()
    def compute_input_clusters(self, runner) -> None:
        """k-means on flattened training images -> head's input centroids."""
        head = self._head(runner)
        device = head.ib_input_centroids.device
        points, num = None, 0
        if dist.get_rank() == 0:  # only rank 0's images are clustered
            flats = []
            with _preserve_rng():
                for inputs, _ in self._batches(
                        runner, self.num_input_samples, pass_id=0):
                    flats.append(l2_normalize(head.flatten_inputs(inputs)))
            points = torch.cat(flats)
            num = points.shape[0]
        centroids = self._kmeans_rank0(
            points, head.num_input_clusters, self.input_kmeans_iters,
            tuple(head.ib_input_centroids.shape), device, 'images', 0)
        head.set_input_clusters(centroids)
        runner.logger.info(
            f'IBClusterHook: {head.num_input_clusters} input clusters from '
            f'{num} images (rank 0, pooled to '
            f'{head.input_size}x{head.input_size})')

    @torch.no_grad()
    def refresh_output_clusters(self, runner) -> dict:
        """One no-grad pass: k-means on pooled features, then Q with the
        same centroids; stores both in the head. Returns the monitors."""
        head = self._head(runner)
        model = self._model(runner)
        was_training = model.training
        model.eval()
        feats, labels, in_flat = [], [], []
        n_mi = 0
        pass_id = 1 + runner.iter  # same on every rank, new each refresh
        try:
            with _preserve_rng():
                for inputs, y in self._batches(
                        runner, self.num_feature_samples, pass_id):
                    with self._amp_context(runner, inputs.device.type):
                        f = model.extract_feat(inputs, stage='pre_logits')
                    feats.append(l2_normalize(f))
                    labels.append(y)
                    if n_mi < self.mi_samples and bool(head.ib_input_ready):
                        take = min(self.mi_samples - n_mi, inputs.shape[0])
                        in_flat.append(head.flatten_inputs(inputs[:take]))
                        n_mi += take
        finally:
            model.train(was_training)
        feats, labels = torch.cat(feats), torch.cat(labels)

        k, num_classes = head.num_clusters, head.num_classes
        centroids = self._kmeans_rank0(
            feats, k, self.output_kmeans_iters,
            tuple(head.ib_output_centroids.shape), feats.device, 'features',
            pass_id)
        # Q from the same features and the same (new) centroids: consistent
        beta = head.ib_loss.beta
        numerator = feats.new_zeros(k, num_classes)
        counts = feats.new_zeros(num_classes)
        chunk = 8192
        for s in range(0, feats.shape[0], chunk):
            phi = cluster_scores(feats[s:s + chunk], centroids, beta)
            num, cnt = accumulate_q(phi, labels[s:s + chunk], num_classes)
            numerator += num
            counts += cnt
        joint_xf = None
        if in_flat:
            in_flat = torch.cat(in_flat)
            phi_in = cluster_scores(in_flat, head.ib_input_centroids, beta)
            phi_out = cluster_scores(feats[:in_flat.shape[0]], centroids, beta)
            joint_xf = phi_in.t() @ phi_out
        dist.all_reduce(numerator, op='sum')
        dist.all_reduce(counts, op='sum')
        q = finalize_q(numerator, counts)
        head.set_output_clusters(centroids.to(head.ib_q.device),
                                 q.to(head.ib_q.device))
        self.num_refreshes += 1

        monitors = {}
        if self.mi_samples > 0:
            monitors['ib_I_FY'] = mutual_information(numerator)
            if joint_xf is not None:
                if dist.get_world_size() > 1:
                    dist.all_reduce(joint_xf, op='sum')
                monitors['ib_I_XF'] = mutual_information(joint_xf)
                monitors['ib_IB'] = monitors['ib_I_XF'] - monitors['ib_I_FY']
        text = ', '.join(f'{key}={val:.4f}' for key, val in monitors.items())
        runner.logger.info(
            f'IBClusterHook: refreshed {k} output clusters (k-means on '
            f'{feats.shape[0]} features of rank 0) and Q at epoch '
            f'{runner.epoch}, iter {runner.iter}' + (f'; {text}' if text
                                                      else ''))
        if monitors and getattr(runner, 'visualizer', None) is not None:
            runner.visualizer.add_scalars(monitors, step=runner.iter)
        return monitors

    # ------------------------------------------------------------ hooks
    def _update(self, runner, step: int) -> None:
        head = self._head(runner)
        start = self.ib_start(runner)
        head.ib_active = step >= start
        if not head.ib_active:
            return
        due = (step - start) % self._interval(runner) == 0
        # also right away when resuming into the IB phase without tables
        if due or not bool(head.ib_output_ready):
            self.refresh_output_clusters(runner)

    def before_train(self, runner) -> None:
        head = self._head(runner)
        head.ib_hook_attached = True
        if self._loader is None:
            self._loader = self._build_loader(runner)
        if not bool(head.ib_input_ready):
            self.compute_input_clusters(runner)
        runner.logger.info(
            f'IBClusterHook: IB term on from '
            f'{"iteration" if self._by_iter(runner) else "epoch"} '
            f'{self.ib_start(runner)}, refresh every {self._interval(runner)}')

    def before_train_epoch(self, runner) -> None:
        if not self._by_iter(runner):
            self._update(runner, runner.epoch)

    def before_train_iter(self, runner, batch_idx: int,
                          data_batch=None) -> None:
        if self._by_iter(runner):
            self._update(runner, runner.iter)
