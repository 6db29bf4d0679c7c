"""Config preparation shared by ``tools/train.py`` and ``tools/test.py``.

Kept in the package (not in ``tools/``) so that tests and other tools can
use the same checks: which library a config belongs to, whether its data is
where the config says, and the CPU-only adjustments for distributed runs.
"""
import fcntl
import logging
import os
import os.path as osp
import time
from contextlib import contextmanager
from typing import Iterator, List, Optional, Tuple

import torch
from mmengine.config import Config, ConfigDict
from mmengine.logging import print_log

#: ``default_scope`` values the tools know how to run
SUPPORTED_SCOPES = ('mmdet', 'mmseg', 'mmpretrain')

#: dataloaders each phase reads; ``val_dataloader`` only if ``val_cfg`` set
_PHASE_LOADERS = {
    'train': ('train_dataloader', 'val_dataloader'),
    'test': ('test_dataloader', ),
}


def task_of_config(cfg: Config) -> str:
    """Return the config's ``default_scope`` (the OpenMMLab library that
    owns its model/dataset/metric types).

    Raises:
        ValueError: if ``default_scope`` is missing or not one of
            :data:`SUPPORTED_SCOPES`.
    """
    scope = cfg.get('default_scope')
    if scope not in SUPPORTED_SCOPES:
        raise ValueError(
            f'default_scope={scope!r} in config {cfg.filename}: mmltm tools '
            f'run configs whose default_scope is one of {SUPPORTED_SCOPES} '
            '(inherit an mmdet/mmseg/mmpretrain default_runtime, or set it)')
    return scope


def _dataset_roots(dataset: Optional[dict],
                   where: str) -> Iterator[Tuple[str, str, str]]:
    """Yield ``(where, data_root, ann_file)`` for a dataset config, walking
    into dataset wrappers (RepeatDataset/ClassBalancedDataset: ``dataset``;
    ConcatDataset: ``datasets``)."""
    if not isinstance(dataset, dict):
        return
    if 'dataset' in dataset:
        yield from _dataset_roots(dataset['dataset'], f'{where}.dataset')
    for i, sub in enumerate(dataset.get('datasets') or []):
        yield from _dataset_roots(sub, f'{where}.datasets.{i}')
    if dataset.get('data_root') is not None:
        yield (f'{where}.data_root', dataset['data_root'],
               dataset.get('ann_file') or '')


def collect_data_roots(cfg: Config,
                       phase: str = 'train') -> List[Tuple[str, str, str]]:
    """List the data roots a run of ``phase`` ('train' or 'test') will read.

    Returns:
        list[tuple[str, str, str]]: ``(config key, data_root, ann_file)``.
    """
    if phase not in _PHASE_LOADERS:
        raise ValueError(f'phase={phase!r}; expected one of '
                         f'{tuple(_PHASE_LOADERS)}')
    found = []
    for loader in _PHASE_LOADERS[phase]:
        if loader == 'val_dataloader' and not cfg.get('val_cfg'):
            continue
        loader_cfg = cfg.get(loader)
        if isinstance(loader_cfg, dict):
            found.extend(
                _dataset_roots(loader_cfg.get('dataset'), f'{loader}.dataset'))
    return found


def _missing(data_root: str, ann_file: str) -> Optional[str]:
    """The first path of a dataset that does not exist, or None."""
    if not osp.isdir(data_root):
        return data_root
    if ann_file:
        path = ann_file if osp.isabs(ann_file) else osp.join(
            data_root, ann_file)
        if not osp.exists(path):
            return path
    return None


def _is_under(path: str, root: str) -> bool:
    path, root = osp.abspath(path), osp.abspath(root)
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


