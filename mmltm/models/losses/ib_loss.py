r"""The variational information-bottleneck (IB) bound of LTM, and its clustering.

What the authors ran (``LabelSmoothingCrossEntropy_IB`` / ``get_IB_Loss`` and
the k-means/Q code of ``train.py`` in github.com/Statistical-Deep-Learning/LTM;
see ``ltm_paper.md`` section 2) is re-implemented here in pure PyTorch:

Soft cluster scores (``beta = 1``, centroids ``c_k`` L2-normalised)::

    phi_k(v) = softmax_k( -beta * || v / ||v|| - c_k ||^2 )

``phi_in(x_i)`` scores the (flattened) input image against K_in *input*
clusters (k-means on images, computed once before training);
``phi_out(f_i)`` scores the pooled pre-classifier feature against K *output*
clusters (k-means on features, refreshed during training). ``Q`` (K x C) is
the average output-cluster assignment of every class::

    Q[a, y] = sum_{i: y_i = y} phi_out(f_i)_a / #{i: y_i = y}      (~ P(a | y))

Per sample, the bound is (``get_IB_Loss``)::

    IBB_i = sum_{a,b} phi_out(i,a) phi_in(i,b) log phi_in(i,b)       (input term)
          - sum_{a,y} phi_out(i,a) w_i[y] log Q[a, y]                  (label term)

with ``w_i`` the one-hot label of sample ``i`` in the authors' code.

What is non-negative, precisely: since ``sum_a phi_out(i,a) = 1`` the input
term equals ``-H(phi_in(x_i))``, which lies in ``[-log K_in, 0]`` and does not
depend on the network (input clusters are fixed); all gradient flows through
the label term, a cross-entropy of ``Q`` under ``phi_out`` and therefore
``>= 0`` (every ``Q[a, y] <= 1``). The bound itself is *not* non-negative; it
satisfies ``IBB_i >= -log K_in``. When ``Q`` is built from the same features
and centroids it is evaluated on (what :class:`IBClusterHook` guarantees),
the mean label term over that set equals the conditional entropy
``H(A | Y) >= 0`` of the soft joint, and by Gibbs' inequality no other
``Q`` (e.g. one whose cluster indices no longer match the centroids, the
authors' bug) gives a smaller value.

Decisions (ours, documented):
  * Soft labels (mixup / cutmix): the label term takes the expectation over
    the label distribution, ``w_i = gt_score_i`` (the mixed one-hot vector,
    before label smoothing). For hard labels this is exactly the authors'
    formula. ``Q`` is always estimated from hard labels on un-mixed batches.
  * Classes absent from the pass that builds ``Q`` get a uniform column
    ``1 / K``; ``log Q`` is clamped at ``eps``.
  * Input images are average-pooled to ``input_size x input_size`` before
    flattening (the authors flatten full 256x256 images, 196,608 dims) so that
    k-means with K = 1000 stays affordable; the same pooling is used for the
    clusters and for the loss.
  * k-means runs on the L2-normalised vectors (the space ``phi`` is computed
    in) with k-means++ initialisation and Lloyd iterations, no faiss; the
    centroids are L2-normalised afterwards, as in the authors' code.
  * Everything is computed in float32, also under autocast (the authors'
    code ran the softmax inside AMP).
"""
import math
from typing import Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from mmltm.registry import register_model


def _fp32(x: torch.Tensor) -> torch.Tensor:
    return x.float() if x.dtype != torch.float32 else x


