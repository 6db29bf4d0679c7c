"""Opt-in import that installs the checkpoint-loading fix for torch >= 2.6.

For entry points that are not mmltm's tools, e.g. mmdet's / mmseg's /
mmpretrain's own ``tools/train.py`` with ``--resume``: list the module in the
config's imports,

    custom_imports = dict(
        imports=['mmltm', 'mmltm.engine.checkpoint_fix'],
        allow_failed_imports=False)

mmengine processes ``custom_imports`` before the Runner loads anything, so
``--resume``, ``load_from`` and ``init_cfg=dict(type='Pretrained', ...)`` of
local checkpoints work again. See :mod:`mmltm.engine.checkpoint` for what the
fix changes (local files only) and why. Importing it twice is harmless.
"""
from .checkpoint import install_checkpoint_fix

install_checkpoint_fix()