@contextmanager
def _file_lock(path: str) -> Iterator[None]:
    """An exclusive lock, so that the ranks of a ``torchrun`` job (which all
    reach the data check before the process group exists) do not generate
    the toy data into the same folder at once."""
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    with open(path, 'w') as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def check_data_roots(cfg: Config,
                     phase: str = 'train',
                     make_toy: bool = True) -> None:
    """Fail early, naming the path, when the data of a config is missing.

    A config may declare ``toy_data_root`` (all configs in ``configs/toy``
    do): a missing data root below it is generated with
    :func:`mmltm.datasets.toy.ensure_toy_data` when ``make_toy`` is True,
    because toy data is deterministic and takes seconds to write. Any other
    missing path raises, telling the user where the data must go.

    Args:
        cfg (Config): The full config.
        phase (str): 'train' (train + val data) or 'test'.
        make_toy (bool): Generate missing toy data. Defaults to True.

    Raises:
        FileNotFoundError: naming the missing path and the config key.
    """
    toy_root = cfg.get('toy_data_root')
    for key, data_root, ann_file in collect_data_roots(cfg, phase):
        missing = _missing(data_root, ann_file)
        if missing is None:
            continue
        if toy_root and _is_under(data_root, toy_root):
            if make_toy:
                from mmltm.datasets.toy import TOY_DATASETS, ensure_toy_data
                # data/toy/coco/... -> only the 'coco' set is needed
                name = osp.relpath(data_root, toy_root).split(os.sep)[0]
                which = name if name in TOY_DATASETS else TOY_DATASETS
                with _file_lock(osp.abspath(toy_root).rstrip(os.sep) +
                                '.lock'):
                    ensure_toy_data(toy_root, which=which)
                print_log(f'generated toy data under {toy_root}',
                          logger='current')
                missing = _missing(data_root, ann_file)
            if missing is not None:
                raise FileNotFoundError(
                    f'data root {data_root} not found ({key}; missing '
                    f'{missing}): run python tools/misc/make_toy_data.py '
                    f'--out {toy_root} (mmltm.datasets.toy.make_toy_data) '
                    'to create the toy data')
            continue
        what = 'data root' if missing == data_root else 'annotation file'
        raise FileNotFoundError(
            f'{what} {missing} not found ({key} = {data_root!r}, config '
            f'{cfg.filename}): put the dataset there (paths are relative to '
            'the current directory, normally the repo root) or point the '
            'config at it, e.g. --cfg-options '
            f'{key.split(".")[0]}.dataset.data_root=/path/to/data/')


def _cuda_usable() -> bool:
    return torch.cuda.is_available()


def prepare_runner_cfg(cfg: Config,
                       config_path: str,
                       work_dir: Optional[str] = None,
                       launcher: str = 'none',
                       amp: bool = False,
                       resume: Optional[str] = None,
                       load_from: Optional[str] = None,
                       training: bool = True) -> Config:
    """Apply the command-line choices of the tools to ``cfg`` (in place).

    Args:
        cfg (Config): The loaded config (``--cfg-options`` already merged).
        config_path (str): Path of the config file (names the work_dir).
        work_dir (str, optional): ``--work-dir``; else the config's
            ``work_dir``; else ``work_dirs/<config name>``.
        launcher (str): 'none', 'pytorch', 'slurm' or 'mpi'.
        amp (bool): Switch the optimizer wrapper to ``AmpOptimWrapper``.
        resume (str, optional): None (no resume), 'auto' (latest checkpoint
            of the work_dir) or a checkpoint path.
        load_from (str, optional): Checkpoint to load (tools/test.py).
        training (bool): False for evaluation only; the optimizer settings
            (``--amp``, an AMP config without GPU) are then not checked.

    Returns:
        Config: ``cfg``.
    """
    task_of_config(cfg)
    cfg.launcher = launcher
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(config_path))[0])

    if amp:
        wrapper = cfg.optim_wrapper.get('type', 'OptimWrapper')
        if wrapper == 'AmpOptimWrapper':
            print_log('AMP is already enabled in the config.',
                      logger='current')
        else:
            if wrapper != 'OptimWrapper':
                raise ValueError(f'--amp needs optim_wrapper.type='
                                 f"'OptimWrapper', got {wrapper!r}")
            cfg.optim_wrapper.type = 'AmpOptimWrapper'
            cfg.optim_wrapper.loss_scale = 'dynamic'
    if (training
            and cfg.get('optim_wrapper', {}).get('type') == 'AmpOptimWrapper'
            and not _cuda_usable()):
        # mmengine asserts deep inside the Runner; say what to do instead
        raise RuntimeError(
            'optim_wrapper.type=AmpOptimWrapper (--amp or an amp config) '
            'needs a GPU, and CUDA is not available here: drop --amp or pass '
            '--cfg-options optim_wrapper.type=OptimWrapper')

    if resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif resume is not None:
        cfg.resume = True
        cfg.load_from = resume
    if load_from is not None:
        cfg.load_from = load_from

    if launcher != 'none' and not _cuda_usable():
        # mmengine defaults to nccl, and its init_dist and DDP wrapper assume
        # one GPU per process; on CPU use gloo and a device-less DDP
        cfg.setdefault('env_cfg', ConfigDict())
        cfg.env_cfg.setdefault('dist_cfg', ConfigDict())
        cfg.env_cfg.dist_cfg.backend = 'gloo'
        wrapper_cfg = cfg.get('model_wrapper_cfg') or ConfigDict(
            type='MMDistributedDataParallel',
            broadcast_buffers=False,
            find_unused_parameters=cfg.get('find_unused_parameters', False))
        wrapper_cfg.device_ids = None
        cfg.model_wrapper_cfg = wrapper_cfg
    return cfg


