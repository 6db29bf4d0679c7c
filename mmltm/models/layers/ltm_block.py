"""What every LTM block adds to the block class it extends.

An LTM block is a base backbone's block (mmdet's ``SwinBlock``,
mmpretrain's ``TransformerEncoderLayer``, :class:`EfficientViTBlock`) whose
FFN runs on merged tokens::

    Z   = X + Attn(X)                  # the base block's attention part
    G   = token_merger(Z, grid, G_prev)
    out = Z + unmerge(FFN(merge(Z, G)), G)

The base backbones build their blocks inside their ``__init__`` with no hook
to pick the class, so the built blocks are *re-classed* (:func:`reclass`):
parameters, buffers and state-dict keys stay the base block's, plus the
block's mask module under the attribute ``token_merger``.

The pieces here are the same for every backbone:

* :func:`ffn_residual_branch`: the FFN's output without its identity (the
  LTM block adds the unmerged result to ``Z`` itself);
* :func:`reclass`: the in-place class change, with its type check;
* :func:`tie_unused_parameters`: a block that does not merge in a forward
  (its grid is too small for the ratio) adds ``0 * sum(p)`` of its mask
  module's trainable parameters to its output in training, so that
  ``DistributedDataParallel(find_unused_parameters=False)`` (mmengine's
  default) sees every parameter used in every iteration; the value of the
  output is unchanged exactly and the parameters get a zero gradient;
* :class:`LTMBlockMixin`: ``from_block`` and the block's return steps, which
  apply the tie and record the mask for
  :attr:`LTMBackboneMixin.last_merge_masks
  <mmltm.models.layers.LTMBackboneMixin.last_merge_masks>`.

Every LTM block has three forwards (:mod:`.merge_scope` says which one a
stage calls):

* ``forward(x, hw, prev=...)``: the ``'ffn'``-scope block above, returns
  ``(out, mask)`` on the full grid;
* ``forward_merging(x, hw)``: the merging block of a ``'stage'``-scope
  stage, returns ``(Z~ + FFN(LN(Z~)), MergedStage)`` on the merged grid
  (:meth:`LTMBlockMixin.merging_output`), or ``(out, None)`` on the full grid
  when the grid is too small to merge;
* ``forward_whole(x, hw)``: the base block, whole, on the grid ``hw`` (the
  merged grid after the merger); its mask module does not run
  (:meth:`LTMBlockMixin.whole_output`).
"""
from typing import Optional, Tuple, Type, TypeVar

import torch
import torch.nn as nn

from mmltm.ops import MergeMask
from .merge_scope import MergedStage

__all__ = ['ffn_residual_branch', 'reclass', 'tie_unused_parameters',
           'LTMBlockMixin', 'NOT_RECORDED']

ModuleT = TypeVar('ModuleT', bound=nn.Module)

#: ``last_mask`` of a block that has not run since recording was switched on
NOT_RECORDED = type('NotRecorded', (), {'__repr__': lambda self: 'NOT_RECORDED'})()


def ffn_residual_branch(ffn: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The residual branch of an FFN: its output without the identity.

    mmcv's ``FFN`` (Swin, ViT, MobileViT) adds its input unless told
    otherwise; the LTM block needs the branch alone because the identity is
    the unmerged ``Z``. Other FFNs (e.g. mmpretrain's ``SwiGLUFFNFused``)
    take an explicit identity, which is then a zero.
    """
    if all(hasattr(ffn, name) for name in ('layers', 'gamma2', 'dropout_layer')):
        return ffn.dropout_layer(ffn.gamma2(ffn.layers(x)))
    return ffn(x, identity=x.new_zeros(()))


def reclass(module: nn.Module, cls: Type[ModuleT], **attributes) -> ModuleT:
    """Turn the built ``module`` into a ``cls`` in place and set ``attributes``.

    ``cls`` must extend the module's class (so its parameters, buffers and
    state-dict keys stay what they are); setting a module attribute (e.g.
    ``token_merger``) registers it as a submodule.

    Raises:
        TypeError: when ``cls`` does not extend ``type(module)`` (including a
            module that was re-classed already).
    """
    if type(module) not in cls.__mro__[1:]:
        bases = [b.__name__ for b in cls.__mro__[1:]
                 if issubclass(b, nn.Module) and b is not nn.Module]
        raise TypeError(f'cannot turn a {type(module).__name__} into a {cls.__name__}: '
                        f'expected an instance of one of {bases} (exactly that class)')
    module.__class__ = cls
    for name, value in attributes.items():
        setattr(module, name, value)
    return module


def tie_unused_parameters(out: torch.Tensor, module: nn.Module) -> torch.Tensor:
    """``out + 0 * sum(p)`` over the trainable parameters of ``module``, in
    training with gradients enabled; ``out`` itself otherwise.

    For a block whose mask module has parameters but did not merge in this
    forward: DDP with ``find_unused_parameters=False`` needs a gradient for
    every trainable parameter in every iteration. The added term is an exact
    zero (for finite parameters), so outputs are bit-identical and the
    parameters get a zero gradient.
    """
    if not (module.training and torch.is_grad_enabled()):
        return out
    params = [p for p in module.parameters() if p.requires_grad]
    if not params:
        return out
    return out + sum(p.sum() for p in params) * 0.0


class LTMBlockMixin:
    """Mixed into every LTM block class, before the base block class.

    The block's forward ends with ``return self.block_output(out, mask)``.

    Attributes:
        token_merger (nn.Module): the block's mask module (every trainable
            mask-module parameter lives under this name).
        record_mask (bool): keep the mask of the last forward in
            ``last_mask`` (set by the backbone's ``record_merge_masks``).
        last_mask (MergeMask | None): the recorded mask; ``None`` when the
            block did not merge, :data:`NOT_RECORDED` before it ran.
    """
    token_merger: nn.Module
    record_mask: bool = False
    last_mask = NOT_RECORDED

    @classmethod
    def from_block(cls, block: nn.Module, merger: nn.Module):
        """Turn the built base ``block`` into this LTM block in place, with
        ``merger`` as its ``token_merger``."""
        return reclass(block, cls, token_merger=merger)

    def block_output(self, out: torch.Tensor, mask: Optional[MergeMask]
                     ) -> Tuple[torch.Tensor, Optional[MergeMask]]:
        """``(out, mask)``, the block's return value. ``mask`` is None when
        the block did not merge: its mask-module parameters are then tied
        into ``out`` (:func:`tie_unused_parameters`)."""
        if mask is None:
            out = tie_unused_parameters(out, self.token_merger)
        if self.record_mask:
            self.last_mask = mask
        return out, mask

    def merging_output(self, out: torch.Tensor, stage: MergedStage
                       ) -> Tuple[torch.Tensor, MergedStage]:
        """``(out, stage)``, the return value of ``forward_merging`` when the
        block merged: ``out`` is the merged stream, ``stage`` what the
        stage needs to unmerge it (``stage.mask`` is recorded)."""
        if self.record_mask:
            self.last_mask = stage.mask
        return out, stage

    def whole_output(self, out: torch.Tensor) -> torch.Tensor:
        """The return value of ``forward_whole``: the block's mask module did
        not run (tied into ``out`` in training; ``None`` recorded)."""
        return self.block_output(out, None)[0]
