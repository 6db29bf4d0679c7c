"""A hook that makes a Runner's checkpoints safe to write, load and resume.

mmengine 0.10.7 leaves five gaps that this hook closes, each on a hook point
of the Runner (so it works from any entry point that lists it, e.g. mmdet's
own ``tools/train.py`` with ``custom_hooks=[dict(type=
'CheckpointGuardHook')]``; mmltm's ``tools/train.py`` always adds it):

* **Loading** (``__init__``): installs the torch >= 2.6 checkpoint-loading
  fix (:func:`~mmltm.engine.checkpoint.install_checkpoint_fix`) before the
  Runner loads anything; a file torch cannot read then raises
  :class:`~mmltm.engine.checkpoint.UnreadableCheckpointError` naming it.
* **Atomic writes** (``before_run``): ``CheckpointHook`` writes through the
  ``'mmltm_atomic_local'`` file backend (temp file + fsync + rename) when
  its ``out_dir`` is local and the config sets no ``backend_args``.
* **Resume fallback** (``before_run``): ``resume=True`` without a path
  (``--resume``) resumes from the newest *readable* ``epoch_N.pth`` /
  ``iter_N.pth`` of the work_dir, starting with the one ``last_checkpoint``
  names; each unreadable one is logged by name. An explicit resume path that
  cannot be read raises, naming it.
* **Key check** (``after_load_checkpoint``, i.e. for ``load_from`` and for
  resuming): mmengine loads non-strictly and only warns, so a checkpoint of
  another model (a ResNet-18 state dict as ``load_from``) would train from
  scratch. Missing or mis-shaped model keys raise an error naming them,
  unless partial loads are allowed on purpose (``allow_partial_load=True``
  in the hook or as a top-level config key; ``tools/train.py
  --allow-partial-load``), which logs them instead. A checkpoint that shares
  no key with the model always raises.
* **RNG state** (``before_save_checkpoint`` / ``before_train``): the python,
  numpy, torch (and CUDA) generator states are saved in
  ``meta['rng_state']`` and restored on resume at the point where the
  uninterrupted run would continue: before the first epoch for epoch-based
  loops, and after mmengine has skipped the already-trained batches for
  iteration-based loops. Validation runs inside ``before_val`` /
  ``after_val`` keep the training RNG untouched (its dataloader draws a base
  seed), so a resumed run equals an uninterrupted one. Data order is
  mmengine's (the sampler is seeded by seed + epoch), and worker processes
  are re-seeded by mmengine's ``worker_init_fn`` for every epoch.
  Distributed runs save rank 0's state (only rank 0 writes checkpoints); it
  is restored on every rank unless ``randomness.diff_rank_seed`` is set, in
  which case ranks > 0 keep their seeded state (logged).
"""
import logging
import os
import os.path as osp
import random
import re
import zipfile
from typing import Iterator, List, Optional, Tuple

import numpy as np
import torch
from mmengine import dist
from mmengine.hooks import CheckpointHook, Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.runner import IterBasedTrainLoop

from mmltm.registry import register_hook
from ..checkpoint import (ATOMIC_BACKEND, UnreadableCheckpointError,
                          install_checkpoint_fix, read_local_checkpoint)
from ..runner_utils import compare_state_dict_keys

#: file names of the Runner's periodic checkpoints (best_* are not resumed)
_PERIODIC = re.compile(r'^(epoch|iter)_(\d+)\.pth$')