def init_cpu_dist(cfg: Config) -> None:
    """Initialise a gloo process group for a CPU-only ``pytorch`` launch.

    mmengine's ``init_dist`` calls ``torch.cuda.set_device`` first, which
    fails without a GPU driver; once a process group exists the Runner skips
    its own initialisation. No-op with CUDA, without a launcher, or when the
    group already exists.

    Raises:
        RuntimeError: for the 'slurm'/'mpi' launchers on a CPU-only machine.
    """
    launcher = cfg.get('launcher', 'none')
    if launcher == 'none' or _cuda_usable():
        return
    if torch.distributed.is_initialized():
        return
    if launcher != 'pytorch':
        raise RuntimeError(
            f'launcher={launcher!r} without CUDA is not supported: on a '
            "CPU-only machine use --launcher pytorch (tools/dist_train.sh)")
    dist_cfg = dict(cfg.get('env_cfg', {}).get('dist_cfg', {}))
    dist_cfg.pop('backend', None)
    timeout = dist_cfg.pop('timeout', None)
    if timeout is not None:
        import datetime
        dist_cfg['timeout'] = datetime.timedelta(seconds=timeout)
    torch.distributed.init_process_group(backend='gloo', **dist_cfg)


def close_dist() -> None:
    """Destroy the default process group, if one exists, and give its
    worker threads the moment they need to finish.

    The tools call it when a run ends, returned or raised. A gloo worker
    thread frees the tensors of a collective after the collective has
    returned, and needs the GIL for that; if the interpreter is exiting by
    then, the thread aborts the process ("terminate called without an
    active exception", SIGABRT) and torchrun reports a finished run as
    failed. mmengine's Runner never destroys its group, and destroying it
    does not stop those threads (the DDP wrapper still holds the group):
    the sleep releases the GIL to them while the interpreter is alive.
    No-op without a group.
    """
    if not (torch.distributed.is_available()
            and torch.distributed.is_initialized()):
        return
    torch.distributed.destroy_process_group()
    time.sleep(0.1)  # microseconds suffice when idle; room for a busy CPU


@contextmanager
def runner_for(cfg: Config) -> Iterator:
    """The Runner of a prepared config (:func:`prepare_runner_cfg`), built
    and used inside the process group of a distributed run.

    ``with runner_for(cfg) as runner: runner.train()``: makes the CPU gloo
    group (:func:`init_cpu_dist`), builds the config's ``runner_type`` (or
    mmengine's Runner, which makes a CUDA run's group itself), and destroys
    the group when the block ends, returned or raised (:func:`close_dist`).
    """
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner
    try:
        init_cpu_dist(cfg)
        if 'runner_type' in cfg:
            yield RUNNERS.build(cfg)
        else:
            yield Runner.from_cfg(cfg)
    finally:
        close_dist()


def _listed(keys: List[str], max_listed: int) -> str:
    """Per top-level module first (which parts do not fit), then examples."""
    counts: dict = {}
    for key in keys:
        top = key.split('.')[0]
        counts[top] = counts.get(top, 0) + 1
    modules = ', '.join(f'{top}.* ({n})' for top, n in counts.items())
    more = ', ...' if len(keys) > max_listed else ''
    return f'[{modules}] e.g. ' + ', '.join(keys[:max_listed]) + more


