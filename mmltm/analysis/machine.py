"""What a measurement ran on: the CPU, threads, environment, and which code
runs the LTM mask module (mmltm's compiled kernels or the PyTorch
reference)."""
import os
import platform
import subprocess
from typing import Dict

import torch

#: environment variables that change CPU timings, reported when set
TIMING_ENV = ('OMP_NUM_THREADS', 'OMP_WAIT_POLICY', 'GOMP_SPINCOUNT', 'MALLOC_MMAP_THRESHOLD_',
              'LD_PRELOAD')


def cpu_model_name() -> str:
    """The CPU's model name as ``lscpu`` reports it (``platform.processor()``
    or the architecture where ``lscpu`` is missing)."""
    model_name = platform.processor() or platform.machine()
    try:
        out = subprocess.run(['lscpu'], capture_output=True, text=True).stdout
    except OSError:
        return model_name
    for line in out.splitlines():
        if line.startswith('Model name:'):
            model_name = line.split(':', 1)[1].strip()
    return model_name


def machine_info(threads: int) -> Dict:
    """The machine and the torch set-up of this process.

    Args:
        threads: the thread count the caller asked for (reported next to
            ``torch.get_num_threads()``).
    """
    env = {k: os.environ[k] for k in TIMING_ENV if k in os.environ}
    return dict(cpu=cpu_model_name(), machine=platform.machine(), logical_cpus=os.cpu_count(),
                torch_threads=torch.get_num_threads(), requested_threads=threads,
                torch=torch.__version__, env=env, loadavg_start=os.getloadavg())


def kernels_state(setting: str = 'auto') -> str:
    """Apply ``--kernels`` (here and, through the environment, in memory
    probes) and describe which code runs the LTM mask module.

    Args:
        setting: ``'auto'`` (mmltm's compiled CPU kernels where they apply)
            or ``'off'`` (the PyTorch reference code only).
    """
    if setting not in ('auto', 'off'):
        raise ValueError(f"kernels={setting!r}; allowed: ['auto', 'off']")
    from mmltm.ops import fused
    if setting == 'off':
        os.environ['MMLTM_FUSED_OPS'] = '0'
        fused.set_fused_ops(False)
        return 'off (PyTorch reference code, --kernels off)'
    if not fused.fused_ops_available():
        return 'NOT built (PyTorch reference code)'
    if not fused.fused_ops_enabled():
        return 'off (PyTorch reference code, MMLTM_FUSED_OPS=0)'
    return 'compiled CPU kernels (float32 CPU inference; reference code elsewhere)'
