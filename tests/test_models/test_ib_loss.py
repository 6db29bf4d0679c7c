"""The variational IB bound of LTM: hand-computed values, the guarantees it
actually has, k-means/Q utilities, the IB head and gradients into LTM-Swin."""
import math

import pytest
import torch

from mmltm.models.losses import (VariationalIBLoss, accumulate_q,
                                 cluster_scores, finalize_q, flatten_images,
                                 kmeans, l2_normalize, mutual_information)


# ---------------------------------------------------------------- the bound
def test_bound_equals_hand_computed_value():
    """K = K_in = C = 2, unit vectors on the axes: every number by hand.

    phi(e1 | {e1, e2}) = softmax(-0, -2) = (s, 1 - s), s = 1 / (1 + e^-2);
    a vector at 45 degrees is equidistant from e1 and e2: phi = (1/2, 1/2).
    """
    s = 1.0 / (1.0 + math.exp(-2.0))
    feat = torch.tensor([[3.0, 0.0], [0.0, 0.5]])  # normalised to e1, e2
    out_c = torch.eye(2)
    q = torch.tensor([[0.75, 0.5], [0.25, 0.5]])  # Q[a, y], columns sum to 1
    y = torch.tensor([0, 1])
    x = torch.tensor([[2.0, 0.0], [1.0, 1.0]])  # e1 and the diagonal
    in_c = torch.eye(2)

    # label term: -sum_a phi_out(i,a) log Q[a, y_i]
    label_1 = -(s * math.log(0.75) + (1 - s) * math.log(0.25))
    label_2 = -((1 - s) * math.log(0.5) + s * math.log(0.5))  # = log 2
    # input term: sum_{a,b} phi_out(i,a) phi_in(i,b) log phi_in(i,b)
    input_1 = s * math.log(s) + (1 - s) * math.log(1 - s)
    input_2 = math.log(0.5)
    expected = ((input_1 + label_1) + (input_2 + label_2)) / 2
    assert expected == pytest.approx(0.026653, abs=1e-6)  # written out

    loss = VariationalIBLoss(beta=1.0)
    value = loss(feat, y, out_c, q, x, in_c)
    assert value.dtype == torch.float32
    assert value.item() == pytest.approx(expected, rel=1e-5)
    inp, lab = loss.bound_terms(feat, y, out_c, q, x, in_c)
    torch.testing.assert_close(inp, torch.tensor([input_1, input_2]))
    torch.testing.assert_close(lab, torch.tensor([label_1, label_2]))
    # without the images the input term (a constant of the network) is 0
    assert loss(feat, y, out_c, q).item() == pytest.approx(
        (label_1 + label_2) / 2, rel=1e-5)


def test_beta_sharpens_scores():
    feat, c = torch.tensor([[1.0, 0.0]]), torch.eye(2)
    soft = cluster_scores(feat, c, beta=1.0)[0, 0]
    sharp = cluster_scores(feat, c, beta=5.0)[0, 0]
    assert soft.item() == pytest.approx(1 / (1 + math.exp(-2)))
    assert sharp.item() == pytest.approx(1 / (1 + math.exp(-10)))


def _random_setup(n=64, d=16, k=8, k_in=6, c=5, d_in=3 * 8 * 8, seed=0):
    g = torch.Generator().manual_seed(seed)
    feat = torch.randn(n, d, generator=g)
    y = torch.randint(c, (n, ), generator=g)
    out_c = l2_normalize(torch.randn(k, d, generator=g))
    in_c = l2_normalize(torch.randn(k_in, d_in, generator=g))
    x = torch.randn(n, d_in, generator=g)
    return feat, y, out_c, in_c, x, c


def test_what_is_nonnegative():
    """The label term (a cross-entropy against Q <= 1) is >= 0 for any Q;
    the input term is -H(phi_in) in [-log K_in, 0]; so the bound is only
    >= -log K_in, and can be negative."""
    feat, y, out_c, in_c, x, c = _random_setup()
    loss = VariationalIBLoss()
    for seed in range(3):
        q = torch.rand(out_c.shape[0], c,
                       generator=torch.Generator().manual_seed(seed))
        q = q / q.sum(0, keepdim=True)
        inp, lab = loss.bound_terms(feat, y, out_c, q, x, in_c)
        assert (lab >= 0).all()
        assert (inp <= 1e-6).all()
        assert (inp >= -math.log(in_c.shape[0]) - 1e-5).all()
        assert ((inp + lab) >= -math.log(in_c.shape[0]) - 1e-5).all()
    # and the bound does go below zero: a confident Q and spread inputs
    feat = torch.tensor([[1.0, 0.0]])
    q = torch.tensor([[1.0], [1.0]])  # log Q = 0: label term 0
    x = torch.tensor([[1.0, 1.0]])
    assert loss(feat, torch.tensor([0]), torch.eye(2), q, x,
                torch.eye(2)).item() == pytest.approx(-math.log(2))


