"""The compiled CPU kernels of the LTM mask module, and when to use them.

``mmltm/ops/csrc/token_merging_cpu.cpp`` computes (G2)-(G4) of
:class:`~mmltm.ops.mask_module.GridTokenMerger` (the merging weights) and the
merged tokens in one pass over the tokens, and the unmerge plus the block's
residual add in another. The pure-PyTorch code stays the reference:
it is what training (autograd), tracing (FLOP counting), ``torch.compile``,
GPUs and other dtypes run, and the tests check the kernels against it.

The kernels are built by ``pip install --no-build-isolation -e .``
(``setup.py``; ``MMLTM_WITH_OPS=0`` skips them). Without them mmltm warns
once and computes everything with the reference code. ``MMLTM_FUSED_OPS=0``
in the environment, or :func:`set_fused_ops` / :func:`fused_ops`, turn them
off at run time (e.g. to benchmark both paths).
"""
import contextlib
import importlib
import os
import warnings
from typing import Iterable, Iterator, Optional, Tuple, Union

import torch

__all__ = ['fused_ops_available', 'fused_ops_enabled', 'set_fused_ops',
           'fused_ops', 'can_fuse']

try:
    _ext = importlib.import_module('mmltm._ext')  # built by setup.py
    _EXT_ERROR: Optional[BaseException] = None
except ImportError as err:  # not built (MMLTM_WITH_OPS=0, no compiler, ...)
    _ext = None
    _EXT_ERROR = err

_STATE = {'enabled': os.environ.get('MMLTM_FUSED_OPS', '1') != '0', 'warned': False}


def fused_ops_available() -> bool:
    """Whether the compiled kernels were built and import."""
    return _ext is not None


def fused_ops_enabled() -> bool:
    """Whether the kernels may be used (available and not switched off)."""
    return _STATE['enabled'] and _ext is not None


def set_fused_ops(enabled: bool) -> bool:
    """Allow (True) or forbid (False) the kernels; returns the old setting."""
    old = _STATE['enabled']
    _STATE['enabled'] = bool(enabled)
    return old


@contextlib.contextmanager
def fused_ops(enabled: bool) -> Iterator[None]:
    """``with fused_ops(False): ...`` runs the reference code only."""
    old = set_fused_ops(enabled)
    try:
        yield
    finally:
        set_fused_ops(old)


def _tracing() -> bool:
    """Tracing that must see the reference ops: ``torch.jit`` (mmengine's
    FLOP counter) and ``torch.export`` (the exported graph must run without
    mmltm, e.g. in onnxruntime). ``torch.compile`` is not in this list: it
    sees each kernel as one custom op (``torch.ops.mmltm.*``)."""
    exporting = getattr(torch.compiler, 'is_exporting', lambda: False)
    return torch.jit.is_tracing() or torch.jit.is_scripting() or exporting()


def can_fuse(tensors: Iterable[torch.Tensor],
             params: Iterable[torch.Tensor] = ()) -> bool:
    """True when a kernel may replace the reference code for these inputs.

    That is: the kernels are built and enabled, every tensor is a float32
    CPU tensor, no gradient is needed (the kernels have no backward), and
    nothing is being traced by ``torch.jit`` or exported (the FLOP counter
    and exported graphs see the reference ops). Under ``torch.compile`` the
    same rule holds (dynamo guards on these checks), and the kernels enter
    the graph as the custom ops ``torch.ops.mmltm.*``.
    """
    if not _STATE['enabled']:
        return False
    tensors = list(tensors)
    if any(t.device.type != 'cpu' or t.dtype != torch.float32 for t in tensors):
        return False
    if torch.is_grad_enabled() and any(t.requires_grad for t in (*tensors, *params)):
        return False
    if _tracing():
        return False
    if _ext is None:
        if not _STATE['warned'] and not torch.compiler.is_dynamo_compiling():
            _STATE['warned'] = True
            warnings.warn(
                'mmltm: the compiled token-merging kernels are not built '
                f'({_EXT_ERROR}); using the PyTorch reference code, which is '
                'slower at inference. Build them with `pip install '
                '--no-build-isolation -e .` in the mmltm checkout, or set '
                'MMLTM_FUSED_OPS=0 to silence this.', stacklevel=3)
        return False
    return True


# The kernels as torch.library custom ops: torch.compile (and anything else
# that traces with fake tensors) sees each as one op with known output
# shapes (the register_fake functions) instead of an opaque pybind call.
# The step eta is passed as a 0-dim tensor, so that a learned step does not
# force a graph break through ``float()``; the kernels read it on the host.

