"""What the mask module costs and what merging can buy, per block.

For LTM backbones whose merging blocks have mmcv-style ``attn``, ``norm1``,
``norm2`` and ``ffn`` (LTM-Swin): :func:`block_overhead` times the mask
module with the merge (``token_merger.merge``) and the unmerge with the
residual add (``unmerge_add``) against the FFN time they save, on each
block's real input; :func:`merging_bound` estimates, inside whole baseline
forwards, the best latency ratio merging can reach (free mask module).
"""
from functools import partial
from typing import Dict, List, Tuple, Union

import torch
import torch.nn as nn

from .models import size_str
from .timing import TIMERS, Timer, summarize, time_interleaved

Grid = Tuple[int, int]


def merging_blocks(backbone: nn.Module) -> List[Tuple[str, nn.Module]]:
    """``(name, block)`` of every block with a ``token_merger`` and mmcv's
    ``attn`` / ``norm2`` / ``ffn`` (LTM-Swin's blocks)."""
    return [(name, m) for name, m in backbone.named_modules()
            if hasattr(m, 'token_merger') and hasattr(m, 'ffn') and hasattr(m, 'norm2')
            and hasattr(m, 'attn')]


def block_inputs(backbone: nn.Module, blocks: List[Tuple[str, nn.Module]],
                 x: torch.Tensor) -> Dict[str, Tuple[torch.Tensor, Grid]]:
    """``{name: (tokens, grid)}``: what each of ``blocks`` receives in one
    forward of ``backbone`` on ``x`` (captured with forward pre-hooks)."""
    captured: Dict[str, Tuple[torch.Tensor, Grid]] = {}

    def record(mod, args, name):  # a pre-hook must return None (or new args)
        captured.setdefault(name, (args[0].detach(), tuple(args[1])))

    hooks = [blk.register_forward_pre_hook(partial(record, name=name)) for name, blk in blocks]
    try:
        with torch.inference_mode():
            backbone(x)
    finally:
        for h in hooks:
            h.remove()
    return captured


def _merging_inputs(backbone: nn.Module, hw: Grid, batch: int, device: str):
    """``(name, block, tokens, grid)`` of every block that merges at ``hw``."""
    blocks = merging_blocks(backbone)
    captured = block_inputs(backbone, blocks, torch.randn(batch, 3, *hw, device=device))
    return [(name, blk) + captured[name] for name, blk in blocks
            if name in captured and not blk.token_merger.is_identity(captured[name][1])]


def block_overhead(model: nn.Module, hw: Grid, batch: int, runs: int, warmup: int,
                   device: str = 'cpu', timer: Union[str, Timer] = 'wall') -> List[Dict]:
    """Per grid, the first merging block's parts, timed interleaved on its
    real input at this image size.

    Args:
        model: a model whose ``backbone`` has merging blocks.
        hw: image size.
        batch: batch size.
        runs, warmup, device, timer: see :func:`~.timing.time_interleaved`.

    Returns:
        One row per grid: the medians (ms) of the mask module + merge
        (``mask_merge_ms``: one kernel with the compiled kernels), unmerge +
        residual add (``unmerge_add_ms``), FFN on N' and on N tokens and
        attention, the overhead over the FFN saving and the block ratios
        (``block_free_merge``: attention + FFN(N') over attention + FFN(N)).
    """
    from mmltm.ops import unmerge_add
    rows, seen = [], set()
    for name, blk, x_in, grid in _merging_inputs(model.backbone, hw, batch, device):
        if grid in seen:
            continue
        seen.add(grid)
        with torch.inference_mode():
            z = x_in + blk.attn(blk.norm1(x_in), grid)
            mask, zm = blk.token_merger.merge(z, grid, None)
            delta = blk.ffn.layers(blk.norm2(zm))
        fns = dict(
            mask_merge=lambda: blk.token_merger.merge(z, grid, None),
            unmerge_add=lambda: unmerge_add(z, delta, mask),
            ffn_merged=lambda: blk.ffn.layers(blk.norm2(zm)),
            ffn_full=lambda: blk.ffn.layers(blk.norm2(z)),
            attn=lambda: blk.attn(blk.norm1(x_in), grid))
        t = time_interleaved(list(fns.values()), runs, warmup, device, timer)
        med = {k: summarize(v)['median_ms'] for k, v in zip(fns, t)}
        rows.append(overhead_row(name, grid, mask.num_merged, z.shape[-1], batch, med))
    return rows