def get_rng_state() -> dict:
    """The python, numpy, torch and (if initialised) CUDA RNG states."""
    state = dict(
        python=random.getstate(),
        numpy=np.random.get_state(),
        torch=torch.get_rng_state())
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore a state of :func:`get_rng_state`."""
    random.setstate(state['python'])
    np.random.set_state(state['numpy'])
    torch.set_rng_state(state['torch'].cpu())
    cuda = state.get('cuda')
    if cuda is not None and torch.cuda.is_available():
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)
        else:
            print_log(f'rng_state: the checkpoint holds {len(cuda)} CUDA RNG '
                      f'states, this machine has {torch.cuda.device_count()} '
                      'GPUs; CUDA RNGs keep their seeded state',
                      logger='current', level=logging.WARNING)


def checkpoint_problem(path: str) -> Optional[str]:
    """Why ``path`` is not a readable checkpoint, or None if it is.

    A zip checkpoint (torch >= 1.6) is checked member by member against its
    CRCs without unpickling; any other file is loaded."""
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                bad = archive.testzip()
            return None if bad is None else f'{bad} fails its CRC check'
        read_local_checkpoint(path, map_location='cpu')
        return None
    except (UnreadableCheckpointError, zipfile.BadZipFile, OSError,
            EOFError) as err:
        return f'{type(err).__name__}: {err}'


def periodic_checkpoints(folder: str) -> List[str]:
    """``epoch_N.pth`` / ``iter_N.pth`` in ``folder``, newest (largest N,
    then latest mtime) first."""
    if not osp.isdir(folder):
        return []
    found: List[Tuple[int, float, str]] = []
    for name in os.listdir(folder):
        match = _PERIODIC.match(name)
        if match:
            path = osp.join(folder, name)
            found.append((int(match.group(2)), osp.getmtime(path), path))
    return [path for _, _, path in sorted(found, reverse=True)]


def newest_readable_checkpoint(work_dir: str) -> Tuple[Optional[str],
                                                       List[str]]:
    """The checkpoint a resume should use, and the unreadable ones skipped.

    Candidates: the file ``work_dir/last_checkpoint`` names, then every
    periodic checkpoint of its folder and of ``work_dir``, newest first.

    Returns:
        tuple[str | None, list[str]]: the newest readable checkpoint (None
        if there is no candidate or none is readable) and one
        ``'path (reason)'`` line per skipped candidate.
    """
    candidates: List[str] = []
    pointer = osp.join(work_dir, 'last_checkpoint')
    if osp.isfile(pointer):
        with open(pointer) as handle:
            last = handle.read().strip()
        if last:
            candidates.append(last)
            candidates += periodic_checkpoints(osp.dirname(last) or '.')
    candidates += periodic_checkpoints(work_dir)
    skipped, seen = [], set()
    for path in candidates:
        key = osp.abspath(path)
        if key in seen:
            continue
        seen.add(key)
        if not osp.isfile(path):
            skipped.append(f'{path} (missing)')
            continue
        problem = checkpoint_problem(path)
        if problem is None:
            return path, skipped
        skipped.append(f'{path} ({problem})')
    return None, skipped


class _RestoreRNGBeforeBatch:
    """Wraps the iterator of an ``IterBasedTrainLoop``: restores ``state``
    right before batch number ``skip`` (0-based) is drawn, i.e. after the
    loop has skipped the ``skip`` batches trained before the checkpoint, and
    then puts the loop's own iterator back."""

    def __init__(self, loop: IterBasedTrainLoop, skip: int,
                 state: dict) -> None:
        self._loop = loop
        self._iterator = loop.dataloader_iterator
        self._left = skip
        self._state = state

    def __iter__(self) -> Iterator:
        return self

    def __next__(self):
        if self._left == 0:
            set_rng_state(self._state)
            self._loop.dataloader_iterator = self._iterator
            return next(self._iterator)
        self._left -= 1
        return next(self._iterator)

    def __getattr__(self, name: str):
        return getattr(self._iterator, name)


