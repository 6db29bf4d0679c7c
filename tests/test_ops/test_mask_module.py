"""The mask modules (mmltm/ops/mask_module.py): the learned per-image LTM
mask (TokenMerger) and the fixed grid (GridTokenMerger)."""
import math

import pytest
import torch
import torch.nn.functional as F

from mmltm.ops import (MAX_STEP, MERGE_MODES, GridTokenMerger, MergeMask, TokenMerger,
                       build_token_merger, check_merge_mode, get_grid_plan,
                       merge_tokens, plan_merge_grid, unmerge_tokens)
from mmltm.ops.mask_module import bounded_step


def column_sums(mask: MergeMask) -> torch.Tensor:
    return mask.dense().sum(1)


def test_ltm_mask_is_a_normalised_hard_times_soft_mask_on_the_grid():
    torch.manual_seed(0)
    merger = TokenMerger(0.5, dims=16)
    z = torch.randn(2, 10 * 12, 16)
    mask = merger(z, (10, 12))
    hh, ww = plan_merge_grid(10, 12, 0.5)
    assert mask.merged_grid == (hh, ww) and mask.num_merged == hh * ww
    assert mask.assign.shape == (2, 120) and (mask.weight > 0).all()
    torch.testing.assert_close(column_sums(mask), torch.ones(2, hh * ww))
    plan = mask.plan
    # anchors never move; every other token joins one of its 9 candidate cells
    assert torch.equal(mask.assign[:, plan.anchor], plan.cell[plan.anchor].expand(2, -1))
    moved = mask.assign[:, plan.movable]
    allowed = (plan.candidates.unsqueeze(0) == moved.unsqueeze(-1)) & plan.candidate_valid
    assert allowed.any(-1).all()
    # merged tokens are G^T Z and unmerging is the one-hot rows of G
    merged = merge_tokens(z, mask)
    torch.testing.assert_close(merged, mask.dense().transpose(1, 2) @ z)
    torch.testing.assert_close(unmerge_tokens(merged, mask), (mask.dense() > 0).float() @ merged)


def test_ltm_assignment_follows_similarity_across_cell_borders():
    # a 2x4 grid merged to 1x2: cells {0,1,4,5} and {2,3,6,7}, anchors 0 and 2
    # (upper-left centre). With the identity projection the features are the
    # centred tokens, so a token that copies the other cell's anchor joins it.
    merger = TokenMerger(0.25, dims=4, feat_dims=4)
    with torch.no_grad():
        merger.proj.copy_(torch.eye(4))
    a, b = torch.tensor([3., 0, 0, 0]), torch.tensor([0., 0, 3, 0])
    z = torch.stack([a, a, b, b, a, a, b, b])[None].repeat(2, 1, 1)
    z[1, 1] = b  # image 2: token 1 looks like the right cell's anchor
    z[1, 6] = a  # and token 6 like the left one's
    mask = merger(z, (2, 4))
    assert mask.merged_grid == (1, 2)
    assert mask.assign[0].tolist() == [0, 0, 1, 1, 0, 0, 1, 1]
    assert mask.assign[1].tolist() == [0, 1, 1, 1, 0, 0, 0, 1]
    torch.testing.assert_close(column_sums(mask), torch.ones(2, 2))


def test_ltm_assignment_depends_on_the_image_at_initialisation():
    torch.manual_seed(1)
    for hw, ratio, C in (((56, 56), 0.7, 96), ((14, 14), 0.78, 384), ((7, 7), 0.7, 768)):
        merger = TokenMerger(ratio, dims=C)
        # smooth random images: neighbouring tokens are correlated, as in a
        # real feature map, so the similarity structure is not pure noise
        z = F.avg_pool2d(torch.randn(2, C, hw[0] + 2, hw[1] + 2), 3, 1)
        z = z.flatten(2).transpose(1, 2)
        mask = merger(z, hw)
        differ = (mask.assign[0] != mask.assign[1]).float().mean().item()
        assert differ >= 0.10, (hw, differ)


