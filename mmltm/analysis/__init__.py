"""mmltm.analysis: measuring models, as a library (the tools under
``tools/analysis_tools/`` are thin command lines over it).

One idea per module:

* :mod:`.models` — a config's model with random weights, a dummy batch, a
  part (backbone / whole model) as a callable;
* :mod:`.flops` — FLOPs and parameters (mmengine's ``FlopAnalyzer``);
* :mod:`.timing` — interleaved paired timing of any callables or two
  modules, medians, IQRs, paired ratios; host-clock and CUDA-event timers;
* :mod:`.memory` — peak memory of one forward (CUDA allocator, or RSS in a
  fresh sub-process);
* :mod:`.overhead` — the mask module's cost per block and the
  free-merging estimate;
* :mod:`.tables` — markdown tables and the benchmark report;
* :mod:`.machine` — what a measurement ran on;
* :mod:`.benchmark`, :mod:`.sweep`, :mod:`.visualization` — what
  ``benchmark.py``, ``sweep_ratio.py`` and ``visualize_merging.py`` run;
* :mod:`.gpu_check` — the CUDA check of ``tools/misc/gpu_check.sh``.

``import mmltm`` does not import this package, and this package imports its
modules only when one of their names is first used.
"""
import importlib
from typing import List

_EXPORTS = {
    'models': ('PARTS', 'build_model', 'fix_detector_workload', 'load_config', 'make_batch',
               'parse_size', 'part_runner', 'size_str'),
    'flops': ('count_flops', 'count_params', 'part_flops', 'part_params'),
    'timing': ('ClockTimer', 'CudaEventTimer', 'compare_latency', 'module_runner',
               'paired_ratio', 'summarize', 'time_interleaved'),
    'memory': ('measure_peak_memory', 'measure_peak_memory_here'),
    'overhead': ('block_overhead', 'merging_bound'),
    'tables': ('md_table', 'benchmark_report'),
    'machine': ('machine_info', 'kernels_state'),
    'benchmark': ('run_benchmark', ),
    'sweep': ('sweep_ratios', ),
}
_OWNER = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = sorted(_OWNER)


def __getattr__(name: str):
    if name in _OWNER:
        value = getattr(importlib.import_module(f'{__name__}.{_OWNER[name]}'), name)
        globals()[name] = value
        return value
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


def __dir__() -> List[str]:
    return sorted(set(globals()) | set(_OWNER))
