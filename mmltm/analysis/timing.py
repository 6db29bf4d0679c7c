"""Latency: interleaved timing of several callables, medians, IQRs and
paired ratios.

Every round runs all the callables, in forward order in even rounds and
backward in odd ones (A B, B A, ...), so that a slow spell (other jobs,
clock changes) costs every one alike; the ratio of two models is best read
from the per-round ratios a_i / b_i (:func:`paired_ratio`).

A *timer* is a callable ``timer(fn) -> seconds`` that runs ``fn`` once and
returns how long it took: :class:`ClockTimer` (a host clock, the device
synchronised after the call) or :class:`CudaEventTimer` (CUDA events).
Tests inject a :class:`ClockTimer` on a fake clock.
"""
import gc
import time
from contextlib import nullcontext
from typing import Callable, Dict, List, Optional, Sequence, Union

import numpy as np
import torch
import torch.nn as nn

#: host clocks by name: ``wall`` elapsed time; ``cpu`` the CPU time of this
#: process (all its threads, user + system): time spent waiting for a core
#: that other jobs hold does not count, so on a shared machine it is the
#: steadier measure of the work done (use it with one thread: with more,
#: threads spinning at barriers count too)
TIMERS: Dict[str, Callable[[], float]] = {'wall': time.perf_counter, 'cpu': time.process_time}

Timer = Callable[[Callable[[], object]], float]


def synchronize(device: str) -> None:
    """Wait for the queued work of ``device`` (a no-op on CPU)."""
    if str(device).startswith('cuda'):
        torch.cuda.synchronize()


class ClockTimer:
    """Times one call with a host clock; the device is synchronised after
    the call so that queued GPU work is counted.

    Args:
        clock: seconds now, e.g. ``time.perf_counter``.
        device: synchronised after each call (``'cuda...'``), or ``'cpu'``.
    """

    def __init__(self, clock: Callable[[], float] = time.perf_counter,
                 device: str = 'cpu') -> None:
        self.clock = clock
        self.device = device

    def __call__(self, fn: Callable[[], object]) -> float:
        t0 = self.clock()
        fn()
        synchronize(self.device)
        return self.clock() - t0


class CudaEventTimer:
    """Times one call with CUDA events recorded on the current stream
    around it (the GPU's own time for the work the call queues, without the
    host's synchronisation latency)."""

    def __init__(self) -> None:
        if not torch.cuda.is_available():
            raise RuntimeError('CudaEventTimer needs CUDA; torch.cuda.is_available() is False')

    def __call__(self, fn: Callable[[], object]) -> float:
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1e3


def make_timer(timer: Union[str, Timer] = 'wall', device: str = 'cpu') -> Timer:
    """A timer from its name (``'wall'``, ``'cpu'``, ``'cuda_event'``), or
    ``timer`` itself if it is already one."""
    if callable(timer):
        return timer
    if timer == 'cuda_event':
        return CudaEventTimer()
    if timer not in TIMERS:
        raise ValueError(f'timer={timer!r} is not allowed; allowed: '
                         f"{sorted(TIMERS) + ['cuda_event']} or a callable")
    return ClockTimer(TIMERS[timer], device)


def time_interleaved(fns: Sequence[Callable[[], object]], runs: int, warmup: int,
                     device: str = 'cpu',
                     timer: Union[str, Timer] = 'wall') -> List[List[float]]:
    """Seconds of each of ``fns`` over ``runs`` interleaved rounds.

    ``warmup`` untimed rounds come first; the garbage collector is off while
    timing; everything runs under ``torch.inference_mode``.

    Args:
        fns: no-argument callables.
        runs: timed rounds (>= 1).
        warmup: untimed rounds (>= 0).
        device: synchronised after the warm-up (and, by a named timer,
            after every call).
        timer: a name of :func:`make_timer` or a timer.

    Returns:
        ``times[j][i]``: seconds of ``fns[j]`` in round ``i``.
    """
    if runs < 1 or warmup < 0:
        raise ValueError(f'runs={runs} must be >= 1 and warmup={warmup} >= 0')
    measure = make_timer(timer, device)
    times: List[List[float]] = [[] for _ in fns]
    with torch.inference_mode():
        for _ in range(warmup):
            for fn in fns:
                fn()
        synchronize(device)
        gc.collect()
        gc.disable()
        try:
            for i in range(runs):
                order = range(len(fns)) if i % 2 == 0 else reversed(range(len(fns)))
                for j in order:
                    times[j].append(measure(fns[j]))
        finally:
            gc.enable()
    return times