def test_ltm_weights_follow_the_closed_form_and_chain_from_the_prior():
    torch.manual_seed(2)
    merger = TokenMerger(0.5, dims=8, init_step=3.0)
    z = torch.randn(2, 6 * 8, 8)
    g1 = merger(z, (6, 8))
    plan = g1.plan
    f = merger.features(z)
    eta = merger.step
    assert eta.item() == pytest.approx(3.0, rel=1e-5)

    def closed_form(q, mask):
        s = torch.linalg.vecdot(f, F.normalize(q, dim=-1).gather(
            1, mask.assign.unsqueeze(-1).expand(-1, -1, f.shape[-1])))
        e = torch.exp(eta * s)
        den = torch.zeros(2, mask.num_merged).scatter_add_(1, mask.assign, e)
        return e / den.gather(1, mask.assign)

    # first block: the representatives are the anchors' features
    torch.testing.assert_close(g1.weight, closed_form(f[:, plan.anchor], g1))
    # chained: the representatives are the merged features under G(l-1)
    z2 = z + 0.5 * torch.randn_like(z)
    g2 = merger(z2, (6, 8), g1)
    f = merger.features(z2)
    q = g1.dense().transpose(1, 2) @ f
    torch.testing.assert_close(g2.weight, closed_form(q, g2))
    # and the assignment is the arg-max over the candidates against those q
    qn = F.normalize(q, dim=-1)
    fm = f[:, plan.movable]
    s = torch.einsum('bmd,bmkd->bmk', fm, qn[:, plan.candidates])
    s = s.masked_fill(~plan.candidate_valid, -2)
    best = plan.candidates.expand(2, -1, -1).gather(2, s.argmax(-1, keepdim=True)).squeeze(-1)
    assert torch.equal(g2.assign[:, plan.movable], best)


def test_ltm_parameters_get_gradients_and_stay_small():
    torch.manual_seed(3)
    merger = TokenMerger(0.6, dims=24)
    assert {n for n, _ in merger.named_parameters()} == {'log_step', 'proj'}
    z = torch.randn(2, 64, 24, requires_grad=True)
    mask, merged = merger.merge(z, (8, 8))
    unmerge_tokens(merged ** 2, mask).sum().backward()
    assert merger.proj.grad.abs().sum() > 0 and merger.log_step.grad.abs() > 0
    # <= 0.1 M mask parameters per model: d C + 1 per block
    for dims, depths in (((96, 192, 384, 768), (2, 2, 6, 2)),       # Swin-T
                         ((128, 256, 512, 1024), (2, 2, 18, 2)),    # Swin-B
                         ((384,), (12,)), ((768,), (12,))):         # ViT-S, ViT-B
        count = sum(p.numel() for C, n in zip(dims, depths)
                    for p in TokenMerger(0.7, dims=C).parameters() for _ in range(n))
        assert 1000 < count <= 100_000, (dims, count)


def test_ratio_one_is_the_identity_with_no_parameters():
    for merger in (TokenMerger(1.0, dims=4), GridTokenMerger(1.0)):
        assert merger.is_identity((7, 9)) and not list(merger.parameters())
        z = torch.randn(1, 63, 4)
        mask = merger(z, (7, 9))
        torch.testing.assert_close(unmerge_tokens(merge_tokens(z, mask), mask), z)


@pytest.mark.parametrize('mode', ['ltm', 'grid'])
def test_prev_for_another_grid_or_batch_is_an_error_naming_both(mode):
    merger = build_token_merger(mode, 0.5, dims=4)
    prev = merger(torch.randn(2, 36, 4), (6, 6))
    with pytest.raises(ValueError, match=r'prev was built for a 6x6 grid merged to 5x4 '
                                         r'with batch 2, but this block has a 6x8 grid'):
        merger(torch.randn(2, 48, 4), (6, 8), prev)
    with pytest.raises(ValueError, match=r'with batch 2, but .* with batch 3'):
        merger(torch.randn(3, 36, 4), (6, 6), prev)
    with pytest.raises(ValueError, match='24 tokens do not fill a 5x5 grid'):
        merger(torch.randn(1, 24, 4), (5, 5))