def test_consistent_q_gives_conditional_entropy_and_beats_misaligned_q():
    """With Q built from the same features and centroids (the hook), the
    mean label term equals H(A|Y) >= 0 of the soft joint; pairing the new
    centroids with a Q of permuted cluster indices (the authors' bug)
    gives a larger value (Gibbs' inequality)."""
    feat, y, out_c, _, _, c = _random_setup(n=200, k=8)
    phi = cluster_scores(feat, out_c)
    num, cnt = accumulate_q(phi, y, c)
    q = finalize_q(num, cnt)
    loss = VariationalIBLoss()
    _, lab = loss.bound_terms(feat, y, out_c, q)
    p_y = cnt / cnt.sum()
    h_a_given_y = -(p_y[None] * q * q.log()).sum()
    assert lab.mean().item() == pytest.approx(h_a_given_y.item(), rel=1e-5)
    perm = torch.roll(torch.arange(out_c.shape[0]), 1)
    _, lab_bad = loss.bound_terms(feat, y, out_c, q[perm])
    assert lab_bad.mean() > lab.mean()


def test_soft_labels_are_label_weights():
    feat, y, out_c, in_c, x, c = _random_setup(n=4)
    q = finalize_q(*accumulate_q(cluster_scores(feat, out_c), y, c))
    loss = VariationalIBLoss()
    hard = loss.bound_terms(feat, y, out_c, q, x, in_c)[1]
    onehot = torch.nn.functional.one_hot(y, c).float()
    torch.testing.assert_close(
        loss.bound_terms(feat, onehot, out_c, q, x, in_c)[1], hard)
    y2 = (y + 1) % c
    lam = 0.3
    mixed = lam * onehot + (1 - lam) * torch.nn.functional.one_hot(y2, c)
    other = loss.bound_terms(feat, y2, out_c, q)[1]
    torch.testing.assert_close(
        loss.bound_terms(feat, mixed, out_c, q)[1],
        lam * hard + (1 - lam) * other)


def test_fp32_under_autocast_and_gradient_only_through_features():
    feat, y, out_c, in_c, x, c = _random_setup(n=8)
    q = finalize_q(*accumulate_q(cluster_scores(feat, out_c), y, c))
    feat = feat.clone().requires_grad_(True)
    x = x.clone().requires_grad_(True)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        value = VariationalIBLoss()(feat.bfloat16(), y, out_c, q, x, in_c)
    assert value.dtype == torch.float32
    value.backward()
    assert feat.grad.abs().sum() > 0
    # phi_out sums to one, so the input term carries no gradient to the
    # network; the images themselves do get one (they are not trained)
    assert x.grad is not None


def test_bad_arguments():
    with pytest.raises(ValueError, match='beta=0'):
        VariationalIBLoss(beta=0)
    feat, y, out_c, _, _, c = _random_setup(n=4)
    with pytest.raises(ValueError, match=r'q \(3, 5\) must be \(K, C\)'):
        VariationalIBLoss()(feat, y, out_c, torch.ones(3, c))
    with pytest.raises(ValueError, match=r'labels must be in \[0, 5\)'):
        VariationalIBLoss()(feat, y + 10, out_c, torch.ones(8, c) / 8)
    with pytest.raises(ValueError, match='needs input_centroids'):
        VariationalIBLoss()(feat, y, out_c, torch.ones(8, c) / 8,
                            torch.randn(4, 3))


# ------------------------------------------------------- clustering utils
def test_kmeans_recovers_separated_clusters():
    g = torch.Generator().manual_seed(0)
    centres = 10 * torch.eye(6)[:4]
    x = torch.cat([c + 0.3 * torch.randn(30, 6, generator=g) for c in centres])
    cents, assign = kmeans(x, 4, num_iters=20, seed=3)
    assert cents.shape == (4, 6)
    # each true group is exactly one cluster
    groups = assign.view(4, 30)
    assert all(len(set(row.tolist())) == 1 for row in groups)
    assert len(set(groups[:, 0].tolist())) == 4
    # deterministic for a seed
    torch.testing.assert_close(kmeans(x, 4, num_iters=20, seed=3)[0], cents)


def test_kmeans_handles_duplicates_subsampled_init_and_bad_k():
    x = torch.zeros(10, 3)
    x[5:] = 1.0
    cents, assign = kmeans(x, 4, num_iters=5, max_init_points=8)
    assert cents.shape == (4, 3) and torch.isfinite(cents).all()
    with pytest.raises(ValueError, match=r'num_clusters=11 must be in \[1, N=10\]'):
        kmeans(x, 11)