@torch.library.custom_op('mmltm::grid_mask_and_merge', mutates_args=(), device_types='cpu')
def _grid_mask_and_merge(z: torch.Tensor, prior: Optional[torch.Tensor],
                         cell_ptr: torch.Tensor, cell_tokens: torch.Tensor,
                         eta: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    empty = z.new_empty(0)
    weight, merged = _ext.mask_and_merge(
        z.contiguous(), empty if prior is None else prior.contiguous(),
        cell_ptr.contiguous(), cell_tokens.contiguous(), float(eta))
    return weight, merged


@_grid_mask_and_merge.register_fake
def _(z, prior, cell_ptr, cell_tokens, eta):
    B, N, C = z.shape
    K = cell_ptr.shape[0] - 1
    return z.new_empty(B, N), z.new_empty(B, K, C)


@torch.library.custom_op('mmltm::ltm_mask_and_merge', mutates_args=(), device_types='cpu')
def _ltm_mask_and_merge(z: torch.Tensor, proj_z: torch.Tensor,
                        prior_assign: Optional[torch.Tensor],
                        prior_weight: Optional[torch.Tensor], anchor: torch.Tensor,
                        movable: torch.Tensor, candidates: torch.Tensor,
                        candidate_valid: torch.Tensor,
                        eta: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    empty = z.new_empty(0)
    assign, weight, merged = _ext.ltm_mask_and_merge(
        z.contiguous(), proj_z.contiguous(),
        empty.long() if prior_assign is None else prior_assign.contiguous(),
        empty if prior_weight is None else prior_weight.contiguous(),
        anchor.contiguous(), movable.contiguous(), candidates.contiguous(),
        candidate_valid.contiguous(), float(eta))
    return assign, weight, merged


@_ltm_mask_and_merge.register_fake
def _(z, proj_z, prior_assign, prior_weight, anchor, movable, candidates,
      candidate_valid, eta):
    B, N, C = z.shape
    K = anchor.shape[0]
    return z.new_empty(B, N, dtype=torch.long), z.new_empty(B, N), z.new_empty(B, K, C)


@torch.library.custom_op('mmltm::unmerge_add', mutates_args=(), device_types='cpu')
def _unmerge_add(base: torch.Tensor, delta: torch.Tensor,
                 assign: torch.Tensor) -> torch.Tensor:
    return _ext.unmerge_add(base.contiguous(), delta.contiguous(), assign.contiguous())


@_unmerge_add.register_fake
def _(base, delta, assign):
    return torch.empty_like(base, memory_format=torch.contiguous_format)


def _as_tensor(eta: Union[float, torch.Tensor], like: torch.Tensor) -> torch.Tensor:
    if isinstance(eta, torch.Tensor):
        return eta.detach().float().reshape(())
    return torch.tensor(float(eta), dtype=torch.float32, device=like.device)


def mask_and_merge(z: torch.Tensor, prior: Optional[torch.Tensor],
                   cell_ptr: torch.Tensor, cell_tokens: torch.Tensor,
                   eta: Union[float, torch.Tensor]):
    """Kernel of (G2)-(G4) and the merge: ``(weight (B, N), merged (B, N', C))``."""
    return _grid_mask_and_merge(z, prior, cell_ptr, cell_tokens, _as_tensor(eta, z))


def ltm_mask_and_merge(z: torch.Tensor, proj_z: torch.Tensor, prior, plan,
                       eta: Union[float, torch.Tensor]):
    """Kernel of (M1)-(M5) of :class:`~mmltm.ops.mask_module.TokenMerger`:
    ``(assign (B, N), weight (B, N), merged (B, N', C))`` from the tokens, their
    projection ``P' z`` ``(B, N, d)`` (not yet normalised) and the prior mask
    (a :class:`~mmltm.ops.MergeMask` or None)."""
    return _ltm_mask_and_merge(
        z, proj_z, None if prior is None else prior.assign,
        None if prior is None else prior.weight, plan.anchor, plan.movable,
        plan.candidates, plan.candidate_valid, _as_tensor(eta, z))


def unmerge_add(base: torch.Tensor, delta: torch.Tensor,
                assign: torch.Tensor) -> torch.Tensor:
    """Kernel of ``base + unmerge``: ``out_n = base_n + delta_a(n)``; ``assign``
    ``(N,)`` shared or ``(B, N)`` per sample."""
    return _unmerge_add(base, delta, assign)
