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
  Q and the monitoring joints are summed over all ranks. An error on any
  rank (e.g. fewer samples than clusters on rank 0) is gathered before the
  next collective and raised on *every* rank (:class:`DistributedHookError`
  on the ranks that did not fail, naming the failing rank and its message),
  so a job stops with the error instead of hanging in a broadcast.
* The passes draw their own data order and save/restore the python, numpy
  and torch RNG states, so that adding the hook (or the IB term) does not
  change the augmentation stream of training.
* Monitoring (as the authors' logs): ``I(X;F)`` between input and output
  cluster assignments and ``I(F;Y)`` between output clusters and labels,
  from the soft joints of the pass, and ``IB = I(X;F) - I(F;Y)``, in nats.
* Does the IB term shape the merging? Once per epoch (iteration-based
  loops: every ``len(train_dataloader)`` iterations), on the first batch,
  the hook logs ``ib_grad_ratio = ||grad loss_ib|| / ||grad loss_cls||``
  over every mask-module parameter (name contains ``token_merger``), from
  :meth:`~mmltm.models.classifiers.IBImageClassifier.ib_gradient_ratio`:
  one extra forward and two ``autograd.grad`` calls in eval mode (BN
  statistics, dropout and the RNG stay untouched), rank-local. It is
  exactly 0.0 while the IB term is off (warm-up, ``ib_weight=0``). It goes
  to the message hub as ``train/ib_grad_ratio`` (so the runner log and the
  visualizer show it) and to the log as one line.
"""
import random
from contextlib import contextmanager, nullcontext
from typing import Callable, Iterator, Optional, Tuple

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
    """Run a block without consuming the global python/numpy/torch (and
    CUDA) RNGs."""
    py_state, np_state = random.getstate(), np.random.get_state()
    torch_state = torch.get_rng_state()
    cuda = torch.cuda.is_available() and torch.cuda.is_initialized()
    cuda_state = torch.cuda.get_rng_state_all() if cuda else None
    try:
        yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
        torch.set_rng_state(torch_state)
        if cuda_state is not None:
            torch.cuda.set_rng_state_all(cuda_state)


class DistributedHookError(RuntimeError):
    """Raised on the ranks that did not fail, when another rank did."""


class DistributedHookValueError(DistributedHookError, ValueError):
    """:class:`DistributedHookError` for a ``ValueError`` on another rank."""


class DistributedHookTypeError(DistributedHookError, TypeError):
    """:class:`DistributedHookError` for a ``TypeError`` on another rank."""


_SAME_KIND = {'ValueError': DistributedHookValueError,
              'TypeError': DistributedHookTypeError}


def raise_on_every_rank(error: Optional[BaseException]) -> None:
    """Collective: every rank passes its own error (or None); if any rank
    has one, every rank raises. The failing rank re-raises its own
    exception; the others raise :class:`DistributedHookError` (a
    ``ValueError``/``TypeError`` keeps its type) naming the failing rank and
    its message. No-op in a single process (the error is re-raised).

    Args:
        error (BaseException, optional): This rank's error, or None.
    """
    if dist.get_world_size() == 1:
        if error is not None:
            raise error
        return
    text = None if error is None else f'{type(error).__name__}: {error}'
    gathered = [None] * dist.get_world_size()
    torch.distributed.all_gather_object(gathered, text)
    if error is not None:
        raise error
    failed = [(rank, msg) for rank, msg in enumerate(gathered)
              if msg is not None]
    if not failed:
        return
    rank, msg = failed[0]
    text = f'IBClusterHook failed on rank {rank}: {msg}'
    raise _SAME_KIND.get(msg.split(':', 1)[0], DistributedHookError)(text)


def _guarded(compute: Callable[[], object]) -> Tuple[object,
                                                     Optional[Exception]]:
    try:
        return compute(), None
    except Exception as err:  # raised on every rank by raise_on_every_rank
        return None, err


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
        grad_ratio (bool): log ``ib_grad_ratio`` once per epoch (see the
            module docstring). Default: True.
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
                 mi_samples: int = 10000,
                 grad_ratio: bool = True) -> None:
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
        self.grad_ratio = bool(grad_ratio)
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

    def _kmeans_rank0(self, points: Callable[[], torch.Tensor], k: int,
                      iters: int, shape: Tuple[int, int], device,
                      what: str, pass_id: int) -> torch.Tensor:
        """k-means on the points ``points()`` returns on rank 0 (called on
        rank 0 only), then the L2-normalised centroids broadcast to every
        rank. An error on rank 0 is raised on every rank."""

        def compute() -> torch.Tensor:
            data = points()
            if data.shape[0] < k:
                raise ValueError(
                    f'IBClusterHook: {data.shape[0]} {what} on rank 0 but '
                    f'{k} clusters; use more samples or fewer clusters')
            centroids, _ = kmeans(data, k, num_iters=iters,
                                  seed=self.seed + pass_id,
                                  max_init_points=self.max_init_points)
            return l2_normalize(centroids).to(device)

        centroids, error = (_guarded(compute) if dist.get_rank() == 0 else
                            (None, None))
        raise_on_every_rank(error)
        return self._broadcast(centroids, shape, device)

    # --------------------------------------------------------- clusters
    @torch.no_grad()
    def compute_input_clusters(self, runner) -> None:
        """k-means on flattened training images -> head's input centroids."""
        head = self._head(runner)
        device = head.ib_input_centroids.device
        num = 0

        def points() -> torch.Tensor:  # only rank 0's images are clustered
            nonlocal num
            flats = []
            with _preserve_rng():
                for inputs, _ in self._batches(
                        runner, self.num_input_samples, pass_id=0):
                    flats.append(l2_normalize(head.flatten_inputs(inputs)))
            if not flats:
                raise ValueError('IBClusterHook: the train dataloader of '
                                 'rank 0 yielded no images to cluster')
            num = sum(f.shape[0] for f in flats)
            return torch.cat(flats)

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

        def extract() -> None:  # this rank's shard
            nonlocal n_mi
            for inputs, y in self._batches(runner, self.num_feature_samples,
                                           pass_id):
                with self._amp_context(runner, inputs.device.type):
                    f = model.extract_feat(inputs, stage='pre_logits')
                feats.append(l2_normalize(f))
                labels.append(y)
                if n_mi < self.mi_samples and bool(head.ib_input_ready):
                    take = min(self.mi_samples - n_mi, inputs.shape[0])
                    in_flat.append(head.flatten_inputs(inputs[:take]))
                    n_mi += take
            if not feats:
                raise ValueError(
                    f'IBClusterHook: the train dataloader of rank '
                    f'{dist.get_rank()} yielded no images for the refresh')

        try:
            with _preserve_rng():
                _, error = _guarded(extract)
        finally:
            model.train(was_training)
        raise_on_every_rank(error)
        feats, labels = torch.cat(feats), torch.cat(labels)

        k, num_classes = head.num_clusters, head.num_classes
        centroids = self._kmeans_rank0(
            lambda: feats, k, self.output_kmeans_iters,
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

    def log_gradient_ratio(self, runner, data_batch) -> Optional[float]:
        """Measure and log ``ib_grad_ratio`` on ``data_batch`` (see the
        module docstring); None (nothing logged) if the model has no
        ``token_merger`` parameter."""
        model = self._model(runner)
        if not hasattr(model, 'ib_gradient_ratio') or not any(
                'token_merger' in name for name, p in model.named_parameters()
                if p.requires_grad):
            return None
        head = self._head(runner)
        if not (head.ib_active and head.ib_weight > 0):
            # the IB term sends no gradient at all: 0 without measuring
            result = dict(ratio=0.0, ib_norm=0.0, ce_norm=float('nan'))
        else:
            was_training = model.training
            model.eval()
            try:
                with _preserve_rng(), torch.enable_grad():
                    data = model.data_preprocessor(data_batch, False)
                    result = model.ib_gradient_ratio(data['inputs'],
                                                     data['data_samples'])
            finally:
                model.train(was_training)
        if result is None:
            return None
        ratio = float(result['ratio'])
        runner.message_hub.update_scalar('train/ib_grad_ratio', ratio)
        runner.logger.info(
            f'IBClusterHook: ||grad IB|| / ||grad CE|| on the token_merger '
            f'parameters = {ratio:.4g} (IB {result["ib_norm"]:.4g}, CE '
            f'{result["ce_norm"]:.4g}) at epoch {runner.epoch}, iter '
            f'{runner.iter}')
        return ratio

    def before_train_epoch(self, runner) -> None:
        if not self._by_iter(runner):
            self._update(runner, runner.epoch)

    def before_train_iter(self, runner, batch_idx: int,
                          data_batch=None) -> None:
        if self._by_iter(runner):
            self._update(runner, runner.iter)
        if not self.grad_ratio or data_batch is None:
            return
        first = (runner.iter % len(runner.train_dataloader) == 0
                 if self._by_iter(runner) else batch_idx == 0)
        if first:
            self.log_gradient_ratio(runner, data_batch)