def overhead_row(block: str, grid: Grid, num_merged: int, channels: int, batch: int,
                 med: Dict[str, float]) -> Dict:
    """One row of :func:`block_overhead` from the parts' medians (ms,
    keys ``mask_merge``, ``unmerge_add``, ``ffn_merged``, ``ffn_full``,
    ``attn``). The base block's residual add is not timed: the overhead is
    an upper bound by that add."""
    overhead = med['mask_merge'] + med['unmerge_add']
    saving = med['ffn_full'] - med['ffn_merged']
    return dict(block=block, grid=size_str(grid), N=grid[0] * grid[1], N_merged=num_merged,
                C=channels, batch=batch, **{f'{k}_ms': v for k, v in med.items()},
                overhead_ms=overhead, ffn_saving_ms=saving,
                overhead_over_saving=overhead / saving if saving > 0 else float('inf'),
                block_base_ms=med['attn'] + med['ffn_full'],
                block_ltm_ms=med['attn'] + med['ffn_merged'] + overhead,
                block_free_merge=(med['attn'] + med['ffn_merged']) /
                (med['attn'] + med['ffn_full']))


def has_ffn_blocks(base: nn.Module, ltm: nn.Module) -> bool:
    """Whether every merging block of backbone ``ltm`` has a twin of the
    same name in backbone ``base`` with ``norm2`` and ``ffn`` (e.g. Swin vs
    LTM-Swin)."""
    names = [name for name, _ in merging_blocks(ltm)]
    mods = dict(base.named_modules())
    return bool(names) and all(
        name in mods and hasattr(mods[name], 'norm2') and hasattr(mods[name], 'ffn')
        for name in names)


def free_merging_estimate(spent: Dict[str, float], kept: Dict[str, float],
                          total: float) -> Tuple[float, float]:
    """``(share, bound)`` from the baseline's time in the shrinking parts.

    Args:
        spent: seconds in norm2 + FFN of each block whose twin merges.
        kept: N'/N of each of those blocks.
        total: seconds of the whole forwards.

    Returns:
        The shrinking parts' share of the time, and
        ``1 - sum_b spent_b (1 - kept_b) / total``.
    """
    saving = sum(spent[name] * (1 - kept[name]) for name in kept)
    return sum(spent.values()) / total, 1 - saving / total


def merging_bound(ltm: nn.Module, base: nn.Module, hw: Grid, batch: int, runs: int,
                  warmup: int, device: str = 'cpu', timer: str = 'wall') -> Dict:
    """What merging can buy at best, estimated inside whole forwards.

    Times ``norm2`` + ``ffn`` (the part an LTM block runs on N' tokens) of
    every baseline block whose LTM counterpart merges, with forward hooks,
    while the baseline backbone runs whole forwards. If that part shrank
    exactly with the token count N'/N and the mask module, merge and unmerge
    cost nothing, the LTM backbone would take

        bound = 1 - sum_b t_b (1 - N'_b / N_b) / T

    of the baseline's time T: about the latency ratio merging can reach on
    this machine (the un-merged attention, stem and patch merging stay as
    they are). An estimate, not a hard bound: a smaller FFN also leaves the
    caches warmer for the rest, and single runs are noisy. Isolated timings
    of the parts (:func:`block_overhead`) run with hot caches and understate
    the attention's share; this measures it inside real forwards.

    Args:
        ltm: the LTM model (its ``backbone`` is read).
        base: the baseline model.
        hw, batch: input size and batch size.
        runs, warmup, device: see :func:`~.timing.time_interleaved`.
        timer: a host clock name of :data:`~.timing.TIMERS` (the hooks read it).
    """
    if timer not in TIMERS:
        raise ValueError(f'timer={timer!r}; allowed: {sorted(TIMERS)} (host clocks: the '
                         f'hooks read the clock inside the forward)')
    clock = TIMERS[timer]
    kept = {}
    for name, blk, tokens, grid in _merging_inputs(ltm.backbone, hw, batch, device):
        with torch.inference_mode():
            mask, _ = blk.token_merger.merge(tokens, grid, None)
        kept[name] = mask.num_merged / (grid[0] * grid[1])
    x = torch.randn(batch, 3, *hw, device=device)
    run_base = lambda: base.backbone(x)  # noqa: E731
    time_interleaved([run_base], 1, warmup, device, timer)  # warm-up, no hooks yet
    spent = {name: 0.0 for name in kept}
    started: Dict[str, float] = {}

    def start(mod, args, name):
        started[name] = clock()

    def stop(mod, args, out, name):
        spent[name] += clock() - started[name]

    hooks = []
    for name in kept:
        blk = base.backbone.get_submodule(name)
        hooks.append(blk.norm2.register_forward_pre_hook(partial(start, name=name)))
        hooks.append(blk.ffn.register_forward_hook(partial(stop, name=name)))
    try:
        total = sum(time_interleaved([run_base], runs, 0, device, timer)[0])
    finally:
        for h in hooks:
            h.remove()
    share, bound = free_merging_estimate(spent, kept, total)
    return dict(size=size_str(hw), batch=batch, blocks=len(kept),
                shrinking_share=share, bound=bound)