def test_q_columns_sum_to_one_and_unseen_class_is_uniform():
    phi = torch.softmax(torch.randn(10, 4), 1)
    y = torch.tensor([0, 0, 1, 1, 1, 2, 2, 2, 2, 0])  # class 3 never seen
    num, cnt = accumulate_q(phi, y, 4)
    q = finalize_q(num, cnt)
    torch.testing.assert_close(q.sum(0), torch.ones(4))
    torch.testing.assert_close(q[:, 3], torch.full((4, ), 0.25))
    torch.testing.assert_close(q[:, 0], phi[[0, 1, 9]].mean(0))


def test_mutual_information_and_flatten():
    assert mutual_information(torch.eye(3)) == pytest.approx(math.log(3))
    assert mutual_information(torch.ones(3, 4)) == pytest.approx(0.0, abs=1e-9)
    img = torch.arange(2 * 3 * 4 * 4, dtype=torch.float).view(2, 3, 4, 4)
    flat = flatten_images(img, 2)
    assert flat.shape == (2, 12)
    assert flat[0, 0].item() == pytest.approx(img[0, 0, :2, :2].mean().item())
    with pytest.raises(ValueError, match='must be \\(B, C, H, W\\)'):
        flatten_images(img[0], 2)


# ---------------------------------------------------------------- the head
def _toy_classifier(compression_ratio=0.7, ib_weight=0.1):
    from mmltm.registry import MODELS
    cfg = dict(
        type='IBImageClassifier',
        backbone=dict(
            type='LTMSwinTransformer', embed_dims=16, depths=(1, 1, 2, 1),
            num_heads=(1, 2, 2, 4), out_indices=(3, ), drop_path_rate=0.,
            compression_ratio=compression_ratio),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(
            type='IBLinearClsHead', num_classes=3, in_channels=128,
            ib_weight=ib_weight, num_clusters=4, num_input_clusters=2,
            input_size=4,
            loss=dict(type='LabelSmoothLoss', label_smooth_val=0.1,
                      mode='original')))
    from mmengine.registry import init_default_scope
    init_default_scope('mmpretrain')
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    model.init_weights()
    return model


def _samples(labels, scores=None):
    from mmpretrain.structures import DataSample
    out = []
    for i, y in enumerate(labels):
        s = DataSample().set_gt_label(y)
        if scores is not None:
            s.set_gt_score(scores[i])
        out.append(s)
    return out


def _set_tables(head, seed=0):
    g = torch.Generator().manual_seed(seed)
    head.set_input_clusters(torch.randn(2, 3 * 4 * 4, generator=g))
    q = torch.softmax(torch.randn(4, 3, generator=g), 0)
    head.set_output_clusters(torch.randn(4, 128, generator=g), q)


def test_head_losses_warmup_and_gradients_reach_backbone_and_mask_module():
    model = _toy_classifier()
    head = model.head
    # 128 px: the last stage's 4x4 map still merges (at 56 px its 2x2 map
    # cannot, and that block's merger gets no gradient)
    x = torch.randn(2, 3, 128, 128)
    samples = _samples([0, 2])
    # warm-up: CE only, loss_ib is a zero and no bound is reported
    losses = model.loss(x, samples)
    assert set(losses) == {'loss_cls', 'loss_ib'}
    assert losses['loss_ib'].item() == 0.0
    _set_tables(head)
    head.ib_active = True
    losses = model.loss(x, samples)
    assert set(losses) == {'loss_cls', 'loss_ib', 'ib_bound'}
    assert losses['loss_ib'].item() == pytest.approx(
        0.1 * losses['ib_bound'].item(), rel=1e-5)
    # the bound seen by the head includes the input term (IBImageClassifier)
    feat = model.extract_feat(x, stage='pre_logits')
    expected = head.ib_loss(feat, torch.tensor([0, 2]),
                            head.ib_output_centroids, head.ib_q,
                            head.flatten_inputs(x), head.ib_input_centroids)
    assert losses['ib_bound'].item() == pytest.approx(expected.item(),
                                                      rel=1e-5)
    # the IB term alone sends gradients into the backbone and the mergers
    model.zero_grad()
    losses['loss_ib'].backward()
    bb = model.backbone
    assert bb.patch_embed.projection.weight.grad.abs().sum() > 0
    mask_params = [(n, p) for n, p in bb.named_parameters()
                   if 'token_merger' in n and p.requires_grad]
    assert mask_params
    # every trainable mask-module parameter gets a non-zero IB gradient
    without = [n for n, p in mask_params
               if p.grad is None or not p.grad.abs().sum() > 0]
    assert not without, without
    assert model.head.fc.weight.grad is None  # the bound skips the classifier