def l2_normalize(x: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Rows of ``x`` scaled to unit L2 norm (float32)."""
    return F.normalize(_fp32(x), p=2, dim=-1, eps=eps)


def squared_distances(x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """``||x_i - c_k||^2`` for every pair, (N, D) x (K, D) -> (N, K), >= 0."""
    x, c = _fp32(x), _fp32(c)
    d = (x * x).sum(1, keepdim=True) - 2.0 * x @ c.t() + (c * c).sum(1)[None]
    return d.clamp_min_(0.0)


def flatten_images(images: torch.Tensor, size: int) -> torch.Tensor:
    """Average-pool a ``(B, C, H, W)`` batch to ``size x size`` and flatten it
    to ``(B, C * size * size)`` float32 vectors (the IB's "input" X)."""
    if images.dim() != 4:
        raise ValueError(f'images must be (B, C, H, W), got shape '
                         f'{tuple(images.shape)}')
    if size <= 0:
        raise ValueError(f'size={size} must be a positive integer')
    x = _fp32(images)
    if x.shape[-2:] != (size, size):
        x = F.adaptive_avg_pool2d(x, size)
    return x.flatten(1)


def cluster_scores(x: torch.Tensor, centroids: torch.Tensor,
                   beta: float = 1.0, log: bool = False) -> torch.Tensor:
    """Soft cluster assignment ``phi`` (the authors' ``get_clust_score``).

    Args:
        x (Tensor): ``(N, D)`` vectors; they are L2-normalised here.
        centroids (Tensor): ``(K, D)`` centroids (L2-normalised by the
            callers, as in the authors' code).
        beta (float): inverse temperature. Default: 1.0.
        log (bool): return ``log phi`` instead of ``phi``.

    Returns:
        Tensor: ``(N, K)`` float32 rows on the simplex (or their logs).
    """
    if x.dim() != 2 or centroids.dim() != 2 or x.shape[1] != centroids.shape[1]:
        raise ValueError(f'x {tuple(x.shape)} and centroids '
                         f'{tuple(centroids.shape)} must be (N, D) and (K, D)')
    with torch.autocast(device_type=x.device.type, enabled=False):
        logits = -float(beta) * squared_distances(l2_normalize(x), centroids)
        return logits.log_softmax(1) if log else logits.softmax(1)


def labels_to_weights(target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Hard labels ``(N,)`` -> one-hot ``(N, C)``; soft ``(N, C)`` pass through."""
    if target.dim() == 1:
        if target.numel() and (int(target.min()) < 0 or
                               int(target.max()) >= num_classes):
            raise ValueError(f'labels must be in [0, {num_classes}), got '
                             f'[{int(target.min())}, {int(target.max())}]')
        return F.one_hot(target.long(), num_classes).float()
    if target.dim() == 2 and target.shape[1] == num_classes:
        return _fp32(target)
    raise ValueError(f'target must be (N,) labels or (N, {num_classes}) '
                     f'scores, got shape {tuple(target.shape)}')


def accumulate_q(phi_out: torch.Tensor, target: torch.Tensor,
                 num_classes: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Sufficient statistics of Q for one batch: ``(phi^T W, W.sum(0))``,
    ``(K, C)`` and ``(C,)``. Sum them over batches (and ranks), then call
    :func:`finalize_q`."""
    w = labels_to_weights(target, num_classes).to(phi_out.device)
    return _fp32(phi_out).t() @ w, w.sum(0)


def finalize_q(numerator: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """``Q[a, y] = numerator[a, y] / counts[y]``; a class never seen gets
    the uniform column ``1 / K``. Every column sums to 1 (phi rows do)."""
    num_clusters = numerator.shape[0]
    q = numerator / counts.clamp_min(1e-12)[None]
    seen = counts > 0
    return torch.where(seen[None], q, torch.full_like(q, 1.0 / num_clusters))


def mutual_information(joint: torch.Tensor, eps: float = 1e-12) -> float:
    """``I(A; B)`` in nats of a (possibly unnormalised) joint table."""
    p = _fp32(joint).double()
    p = p / p.sum().clamp_min(eps)
    pa, pb = p.sum(1, keepdim=True), p.sum(0, keepdim=True)
    nz = p > 0
    return float((p[nz] * (p[nz].log() - (pa * pb).expand_as(p)[nz].log())).sum())


@torch.no_grad()
def kmeans(x: torch.Tensor,
           num_clusters: int,
           num_iters: int = 20,
           seed: int = 0,
           max_init_points: Optional[int] = None,
           chunk_size: int = 16384) -> Tuple[torch.Tensor, torch.Tensor]:
    """Euclidean k-means with k-means++ initialisation (batched torch).

    Args:
        x (Tensor): ``(N, D)`` points, N >= ``num_clusters``.
        num_clusters (int): K.
        num_iters (int): Lloyd iterations at most (stops early when no point
            changes cluster). Default: 20.
        seed (int): seed of the k-means++ sampling. Default: 0.
        max_init_points (int, optional): run k-means++ on a random subset of
            this many points (the initialisation is O(N K D)). Default: all.
        chunk_size (int): points per distance block, bounds the memory of
            the N x K distance matrix. Default: 16384.

    Returns:
        tuple[Tensor, Tensor]: centroids ``(K, D)`` float32 and the
        assignment ``(N,)`` of every point.
    """
    if x.dim() != 2:
        raise ValueError(f'x must be (N, D), got shape {tuple(x.shape)}')
    n = x.shape[0]
    if not 1 <= num_clusters <= n:
        raise ValueError(f'num_clusters={num_clusters} must be in [1, N={n}] '
                         '(k-means needs at least as many points as clusters)')
    if num_iters < 0:
        raise ValueError(f'num_iters={num_iters} must be >= 0')
    x = _fp32(x)
    gen = torch.Generator(device=x.device)
    gen.manual_seed(int(seed))

    def nearest(points: torch.Tensor, cents: torch.Tensor):
        dist, idx = [], []
        for start in range(0, points.shape[0], chunk_size):
            d = squared_distances(points[start:start + chunk_size], cents)
            m = d.min(1)
            dist.append(m.values)
            idx.append(m.indices)
        return torch.cat(dist), torch.cat(idx)

    # k-means++ (Arthur & Vassilvitskii): next centre drawn with P ~ D(x)^2
    pool = x
    if max_init_points is not None and n > max_init_points >= num_clusters:
        pool = x[torch.randperm(n, generator=gen, device=x.device)[:max_init_points]]
    first = torch.randint(pool.shape[0], (1,), generator=gen, device=x.device)
    centroids = [pool[first]]
    d2 = squared_distances(pool, centroids[0]).squeeze(1)
    for _ in range(1, num_clusters):
        total = d2.sum()
        if total > 0:
            nxt = torch.multinomial(d2 / total, 1, generator=gen)
        else:  # all remaining points coincide with a centre: pick any
            nxt = torch.randint(pool.shape[0], (1,), generator=gen,
                                device=x.device)
        centroids.append(pool[nxt])
        d2 = torch.minimum(d2, squared_distances(pool, pool[nxt]).squeeze(1))
    centroids = torch.cat(centroids).clone()

    dist, assign = nearest(x, centroids)
    for _ in range(num_iters):
        counts = torch.bincount(assign, minlength=num_clusters).float()
        sums = torch.zeros_like(centroids).index_add_(0, assign, x)
        empty = counts == 0
        centroids = torch.where(empty[:, None], centroids,
                                sums / counts.clamp_min(1)[:, None])
        if empty.any():
            # re-seed empty clusters with the points worst served so far
            far = dist.topk(int(empty.sum())).indices
            centroids[empty] = x[far]
        dist, new_assign = nearest(x, centroids)
        converged = bool((new_assign == assign).all()) and not empty.any()
        assign = new_assign
        if converged:
            break
    return centroids, assign


@register_model()
class VariationalIBLoss(nn.Module):
    """The variational IB upper bound of LTM (the authors' ``get_IB_Loss``).

    See the module docstring for the formula and what it guarantees. The
    module holds no state: the cluster tables are passed in (they live as
    buffers of :class:`IBLinearClsHead`, refreshed by ``IBClusterHook``).

    Args:
        beta (float): inverse temperature of the soft cluster scores.
            Default: 1.0 (the authors' value).
        eps (float): floor of ``Q`` inside the log. Default: 1e-12.
    """

    def __init__(self, beta: float = 1.0, eps: float = 1e-12) -> None:
        super().__init__()
        if not (beta > 0 and math.isfinite(beta)):
            raise ValueError(f'beta={beta!r} must be a positive finite float')
        if not eps > 0:
            raise ValueError(f'eps={eps!r} must be > 0')
        self.beta = float(beta)
        self.eps = float(eps)

    def extra_repr(self) -> str:
        return f'beta={self.beta}, eps={self.eps}'

    def bound_terms(
        self,
        feat: torch.Tensor,
        target: torch.Tensor,
        output_centroids: torch.Tensor,
        q: torch.Tensor,
        input_flat: Optional[torch.Tensor] = None,
        input_centroids: Optional[torch.Tensor] = None,
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Per-sample ``(input_term, label_term)``, each ``(N,)`` float32.

        Args:
            feat (Tensor): ``(N, D)`` pooled pre-classifier features.
            target (Tensor): ``(N,)`` class indices or ``(N, C)`` label
                weights (soft labels from mixup/cutmix).
            output_centroids (Tensor): ``(K, D)`` output clusters.
            q (Tensor): ``(K, C)`` table, columns on the simplex.
            input_flat (Tensor, optional): ``(N, D_in)`` flattened inputs
                (:func:`flatten_images`). Without it the input term is 0:
                it is a constant of the network, so gradients are unchanged.
            input_centroids (Tensor, optional): ``(K_in, D_in)``.
        """
        if q.dim() != 2 or q.shape[0] != output_centroids.shape[0]:
            raise ValueError(f'q {tuple(q.shape)} must be (K, C) with K = '
                             f'{output_centroids.shape[0]} output clusters')
        phi_out = cluster_scores(feat, output_centroids, self.beta)
        with torch.autocast(device_type=feat.device.type, enabled=False):
            w = labels_to_weights(target, q.shape[1]).to(feat.device)
            log_q = _fp32(q).clamp_min(self.eps).log()
            # - sum_a phi(i,a) sum_y w[i,y] log Q[a,y]
            label_term = -((phi_out @ log_q) * w).sum(1)
            if input_flat is None:
                input_term = label_term.new_zeros(label_term.shape)
            else:
                if input_centroids is None:
                    raise ValueError('input_flat needs input_centroids')
                log_phi_in = cluster_scores(input_flat, input_centroids,
                                            self.beta, log=True)
                neg_entropy = (log_phi_in.exp() * log_phi_in).sum(1)
                # sum_{a,b} phi_out(i,a) phi_in(i,b) log phi_in(i,b)
                input_term = phi_out.sum(1) * neg_entropy
        return input_term, label_term

    def forward(self,
                feat: torch.Tensor,
                target: torch.Tensor,
                output_centroids: torch.Tensor,
                q: torch.Tensor,
                input_flat: Optional[torch.Tensor] = None,
                input_centroids: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Batch mean of the bound ``IBB_i`` (scalar, float32); arguments as
        in :meth:`bound_terms`."""
        input_term, label_term = self.bound_terms(
            feat, target, output_centroids, q, input_flat, input_centroids)
        return (input_term + label_term).mean()