def test_grid_weights_follow_the_closed_form_and_chain():
    torch.manual_seed(0)
    merger = GridTokenMerger(0.5, init_step=2.0)
    z = torch.randn(2, 10 * 12, 16)
    g1 = merger(z, (10, 12))
    assert torch.equal(g1.assign, get_grid_plan((10, 12), g1.merged_grid).cell)
    torch.testing.assert_close(column_sums(g1), torch.ones(2, g1.num_merged))
    g2 = merger(z, (10, 12), g1)
    # (G4): w ∝ w0 exp(eta cos(z, c)), c = merge under the prior
    c = F.normalize(merge_tokens(z, g1), dim=-1)[:, g1.assign]
    s = (F.normalize(z, dim=-1) * c).sum(-1)
    raw = g1.weight * torch.exp(merger.step * s)
    den = torch.zeros(2, g1.num_merged).index_add_(1, g1.assign, raw)[:, g1.assign]
    torch.testing.assert_close(g2.weight, raw / den)


@pytest.mark.parametrize('mode', ['ltm', 'grid'])
def test_large_steps_are_bounded_smoothly_and_stay_finite(mode):
    merger = build_token_merger(mode, 0.25, dims=8)
    with torch.no_grad():
        merger.log_step.fill_(math.log(1e4))
    assert merger.step.item() == pytest.approx(MAX_STEP, rel=1e-6)
    z = torch.randn(2, 64, 8)
    z[:, 1::2] = -z[:, 0::2]  # neighbours point in opposite directions
    mask = None
    for _ in range(6):
        mask = merger(z, (8, 8), mask)
        assert torch.isfinite(mask.weight).all()
        torch.testing.assert_close(column_sums(mask), torch.ones(2, mask.num_merged))
    # the bound is smooth: a large raw step still has a (small) gradient
    raw = torch.tensor(math.log(40.0), requires_grad=True)
    bounded_step(raw).backward()
    assert 0 < raw.grad.item() < 40.0
    with pytest.raises(ValueError, match=r'init_step=30.0 is not allowed.*\(0, 30.0\)'):
        build_token_merger(mode, 0.5, dims=8, init_step=30.0)


@pytest.mark.parametrize('mode', ['ltm', 'grid'])
def test_autocast_gives_an_fp32_mask_and_keeps_the_token_dtype(mode):
    merger = build_token_merger(mode, 0.5, dims=8)
    z = torch.randn(2, 36, 8).to(torch.bfloat16)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        mask, merged = merger.merge(z, (6, 6))
    assert mask.weight.dtype == torch.float32 and merged.dtype == torch.bfloat16
    ref, ref_merged = merger.merge(z.float(), (6, 6))
    assert torch.equal(mask.assign, ref.assign)
    torch.testing.assert_close(merged.float(), ref_merged, atol=0.05, rtol=0.02)


def test_factory_checks_modes_and_arguments():
    assert MERGE_MODES == ('ltm', 'grid', 'tome')
    assert isinstance(build_token_merger('ltm', 0.7, dims=8), TokenMerger)
    grid = build_token_merger('grid', 0.7, dims=8, init_step=2.0)
    assert isinstance(grid, GridTokenMerger) and grid.step.item() == pytest.approx(2.0)
    with pytest.raises(ValueError, match="merge_mode='ltm' needs dims"):
        build_token_merger('ltm', 0.7)
    with pytest.raises(TypeError, match='window_size'):
        build_token_merger('grid', 0.7, window_size=7)
    with pytest.raises(ValueError, match=r"merge_mode='bipartite'.*'ltm', 'grid', 'tome'"):
        check_merge_mode('bipartite')
    with pytest.raises(ValueError, match=r'compression_ratio=.*\(0, 1\]'):
        build_token_merger('ltm', 1.5, dims=8)
    with pytest.raises(ValueError, match='dims=0 is not allowed'):
        TokenMerger(0.5, dims=0)