def test_gradient_ratio_of_ib_and_ce_on_the_mask_module():
    """||grad IB|| / ||grad CE|| on the token_merger parameters: a finite
    positive number with the IB term on, computed from the two gradients
    as one would by hand; exactly 0 with ib_weight=0."""
    model = _toy_classifier()
    _set_tables(model.head)
    model.head.ib_active = True
    torch.manual_seed(1)
    x = torch.randn(2, 3, 56, 56)
    samples = _samples([0, 2])
    result = model.ib_gradient_ratio(x, samples)
    params = [p for n, p in model.named_parameters() if 'token_merger' in n]
    assert result['num_params'] == len(params) > 0
    assert 0 < result['ratio'] < float('inf')
    # the same by hand, with .backward()
    norms = {}
    for key in ('loss_ib', 'loss_cls'):
        model.zero_grad()
        model.loss(x, samples)[key].backward()
        norms[key] = torch.sqrt(sum(p.grad.pow(2).sum() for p in params
                                    if p.grad is not None)).item()
    assert result['ib_norm'] == pytest.approx(norms['loss_ib'], rel=1e-4)
    assert result['ce_norm'] == pytest.approx(norms['loss_cls'], rel=1e-4)
    assert result['ratio'] == pytest.approx(
        norms['loss_ib'] / norms['loss_cls'], rel=1e-4)
    # .grad fields are left alone by the measurement itself
    model.zero_grad()
    model.ib_gradient_ratio(x, samples)
    assert all(p.grad is None for p in params)

    off = _toy_classifier(ib_weight=0.0)
    _set_tables(off.head)
    off.head.ib_active = True
    result = off.ib_gradient_ratio(x, samples)
    assert result['ratio'] == 0.0 and result['ib_norm'] == 0.0
    assert result['ce_norm'] > 0
    # no mask module: nothing to measure
    assert model.ib_gradient_ratio(x, samples, name_filter='no_such') is None


def test_head_soft_labels_and_ib_weight_zero():
    model = _toy_classifier(ib_weight=0.0)
    _set_tables(model.head)
    model.head.ib_active = True
    x = torch.randn(2, 3, 56, 56)
    scores = torch.tensor([[0.7, 0.3, 0.0], [0.0, 0.4, 0.6]])
    losses = model.loss(x, _samples([0, 2], scores))
    assert losses['loss_ib'].item() == 0.0 and not losses['loss_ib'].requires_grad
    feat = model.extract_feat(x, stage='pre_logits')
    expected = model.head.ib_loss(feat, scores, model.head.ib_output_centroids,
                                  model.head.ib_q, model.head.flatten_inputs(x),
                                  model.head.ib_input_centroids)
    assert losses['ib_bound'].item() == pytest.approx(expected.item(), rel=1e-5)


def test_head_tables_are_checkpointed_buffers_and_checked():
    model = _toy_classifier()
    _set_tables(model.head)
    state = model.state_dict()
    for key in ('ib_input_centroids', 'ib_output_centroids', 'ib_q',
                'ib_input_ready', 'ib_output_ready'):
        assert f'head.{key}' in state
    other = _toy_classifier()
    assert not bool(other.head.ib_output_ready)
    other.load_state_dict(state)
    assert bool(other.head.ib_output_ready)
    torch.testing.assert_close(other.head.ib_q, model.head.ib_q)
    # centroids are stored unit-norm
    torch.testing.assert_close(model.head.ib_output_centroids.norm(dim=1),
                               torch.ones(4))
    with pytest.raises(ValueError, match=r'Q must have shape \(4, 3\)'):
        model.head.set_output_clusters(torch.randn(4, 128), torch.ones(3, 3))
    other.head.ib_output_ready.fill_(False)
    other.head.ib_active = True
    with pytest.raises(RuntimeError, match='add IBClusterHook'):
        other.loss(torch.randn(1, 3, 56, 56), _samples([1]))


def test_head_rejects_bad_arguments():
    from mmltm.models.heads import IBLinearClsHead
    with pytest.raises(ValueError, match='ib_weight=-1'):
        IBLinearClsHead(num_classes=3, in_channels=8, ib_weight=-1)
    with pytest.raises(ValueError, match='num_clusters=0'):
        IBLinearClsHead(num_classes=3, in_channels=8, num_clusters=0)
    with pytest.raises(TypeError, match='ib_loss must be'):
        IBLinearClsHead(num_classes=3, in_channels=8, ib_loss='ib')
