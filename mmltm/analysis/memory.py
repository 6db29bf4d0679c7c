"""Peak memory of one forward.

On CUDA: ``torch.cuda.max_memory_allocated`` minus the memory allocated
before the call. On CPU: the resident-set (RSS) increase over one call in a
fresh sub-process (``python -m mmltm.analysis.memory JOB``): the kernel's
RSS high-water mark VmHWM, reset just before the call through
``/proc/self/clear_refs``, minus the RSS before it; where that reset is not
allowed, a 1 ms RSS sampler and ``ru_maxrss``. The sub-process's glibc is
told to return freed large blocks to the OS, so that its RSS tracks live
tensors (in a long-lived process freed memory can stay resident and be
reused unseen).
"""
import gc
import json
import os
import re
import resource
import subprocess
import sys
import threading
import time
from typing import Callable, Dict, Optional, Tuple

import torch

from .models import size_str

_PEAK_PREFIX = 'PEAK_BYTES '


def rss_bytes() -> int:
    """This process's resident set size."""
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')


def reset_rss_high_water_mark() -> bool:
    """Reset this process's VmHWM (Linux >= 4.0: ``5`` to ``clear_refs``).
    False where the kernel or the sandbox does not allow it."""
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
        return True
    except OSError:
        return False


def rss_high_water_mark() -> int:
    """This process's RSS high-water mark (VmHWM)."""
    with open('/proc/self/status') as f:
        return int(re.search(r'VmHWM:\s+(\d+) kB', f.read()).group(1)) * 1024


def measure_peak_memory_here(fn: Callable[[], object], device: str) -> int:
    """Peak extra bytes of one call of ``fn`` in this process (the CUDA
    allocator's peak, or RSS on CPU; see the module docstring)."""
    gc.collect()
    if str(device).startswith('cuda'):
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        with torch.inference_mode():
            fn()
        torch.cuda.synchronize()
        return int(torch.cuda.max_memory_allocated() - base)
    base = rss_bytes()
    if reset_rss_high_water_mark():
        # the kernel's own high-water mark, reset to the current RSS: exact,
        # and blind to nothing (a sampler thread can starve while the
        # forward's worker threads hold both cores)
        with torch.inference_mode():
            fn()
        return int(max(0, rss_high_water_mark() - base))
    # fallback: sample RSS every millisecond and take ru_maxrss if it grew
    maxrss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    peak = [base]
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], rss_bytes())
            time.sleep(0.001)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        with torch.inference_mode():
            fn()
    finally:
        stop.set()
        sampler.join()
    maxrss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    top = max(peak[0], maxrss_after if maxrss_after > maxrss_before else 0)
    return int(max(0, top - base))


def memory_probe_env(threads: int) -> Dict[str, str]:
    """The environment of a CPU memory probe: large allocations are fresh
    ``mmap`` s returned to the OS when freed, ``threads`` OpenMP threads, and
    the ``mmltm`` this process runs first on ``PYTHONPATH``."""
    import mmltm
    root = os.path.dirname(os.path.dirname(os.path.abspath(mmltm.__file__)))
    path = os.pathsep.join(p for p in (root, os.environ.get('PYTHONPATH')) if p)
    return dict(os.environ, MALLOC_MMAP_THRESHOLD_='65536', MALLOC_TRIM_THRESHOLD_='65536',
                OMP_NUM_THREADS=str(threads), PYTHONPATH=path)


def probe_job(job: Dict) -> int:
    """Build the model of ``job`` and measure one forward of its part here.

    Args:
        job: ``config``, ``cfg_options``, ``part``, ``size`` ``[H, W]``,
            ``batch``, ``threads``, ``device``, ``fix_proposals``.
    """
    from .models import build_model, fix_detector_workload, load_config, make_batch, part_runner
    torch.set_num_threads(job['threads'])
    cfg = load_config(job['config'], job['cfg_options'])
    if job.get('fix_proposals'):
        fix_detector_workload(cfg)
    model = build_model(cfg, job['device'])
    data = make_batch(model, tuple(job['size']), job['batch'])
    return measure_peak_memory_here(part_runner(model, job['part'], data), job['device'])


def measure_peak_memory(config: str, cfg_options: Optional[dict], part: str,
                        hw: Tuple[int, int], batch: int, threads: int,
                        device: str, fix_proposals: bool = False) -> Optional[int]:
    """Peak extra bytes of one forward of ``part`` of ``config``'s model:
    in this process on CUDA, in a fresh sub-process on CPU (an RSS
    high-water mark cannot be reset below what this process already holds).
    None (and the probe's error on stderr) if the probe fails."""
    job = dict(config=config, cfg_options=cfg_options, part=part, size=list(hw),
               batch=batch, threads=threads, device=device, fix_proposals=fix_proposals)
    if str(device).startswith('cuda'):
        return probe_job(job)
    proc = subprocess.run([sys.executable, '-m', 'mmltm.analysis.memory', json.dumps(job)],
                          capture_output=True, text=True, env=memory_probe_env(threads))
    for line in proc.stdout.splitlines()[::-1]:
        if line.startswith(_PEAK_PREFIX):
            return int(line.split()[1])
    print(f'memory probe failed ({config}, {part}, {size_str(hw)}, b{batch}):\n'
          f'{proc.stderr[-2000:]}', file=sys.stderr)
    return None


if __name__ == '__main__':
    print(f'{_PEAK_PREFIX}{probe_job(json.loads(sys.argv[1]))}', flush=True)