def summarize(seconds: Sequence[float]) -> Dict[str, float]:
    """Median and quartiles of ``seconds``, in milliseconds
    (``median_ms``, ``q1_ms``, ``q3_ms``, ``iqr_ms``, ``runs``)."""
    ms = np.asarray(seconds, dtype=float) * 1e3
    q1, med, q3 = np.percentile(ms, [25, 50, 75])
    return dict(median_ms=float(med), q1_ms=float(q1), q3_ms=float(q3),
                iqr_ms=float(q3 - q1), runs=len(ms))


def paired_ratio(a: Sequence[float], b: Sequence[float]) -> Dict[str, float]:
    """Median and quartiles of the per-round ratios ``a[i] / b[i]``."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or a.size == 0:
        raise ValueError(f'paired_ratio needs two equally long, non-empty series; '
                         f'got {a.size} and {b.size} values')
    if (b <= 0).any():
        raise ValueError(f'paired_ratio: the reference times must be > 0; got {b.min()}')
    q1, med, q3 = np.percentile(a / b, [25, 50, 75])
    return dict(median=float(med), q1=float(q1), q3=float(q3))


def latency_ratios(a: Sequence[float], b: Sequence[float]) -> Dict:
    """How ``a`` compares with ``b`` from one interleaved run:
    ``latency_ratio`` (ratio of the medians) and ``paired_latency_ratio``
    (:func:`paired_ratio`)."""
    return dict(latency_ratio=summarize(a)['median_ms'] / summarize(b)['median_ms'],
                paired_latency_ratio=paired_ratio(a, b))


def module_runner(module: nn.Module, inputs, autocast_dtype: Optional[torch.dtype] = None,
                  device: str = 'cpu') -> Callable[[], object]:
    """``module(*inputs)`` as a no-argument callable.

    Args:
        module: any module.
        inputs: a tensor, or a tuple of positional arguments.
        autocast_dtype: run under ``torch.autocast`` with this dtype
            (e.g. ``torch.float16`` on CUDA, ``torch.bfloat16`` on CPU).
        device: the device type autocast applies to.
    """
    args = inputs if isinstance(inputs, tuple) else (inputs, )
    device_type = str(device).split(':')[0]

    def run():
        ctx = (torch.autocast(device_type, dtype=autocast_dtype)
               if autocast_dtype is not None else nullcontext())
        with ctx:
            return module(*args)

    return run


def compare_latency(module_a: nn.Module, module_b: nn.Module, inputs_a, inputs_b=None,
                    runs: int = 20, warmup: int = 3, device: str = 'cpu',
                    timer: Union[str, Timer] = 'wall',
                    autocast_dtype: Optional[torch.dtype] = None) -> Dict:
    """Latency of ``module_a`` against ``module_b`` from one interleaved run.

    Any two modules: an LTM backbone and its baseline, two merge scopes, an
    eager and a ``torch.compile`` d module.

    Args:
        module_a: the module measured.
        module_b: the reference.
        inputs_a: a tensor or a tuple of positional arguments of ``module_a``.
        inputs_b: the same for ``module_b`` (default: ``inputs_a``).
        runs: timed rounds.
        warmup: untimed rounds (compilation happens there).
        device: see :func:`time_interleaved`.
        timer: see :func:`make_timer`.
        autocast_dtype: see :func:`module_runner`.

    Returns:
        ``dict(a=summary, b=summary, times_s=(a, b), latency_ratio=...,
        paired_latency_ratio=...)``; summaries as :func:`summarize`.
    """
    inputs_b = inputs_a if inputs_b is None else inputs_b
    fns = [module_runner(module_a, inputs_a, autocast_dtype, device),
           module_runner(module_b, inputs_b, autocast_dtype, device)]
    ta, tb = time_interleaved(fns, runs, warmup, device, timer)
    return dict(a=summarize(ta), b=summarize(tb), times_s=(ta, tb), **latency_ratios(ta, tb))