@register_hook()
class CheckpointGuardHook(Hook):
    """Atomic checkpoint writes, resume from the newest readable checkpoint,
    a key check on ``load_from`` and the RNG state saved and restored (see
    the module docstring for each).

    Args:
        allow_partial_load (bool, optional): Load a checkpoint that lacks
            some model keys (or has other shapes), logging them, instead of
            raising. None: the config's top-level ``allow_partial_load``
            (default False). A checkpoint sharing no key always raises.
        atomic (bool): Make ``CheckpointHook`` write atomically when its
            ``out_dir`` is local and it has no ``backend_args``.
            Default: True.
        restore_rng (bool): Save and restore the RNG states. Default: True.
        max_listed (int): Keys named per message. Default: 8.
    """
    priority = 'LOWEST'  # restores the RNG after every other before_train

    def __init__(self,
                 allow_partial_load: Optional[bool] = None,
                 atomic: bool = True,
                 restore_rng: bool = True,
                 max_listed: int = 8) -> None:
        if allow_partial_load not in (None, True, False):
            raise ValueError(f'allow_partial_load={allow_partial_load!r} '
                             'must be None, True or False')
        if not isinstance(max_listed, int) or max_listed <= 0:
            raise ValueError(f'max_listed={max_listed!r} must be a positive '
                             'int')
        self.allow_partial_load = allow_partial_load
        self.atomic = bool(atomic)
        self.restore_rng = bool(restore_rng)
        self.max_listed = max_listed
        self._resumed_rng: Optional[dict] = None
        self._val_rng: Optional[dict] = None
        # before the Runner loads anything (hooks are built in its __init__)
        install_checkpoint_fix()

    # ------------------------------------------------------ before_run
    def _partial_allowed(self, runner) -> bool:
        if self.allow_partial_load is not None:
            return self.allow_partial_load
        value = runner.cfg.get('allow_partial_load', False)
        if value not in (True, False):
            raise ValueError(f'allow_partial_load={value!r} in the config '
                             'must be True or False')
        return value

    def _make_writes_atomic(self, runner) -> None:
        for hook in runner.hooks:
            if not isinstance(hook, CheckpointHook):
                continue
            out_dir = hook.out_dir if hook.out_dir is not None else \
                runner.work_dir
            local = '://' not in str(out_dir)
            if (hook.backend_args is None and hook.file_client_args is None
                    and local):
                hook.backend_args = dict(backend=ATOMIC_BACKEND)
                runner.logger.info(
                    'CheckpointGuardHook: checkpoints are written atomically '
                    f'(file backend {ATOMIC_BACKEND!r}: temp file + rename)')

    def _choose_resume_checkpoint(self, runner) -> None:
        if not runner._resume:
            return
        explicit = runner._load_from
        if explicit is not None:
            if '://' not in str(explicit) and osp.isfile(explicit):
                problem = checkpoint_problem(explicit)
                if problem is not None:
                    raise UnreadableCheckpointError(
                        f'cannot resume from {explicit}: {problem}. Pass '
                        'another checkpoint, or --resume without a path to '
                        'resume from the newest readable checkpoint of '
                        f'{runner.work_dir}')
            return
        chosen, skipped = newest_readable_checkpoint(runner.work_dir)
        for line in skipped:
            runner.logger.warning(
                f'CheckpointGuardHook: skipping unreadable checkpoint {line}')
        if chosen is None:
            if skipped:
                raise UnreadableCheckpointError(
                    f'cannot resume in {runner.work_dir}: no readable '
                    'checkpoint; tried ' + '; '.join(skipped))
            return  # nothing saved yet: mmengine trains from scratch
        if skipped:
            runner.logger.warning(
                f'CheckpointGuardHook: resuming from {chosen}, the newest '
                'readable checkpoint')
        else:
            runner.logger.info(f'CheckpointGuardHook: resuming from {chosen}')
        # mmengine's load_or_resume then resumes this explicit path
        runner._load_from = chosen

    def before_run(self, runner) -> None:
        if self.atomic:
            self._make_writes_atomic(runner)
        self._choose_resume_checkpoint(runner)
        self._partial_allowed(runner)  # a bad config value fails early

    # --------------------------------------------------- checkpoint i/o
    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        state = checkpoint.get('state_dict', checkpoint) if isinstance(
            checkpoint, dict) else checkpoint
        source = runner._load_from if runner._load_from is not None else \
            'the checkpoint'
        compare_state_dict_keys(
            model, state, source,
            allow_partial=self._partial_allowed(runner),
            max_listed=self.max_listed,
            what='resume' if runner._resume else 'load_from')
        if self.restore_rng and runner._resume and isinstance(
                checkpoint, dict):
            self._resumed_rng = checkpoint.get('meta', {}).get('rng_state')
            if self._resumed_rng is None:
                runner.logger.warning(
                    f'CheckpointGuardHook: {source} holds no RNG state (not '
                    'written with this hook); the resumed run draws other '
                    'random numbers than an uninterrupted one would')

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        if self.restore_rng:
            checkpoint.setdefault('meta', {})['rng_state'] = get_rng_state()

    # ------------------------------------------------------ RNG restore
    def before_train(self, runner) -> None:
        state, self._resumed_rng = self._resumed_rng, None
        if state is None:
            return
        if (dist.get_world_size() > 1 and dist.get_rank() > 0
                and runner._randomness_cfg.get('diff_rank_seed', False)):
            runner.logger.info(
                'CheckpointGuardHook: diff_rank_seed is set and checkpoints '
                'hold rank 0\'s RNG state only; this rank keeps its seeded '
                'state')
            return
        loop = runner.train_loop
        if isinstance(loop, IterBasedTrainLoop) and loop.iter > 0:
            # mmengine replays ``iter`` batches after before_train_epoch
            loop.dataloader_iterator = _RestoreRNGBeforeBatch(
                loop, loop.iter, state)
        else:
            set_rng_state(state)
        runner.logger.info('CheckpointGuardHook: restored the python, numpy '
                           'and torch RNG states of the checkpoint')

    def before_val(self, runner) -> None:
        if self.restore_rng:
            self._val_rng = get_rng_state()

    def after_val(self, runner) -> None:
        state, self._val_rng = self._val_rng, None
        if state is not None:
            set_rng_state(state)
