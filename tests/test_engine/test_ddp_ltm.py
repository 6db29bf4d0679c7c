"""DDP with ``find_unused_parameters=False`` (mmengine's default) trains an
LTM model whose last stage is too small to merge: 2 gloo processes on CPU.

LTM-Swin at 64x64 has a 2x2 grid in stage 4, which ratio 0.7 cannot reduce,
so those blocks skip their merge but keep a trainable mask parameter; they
tie it into their output with an exact zero
(:func:`mmltm.models.layers.tie_unused_parameters`). Without the tie DDP
fails in the second iteration ("Expected to have finished reduction in the
prior iteration ..."; checked by hand with ``tie=False``, and in one
process by tests/test_models/test_ltm_mask_parameters.py).

In ``merge_scope='stage'`` the blocks after a stage's merging block run on
the merged grid without their mask modules (stage 3's second block here):
they are tied in the same way.
"""
import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn as nn
import torch.nn.functional as F

from mmltm.engine import close_dist

SIZES = dict(embed_dims=16, depths=(1, 1, 2, 1), num_heads=(1, 2, 2, 4), drop_path_rate=0.)
ITERS = 3


class _Classifier(nn.Module):

    def __init__(self, merge_scope='ffn'):
        super().__init__()
        from mmltm.models.backbones import LTMSwinTransformer
        self.backbone = LTMSwinTransformer(compression_ratio=0.7, out_indices=(3, ),
                                           merge_scope=merge_scope, **SIZES)
        self.head = nn.Linear(self.backbone.num_features[-1], 4)

    def forward(self, x):
        return self.head(self.backbone(x)[-1].mean((2, 3)))


def _train(rank: int, world: int, out_dir: str, tie: bool, merge_scope: str = 'ffn') -> None:
    torch.set_num_threads(1)
    dist.init_process_group('gloo', rank=rank, world_size=world)
    try:
        if not tie:
            from mmltm.models.layers import ltm_block
            ltm_block.tie_unused_parameters = lambda out, module: out
        torch.manual_seed(0)
        model = _Classifier(merge_scope)
        last = [b.token_merger for b in model.backbone.stages[3].blocks]
        merging = [b.token_merger for s in model.backbone.stages[:3] for b in s.blocks]
        assert all(m.is_identity((2, 2)) and any(p.requires_grad for p in m.parameters())
                   for m in last)
        if merge_scope == 'stage':  # stage 3's second block runs on the merged grid
            last.append(merging.pop())
        before = [[p.detach().clone() for p in m.parameters()] for m in last + merging]
        ddp = nn.parallel.DistributedDataParallel(model, find_unused_parameters=False)
        optim = torch.optim.SGD(ddp.parameters(), lr=0.5)
        gen = torch.Generator().manual_seed(100 + rank)  # each rank its own data
        for _ in range(ITERS):
            x = torch.randn(2, 3, 64, 64, generator=gen)
            y = torch.randint(0, 4, (2, ), generator=gen)
            loss = F.cross_entropy(ddp(x), y)
            optim.zero_grad()
            loss.backward()
            optim.step()
        flat = torch.cat([p.detach().flatten() for p in model.parameters()])
        gathered = [torch.empty_like(flat) for _ in range(world)]
        dist.all_gather(gathered, flat)
        if rank == 0:
            torch.save(dict(
                max_diff=float((gathered[0] - gathered[1]).abs().max()),
                # per mask module: did any of its parameters change?
                changed=[any(not torch.equal(p, q) for p, q in zip(m.parameters(), ps))
                         for m, ps in zip(last + merging, before)],
                num_last=len(last)),
                os.path.join(out_dir, 'result.pth'))
    finally:
        # destroys the group and lets gloo's threads finish before exit
        close_dist()


def _spawn(tmp_path, monkeypatch, port: int, tie: bool, merge_scope: str = 'ffn'):
    monkeypatch.setenv('MASTER_ADDR', '127.0.0.1')
    monkeypatch.setenv('MASTER_PORT', str(port))
    mp.spawn(_train, args=(2, str(tmp_path), tie, merge_scope), nprocs=2, join=True)
    return torch.load(tmp_path / 'result.pth')


@pytest.mark.parametrize('merge_scope, idle', [('ffn', 1), ('stage', 2)])
def test_ddp_without_find_unused_parameters_trains_and_stays_in_sync(tmp_path, monkeypatch,
                                                                     free_port, merge_scope,
                                                                     idle):
    result = _spawn(tmp_path, monkeypatch, free_port, tie=True, merge_scope=merge_scope)
    assert result['max_diff'] == 0.0  # every parameter equal on both ranks
    # the non-merging blocks' mask parameters got exactly zero gradient
    # (SGD, no decay): unchanged; the merging blocks' ones were trained
    n = result['num_last']
    assert n == idle and result['changed'][:n] == [False] * n, result
    assert all(result['changed'][n:]), result