def compare_state_dict_keys(model: torch.nn.Module,
                            state: dict,
                            source: str,
                            allow_partial: bool = False,
                            max_listed: int = 8,
                            what: str = 'test',
                            init_mask_modules: bool = False) -> None:
    """Refuse a state dict that does not fit ``model``.

    mmengine loads checkpoints non-strictly and only logs mismatches, so a
    checkpoint of another config (other backbone, other ``num_classes``, a
    ResNet state dict) would be used with randomly initialised layers. Every
    parameter and buffer of the model must be in ``state`` with the same
    shape; extra keys only produce a warning. ``module.`` prefixes (DDP) are
    ignored.

    Args:
        model (nn.Module): The model (a DDP wrapper is unwrapped).
        state (dict): The state dict (or a checkpoint holding
            ``state_dict``).
        source (str): What ``state`` came from (named in the messages).
        allow_partial (bool): Log missing / mis-shaped keys instead of
            raising (a partial load on purpose); a state that shares no key
            with the model still raises. Default: False.
        max_listed (int): How many offending keys a message names.
        what (str): The use ('test', 'load_from', 'resume'), for the advice
            in the message.
        init_mask_modules (bool): Let the LTM mask modules' weights
            (:class:`~mmltm.ops.TokenMerger`, ``GridTokenMerger``) be missing
            and keep their initial values, logged: a checkpoint trained
            without merging, evaluated with an LTM backbone. Every other key
            must still fit. Default: False.

    Raises:
        RuntimeError: naming the missing / mis-shaped keys.
    """
    from mmengine.model import is_model_wrapper
    if is_model_wrapper(model):
        model = model.module
    if isinstance(state, dict) and isinstance(state.get('state_dict'), dict):
        state = state['state_dict']
    if not isinstance(state, dict):
        raise RuntimeError(f'checkpoint {source} holds no state dict '
                           f'(got {type(state).__name__})')
    state = {
        (k[len('module.'):] if k.startswith('module.') else k): v
        for k, v in state.items()
    }
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    if init_mask_modules:
        from mmltm.ops.mask_module import GridTokenMerger, TokenMerger
        prefixes = tuple(f'{name}.' for name, m in model.named_modules()
                         if isinstance(m, (TokenMerger, GridTokenMerger)))
        kept = [k for k in missing if k.startswith(prefixes)] if prefixes else []
        if kept:
            print_log(f'{len(kept)} mask-module keys are not in {source}: they '
                      f'keep their initial values: {_listed(kept, max_listed)}',
                      logger='current', level=logging.WARNING)
            missing = [k for k in missing if not k.startswith(prefixes)]
    unexpected = sorted(set(state) - set(expected))
    mis_shaped = sorted(
        f'{k} {tuple(state[k].shape)} vs model {tuple(v.shape)}'
        for k, v in expected.items()
        if k in state and hasattr(state[k], 'shape')
        and tuple(state[k].shape) != tuple(v.shape))
    matching = len(expected) - len(missing) - len(mis_shaped)
    parts = []
    if missing:
        parts.append(f'{len(missing)} of the model\'s {len(expected)} keys '
                     f'are missing from it: {_listed(missing, max_listed)}')
    if mis_shaped:
        parts.append(f'{len(mis_shaped)} keys have another shape: '
                     f'{_listed(mis_shaped, max_listed)}')
    if unexpected:
        parts.append(f'it has {len(unexpected)} keys the model does not: '
                     f'{_listed(unexpected, max_listed)}')
    head = (f'checkpoint {source} does not match the model of this config '
            f'({type(model).__name__}): ')
    if (missing or mis_shaped) and (matching == 0 or not allow_partial):
        if matching == 0:
            advice = ('. Not one model key loads from it: is it a checkpoint '
                      'of another model?')
        elif what == 'load_from':
            advice = ('. Was it trained with another config? To load only '
                      'the matching keys on purpose, pass '
                      '--allow-partial-load (tools/train.py) or set '
                      'allow_partial_load = True in the config')
        else:
            advice = '. Was it trained with another config?'
        raise RuntimeError(head + '; '.join(parts) + advice)
    if parts:
        print_log(('partial load allowed: ' if missing or mis_shaped else '')
                  + head + '; '.join(parts),
                  logger='current',
                  level=logging.WARNING)


def check_checkpoint_keys(model: torch.nn.Module,
                          filename: str,
                          max_listed: int = 8,
                          init_mask_modules: bool = False) -> None:
    """Refuse to evaluate ``model`` with a checkpoint that does not fit it
    (see :func:`compare_state_dict_keys`; no partial loads).

    Args:
        model (nn.Module): The model (a DDP wrapper is unwrapped).
        filename (str): The checkpoint path or URL.
        max_listed (int): How many offending keys the message names.
        init_mask_modules (bool): Allow missing mask-module weights only
            (see :func:`compare_state_dict_keys`).

    Raises:
        RuntimeError: naming the missing / mis-shaped keys.
    """
    from mmengine.runner.checkpoint import _load_checkpoint
    checkpoint = _load_checkpoint(filename, map_location='cpu')
    compare_state_dict_keys(model, checkpoint, filename,
                            max_listed=max_listed, what='test',
                            init_mask_modules=init_mask_modules)


def scope_init(cfg: Config) -> str:
    """Make the config's library the default registry scope (what mmdet's
    ``register_all_modules`` / mmseg's do) and return its name."""
    from mmengine.registry import init_default_scope
    scope = task_of_config(cfg)
    init_default_scope(scope)
    return scope


__all__ = [
    'SUPPORTED_SCOPES', 'task_of_config', 'collect_data_roots',
    'check_data_roots', 'prepare_runner_cfg', 'init_cpu_dist', 'close_dist',
    'runner_for', 'scope_init', 'check_checkpoint_keys', 'compare_state_dict_keys'
]
