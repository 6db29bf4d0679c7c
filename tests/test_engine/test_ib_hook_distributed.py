"""IBClusterHook in a 2-process gloo group: an error on one rank is raised
on every rank (seconds), instead of the other ranks hanging in a broadcast
until the process-group timeout."""
import datetime
import os
import traceback

import pytest
import torch
import torch.distributed as torch_dist
import torch.multiprocessing as mp

from mmltm.engine import close_dist

#: the process-group timeout: a hang would end in a gloo timeout error
#: after this long, which the assertions below tell from the hook's error
TIMEOUT_S = 20


def _outcome(fn) -> str:
    try:
        fn()
    except Exception as err:  # recorded for the parent process
        return f'{type(err).__name__}|{isinstance(err, ValueError)}|{err}'
    return 'ok'


def _worker(rank: int, port: int, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    torch_dist.init_process_group(
        'gloo', rank=rank, world_size=2,
        timeout=datetime.timedelta(seconds=TIMEOUT_S))
    try:
        from mmltm.engine.hooks import IBClusterHook
        from mmltm.engine.hooks.ib_cluster_hook import raise_on_every_rank
        hook = IBClusterHook()
        results = []
        # 1) rank 0 has 3 points for 4 clusters: k-means refuses on rank 0
        points = torch.randn(3, 8)
        results.append(_outcome(lambda: hook._kmeans_rank0(
            lambda: points, 4, 5, (4, 8), 'cpu', 'images', 0)))
        # 2) rank 1 fails in its own (local) part, rank 0 does not
        error = TypeError('bad batch on rank 1') if rank == 1 else None
        results.append(_outcome(lambda: raise_on_every_rank(error)))
        # 3) and the group still works afterwards: rank 0's centroids
        # reach every rank
        torch.manual_seed(rank)
        centroids = hook._kmeans_rank0(lambda: torch.randn(16, 8), 4, 5,
                                       (4, 8), 'cpu', 'images', 0)
        results.append(f'ok|{centroids.sum().item():.6f}')
    except Exception:  # pragma: no cover - reported by the parent
        results = ['crash|' + traceback.format_exc()]
    finally:
        # destroys the group and lets gloo's threads finish before exit
        close_dist()
    with open(os.path.join(out_dir, f'rank{rank}.txt'), 'w') as handle:
        handle.write('\n'.join(results))


def test_rank0_error_is_raised_on_every_rank(tmp_path, free_port):
    mp.spawn(_worker, args=(free_port, str(tmp_path)), nprocs=2,
             join=True)
    out = {r: (tmp_path / f'rank{r}.txt').read_text().split('\n')
           for r in (0, 1)}
    for rank in (0, 1):
        assert len(out[rank]) == 3, out[rank]
    kmeans0, kmeans1 = out[0][0], out[1][0]
    message = 'IBClusterHook: 3 images on rank 0 but 4 clusters'
    # rank 0 raises its own ValueError; rank 1 a ValueError naming rank 0
    assert kmeans0.startswith('ValueError|True|' + message), kmeans0
    assert kmeans1.startswith('DistributedHookValueError|True|'
                              'IBClusterHook failed on rank 0: ValueError: '
                              + message), kmeans1
    # a local TypeError on rank 1 stops rank 0 too
    assert out[1][1] == 'TypeError|False|bad batch on rank 1'
    assert out[0][1] == ('DistributedHookTypeError|False|IBClusterHook '
                         'failed on rank 1: TypeError: bad batch on rank 1')
    assert out[0][2].startswith('ok|') and out[0][2] == out[1][2]


def test_single_process_reraises_unchanged():
    from mmltm.engine.hooks.ib_cluster_hook import raise_on_every_rank
    raise_on_every_rank(None)
    with pytest.raises(KeyError, match='x'):
        raise_on_every_rank(KeyError('x'))
