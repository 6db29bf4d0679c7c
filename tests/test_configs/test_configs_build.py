"""Every config in configs/ parses and builds its model and its optimizer
(no weight decay on the mask modules); LTM configs differ from their
baseline in the backbone only; toy configs match the toy data; the old
config names are aliases of the renamed configs."""
import copy
import re
from functools import lru_cache
from pathlib import Path
from typing import Dict, Optional, Tuple

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

import mmltm  # noqa: F401
from mmltm.engine import check_data_roots, collect_data_roots

REPO = Path(__file__).resolve().parents[2]
#: every config file (not the ``_base_`` pieces), relative to the repo
ALL_CONFIGS = sorted(
    str(p.relative_to(REPO)) for p in (REPO / 'configs').rglob('*.py')
    if '_base_' not in p.parts)


def alias_target(path: str) -> Optional[str]:
    """The config an alias (an old config name kept for documented
    commands: a comment and ``_base_ = ['./<new name>.py']``) stands for,
    relative to the repo; ``None`` for a config that is no alias."""
    text = (REPO / path).read_text()
    code = [line for line in text.splitlines() if not line.startswith('#')]
    match = re.fullmatch(r"_base_ = \['\./([\w./-]+\.py)'\]", '\n'.join(code))
    if match is None:
        return None
    return str((REPO / path).parent.joinpath(match.group(1)).resolve()
               .relative_to(REPO))


ALIASES = {
    path: alias_target(path)
    for path in ALL_CONFIGS if alias_target(path) is not None
}
#: the configs proper (aliases resolve to one of them)
CONFIGS = [path for path in ALL_CONFIGS if path not in ALIASES]

# (LTM config, its baseline): each comparison must be one backbone diff
PAIRS = [(f'configs/{ltm}.py', f'configs/{base}.py') for ltm, base in [
    ('ltm_swin/mask-rcnn_ltm-swin-t-p4-w7_fpn_1x_coco',
     'ltm_swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco'),
    ('ltm_swin/mask-rcnn_ltm-swin-t-p4-w7_fpn_amp-ms-crop-3x_coco',
     'ltm_swin/mask-rcnn_swin-t-p4-w7_fpn_amp-ms-crop-3x_coco'),
    ('ltm_swin/mask-rcnn_ltm-swin-s-p4-w7_fpn_amp-ms-crop-3x_coco',
     'ltm_swin/mask-rcnn_swin-s-p4-w7_fpn_amp-ms-crop-3x_coco'),
    ('ltm_swin/upernet_ltm-swin-t_8xb2-160k_ade20k-512x512',
     'ltm_swin/upernet_swin-t_8xb2-160k_ade20k-512x512'),
    ('ltm_swin/upernet_ltm-swin-s_8xb2-160k_ade20k-512x512',
     'ltm_swin/upernet_swin-s_8xb2-160k_ade20k-512x512'),
]]
# (toy LTM config, toy baseline, the real LTM config it mirrors)
TOY_PAIRS = [(f'configs/toy/{ltm}.py', f'configs/toy/{base}.py',
              f'configs/{real}.py') for ltm, base, real in [
    ('mask_rcnn_ltm_swin_t_toy', 'mask_rcnn_swin_t_toy',
     'ltm_swin/mask-rcnn_ltm-swin-t-p4-w7_fpn_1x_coco'),
    ('upernet_ltm_swin_t_toy', 'upernet_swin_t_toy',
     'ltm_swin/upernet_ltm-swin-t_8xb2-160k_ade20k-512x512'),
    ('mask_rcnn_ltm_swin_t_coco_shapes_toy', 'mask_rcnn_swin_t_coco_shapes_toy',
     'ltm_swin/mask-rcnn_ltm-swin-t-p4-w7_fpn_1x_coco'),
    ('upernet_ltm_swin_t_ade_shapes_toy', 'upernet_swin_t_ade_shapes_toy',
     'ltm_swin/upernet_ltm-swin-t_8xb2-160k_ade20k-512x512'),
]]
# the keys an LTM config may change relative to its baseline
LTM_KEYS = {
    'custom_imports', 'ltm_pretrained', 'model.backbone.type',
    'model.backbone.compression_ratio', 'model.backbone.convert_weights',
    'model.backbone.init_cfg'
}
TOY_LTM_KEYS = {
    'custom_imports', 'model.backbone.type', 'model.backbone.compression_ratio'
}


@lru_cache(maxsize=None)
def _load(path: str) -> Config:
    return Config.fromfile(str(REPO / path))


def load(path: str) -> Config:
    """The config at ``path`` (a fresh copy of a cached parse)."""
    return copy.deepcopy(_load(path))


def flatten(obj, prefix=''):
    """{'a.b.c': leaf} for nested dicts (lists are leaves)."""
    if isinstance(obj, dict):
        out = {}
        for key, value in obj.items():
            out.update(flatten(value, f'{prefix}{key}.'))
        return out
    return {prefix[:-1]: obj}


# dict-valued settings that are compared as a whole
WHOLE = ('custom_imports', 'model.backbone.init_cfg')


def diff_keys(a, b):
    """The (flattened) config keys whose values differ between a and b."""
    fa, fb = flatten(a.to_dict()), flatten(b.to_dict())
    changed = set()
    for key in fa.keys() | fb.keys():
        if fa.get(key, ...) != fb.get(key, ...):
            changed.add(next((w for w in WHOLE if key.startswith(w + '.')),
                             key))
    return changed


def test_all_configs_found():
    swin_dense = {a for pair in PAIRS for a in pair}
    swin_dense |= {a for pair in TOY_PAIRS for a in pair[:2]}
    assert len(swin_dense) == 18 and swin_dense <= set(CONFIGS)
    # 34 real configs under their OpenMMLab names, each with its old name
    real = [p for p in CONFIGS if '/toy/' not in p]
    assert len(real) == 34 and sorted(ALIASES.values()) == sorted(real)
    assert all(p.count('/') == 1 for p in ALIASES)  # configs/<old name>.py


@pytest.mark.parametrize('alias', sorted(ALIASES))
def test_old_name_is_alias_of_new_name(alias):
    """`tools/train.py configs/<old name>.py` runs the renamed config:
    the alias resolves to the same config, key by key."""
    target = ALIASES[alias]
    assert target in CONFIGS
    assert load(alias).to_dict() == load(target).to_dict()


#: the package each default scope builds its models from
SCOPE_PACKAGES = {
    'mmdet': 'mmdet', 'mmseg': 'mmseg', 'mmpretrain': 'mmpretrain'
}


def build_model(cfg: Config):
    """The config's model, built by the registry of its default scope (the
    model only: no ``init_weights``, so no checkpoint is read)."""
    import importlib
    scope = cfg.default_scope
    assert scope in SCOPE_PACKAGES, scope
    init_default_scope(scope)
    registry = importlib.import_module(
        f'{SCOPE_PACKAGES[scope]}.registry').MODELS
    model = registry.build(cfg.model)
    # the library's own registry knows the model's class under its type
    assert registry.get(cfg.model.type) is type(model)
    return model


def param_groups(model, optim_wrapper: dict) -> Dict[str, Tuple[float,
                                                                 float]]:
    """``{name: (lr, weight_decay)}`` of every trainable parameter in the
    optimizer that mmengine builds from ``optim_wrapper`` for ``model``.

    ``AmpOptimWrapper`` needs a GPU to be built; the parameter groups come
    from the optimizer-wrapper constructor alone, so it is built as a plain
    ``OptimWrapper`` here (same ``optimizer`` and ``paramwise_cfg``).
    """
    from mmengine.optim import build_optim_wrapper
    optim_wrapper = copy.deepcopy(optim_wrapper)
    if optim_wrapper.get('type') == 'AmpOptimWrapper':
        optim_wrapper['type'] = 'OptimWrapper'
        for amp_only in ('loss_scale', 'dtype', 'use_fsdp'):
            optim_wrapper.pop(amp_only, None)
    optimizer = build_optim_wrapper(model, optim_wrapper).optimizer
    settings = {}
    for group in optimizer.param_groups:
        for param in group['params']:
            settings[id(param)] = (group['lr'], group['weight_decay'])
    return {
        name: settings[id(param)]
        for name, param in model.named_parameters() if param.requires_grad
    }


def without_token_merger_key(optim_wrapper: dict) -> dict:
    """``optim_wrapper`` without the shared mask-module rule."""
    optim_wrapper = copy.deepcopy(optim_wrapper)
    custom_keys = optim_wrapper['paramwise_cfg']['custom_keys']
    del custom_keys['token_merger']
    return optim_wrapper


@pytest.mark.parametrize('path', CONFIGS)
def test_config_builds_model_and_optimizer(path):
    """Every config builds its model as it is (no overrides) and its
    optimizer: every mask-module (``token_merger``) parameter in a group
    with weight decay 0 at the recipe's lr, every other parameter exactly
    where the recipe alone puts it."""
    cfg = load(path)
    model = build_model(cfg)
    is_ltm = 'ltm' in Path(path).name
    if cfg.default_scope in ('mmdet', 'mmseg'):
        # dense baselines keep the libraries' own backbones
        assert type(model.backbone).__name__.startswith('LTM') == is_ltm
    if is_ltm:
        # mmltm, and the checkpoint-loading fix for other entry points
        assert cfg.custom_imports == dict(
            imports=['mmltm', 'mmltm.engine.checkpoint_fix'], allow_failed_imports=False)

    # the shared rule of configs/_base_/ltm_paramwise.py, in every config
    rule = cfg.optim_wrapper.paramwise_cfg.custom_keys['token_merger']
    assert rule == dict(decay_mult=0.0)
    groups = param_groups(model, cfg.optim_wrapper)
    recipe = param_groups(model, without_token_merger_key(cfg.optim_wrapper))
    merger = sorted(name for name in groups if 'token_merger' in name)
    ratio = cfg.model.backbone.get('compression_ratio', 1.0)  # LTM-Swin: maybe per stage
    # (the dense shapes probes freeze the whole backbone, mask modules too)
    frozen = cfg.model.backbone.get('frozen_stages', -1) >= len(
        cfg.model.backbone.get('depths', [0] * 4))
    if is_ltm and not frozen and min(
            ratio if isinstance(ratio, (list, tuple)) else [ratio]) < 1.0:
        assert merger, f'{path}: no trainable mask-module parameter found'
    for name, (lr, weight_decay) in groups.items():
        if name in merger:
            assert weight_decay == 0.0, (name, weight_decay)
            assert lr == recipe[name][0], (name, lr, recipe[name])
        else:
            assert (lr, weight_decay) == recipe[name], name
    n_params = sum(p.numel() for p in model.parameters()) / 1e6
    print(f'\n{path}: {type(model).__name__}, {n_params:.1f} M params, '
          f'{len(merger)} mask-module parameters')


def test_mask_module_would_be_decayed_without_the_rule():
    """What the shared rule prevents (issue 11): with the recipe's own
    paramwise settings alone, mmengine decays mask-module parameters."""
    cfg = load('configs/toy/ltm_swin_t_in1k_toy.py')
    model = build_model(cfg)
    recipe = param_groups(model, without_token_merger_key(cfg.optim_wrapper))
    decayed = [n for n, (_, wd) in recipe.items()
               if 'token_merger' in n and wd > 0]
    assert decayed
    assert all(recipe[n][1] == cfg.optim_wrapper.optimizer.weight_decay
               for n in decayed)


@pytest.mark.parametrize('ltm,base', PAIRS)
def test_ltm_config_is_one_backbone_diff(ltm, base):
    ltm_cfg, base_cfg = load(ltm), load(base)
    changed = diff_keys(ltm_cfg, base_cfg)
    assert changed <= LTM_KEYS, changed - LTM_KEYS
    backbone = ltm_cfg.model.backbone
    assert backbone.type == 'LTMSwinTransformer'
    # mmdet's converter is for official Swin keys; ours must not be renamed
    assert backbone.convert_weights is False
    assert backbone.init_cfg.type == 'Pretrained'
    assert backbone.init_cfg.checkpoint == ltm_cfg.ltm_pretrained
    assert backbone.init_cfg.checkpoint.startswith('work_dirs/ltm-swin-')


@pytest.mark.parametrize('toy_ltm,toy_base,real_ltm', TOY_PAIRS)
def test_toy_swap_equals_real_swap(toy_ltm, toy_base, real_ltm):
    toy_ltm_cfg, real_cfg = load(toy_ltm), load(real_ltm)
    assert diff_keys(toy_ltm_cfg, load(toy_base)) <= TOY_LTM_KEYS
    for key in ('type', 'compression_ratio'):
        assert toy_ltm_cfg.model.backbone[key] == real_cfg.model.backbone[key]


def test_real_recipes():
    """Spot checks against the published mmdet / mmseg recipes."""
    det = load('configs/mask_rcnn_ltm_swin_t_coco.py')
    assert det.optim_wrapper.optimizer.type == 'AdamW'
    assert det.optim_wrapper.optimizer.lr == 1e-4
    assert det.optim_wrapper.optimizer.weight_decay == 0.05
    assert det.train_cfg.max_epochs == 12
    assert det.model.neck.in_channels == [96, 192, 384, 768]
    assert det.model.backbone.depths == [2, 2, 6, 2]
    det3x = load('configs/mask_rcnn_ltm_swin_t_3x_coco.py')
    assert det3x.train_cfg.max_epochs == 36
    assert det3x.optim_wrapper.type == 'AmpOptimWrapper'
    assert det3x.train_dataloader.dataset.pipeline[3].type == 'RandomChoice'
    dets = load('configs/mask_rcnn_ltm_swin_s_3x_coco.py')
    assert dets.model.backbone.depths == [2, 2, 18, 2]
    seg = load('configs/upernet_ltm_swin_t_ade20k.py')
    assert seg.train_cfg.max_iters == 160000
    assert seg.optim_wrapper.optimizer.lr == 6e-5
    assert seg.crop_size == (512, 512)
    assert seg.model.decode_head.num_classes == 150
    assert seg.model.decode_head.norm_cfg.type == 'SyncBN'
    segs = load('configs/upernet_ltm_swin_s_ade20k.py')
    assert segs.model.backbone.depths == [2, 2, 18, 2]


def test_toy_configs_match_toy_data():
    from mmltm.datasets.toy import (TOY_COCO_CLASSES, TOY_COCO_PALETTE,
                                    TOY_SCENE_COCO_CLASSES,
                                    TOY_SCENE_COCO_PALETTE,
                                    TOY_SCENE_SEG_CLASSES,
                                    TOY_SCENE_SEG_PALETTE, TOY_SEG_CLASSES,
                                    TOY_SEG_PALETTE)
    det = [(name, None, TOY_COCO_CLASSES, TOY_COCO_PALETTE) for name in (
        'mask_rcnn_swin_t_toy', 'mask_rcnn_ltm_swin_t_toy')]
    det += [(name, 'coco_shapes', TOY_SCENE_COCO_CLASSES,
             TOY_SCENE_COCO_PALETTE) for name in (
                 'mask_rcnn_swin_t_coco_shapes_toy',
                 'mask_rcnn_ltm_swin_t_coco_shapes_toy')]
    for name, toy_set, classes, palette in det:
        cfg = load(f'configs/toy/{name}.py')
        assert cfg.metainfo.classes == classes
        assert [tuple(c) for c in cfg.metainfo.palette] == [
            tuple(c) for c in palette
        ]
        assert cfg.model.roi_head.bbox_head.num_classes == len(classes)
        assert cfg.model.roi_head.mask_head.num_classes == len(classes)
        assert cfg.val_evaluator.metric == ['bbox', 'segm']
        assert cfg.train_cfg.type == 'IterBasedTrainLoop'
        assert cfg.model.backbone.init_cfg is None
        root = f"data/toy/{toy_set or 'coco'}/"
        assert cfg.val_evaluator.ann_file == \
            root + 'annotations/instances_val.json'
        for loader in ('train_dataloader', 'val_dataloader',
                       'test_dataloader'):
            dataset = cfg[loader].dataset
            assert dataset.data_root == root
            assert dataset.get('toy_set') == toy_set
            assert dataset.metainfo == cfg.metainfo
    seg = [(name, None, TOY_SEG_CLASSES, TOY_SEG_PALETTE) for name in (
        'upernet_swin_t_toy', 'upernet_ltm_swin_t_toy')]
    seg += [(name, 'ade_shapes', TOY_SCENE_SEG_CLASSES,
             TOY_SCENE_SEG_PALETTE) for name in (
                 'upernet_swin_t_ade_shapes_toy',
                 'upernet_ltm_swin_t_ade_shapes_toy')]
    for name, toy_set, classes, palette in seg:
        cfg = load(f'configs/toy/{name}.py')
        assert cfg.metainfo.classes == classes
        assert [tuple(c) for c in cfg.metainfo.palette] == [
            tuple(c) for c in palette
        ]
        for head in (cfg.model.decode_head, cfg.model.auxiliary_head):
            assert head.num_classes == len(classes)
            assert head.norm_cfg.type == 'BN'
        assert cfg.val_evaluator.type == 'IoUMetric'
        assert cfg.model.backbone.init_cfg is None
        for loader in ('train_dataloader', 'val_dataloader',
                       'test_dataloader'):
            dataset = cfg[loader].dataset
            assert dataset.data_root == f"data/toy/{toy_set or 'ade'}"
            assert dataset.get('toy_set') == toy_set
            assert dataset.metainfo == cfg.metainfo
    for path in CONFIGS:
        if '/toy/' in path:
            cfg = load(path)
            roots = collect_data_roots(cfg, 'train') + collect_data_roots(
                cfg, 'test')
            assert roots and all(
                root.startswith(cfg.toy_data_root + '/')
                for _, root, _ in roots), roots


def test_missing_toy_data_error(tmp_path):
    cfg = load('configs/toy/mask_rcnn_swin_t_toy.py')
    root = str(tmp_path / 'toy')
    cfg.toy_data_root = root
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].dataset.data_root = root + '/coco/'
    with pytest.raises(FileNotFoundError) as err:
        check_data_roots(cfg, 'train', make_toy=False)
    msg = str(err.value)
    assert f'data root {root}/coco/ not found' in msg
    assert 'make_toy_data' in msg


def test_unknown_backbone_arg_is_named():
    from mmengine.registry import MODELS
    cfg = load('configs/toy/upernet_ltm_swin_t_toy.py')
    cfg.model.backbone.compresion_ratio = 0.5  # typo on purpose
    init_default_scope('mmseg')
    with pytest.raises(TypeError, match='compresion_ratio'):
        MODELS.build(cfg.model)


def test_toy_models_forward():
    """The toy models run on one image of the toy size (the tools tests
    cover the full pipeline)."""
    from mmengine.registry import MODELS
    cfg = load('configs/toy/upernet_ltm_swin_t_toy.py')
    init_default_scope('mmseg')
    model = MODELS.build(cfg.model).eval()
    with torch.no_grad():
        out = model(torch.rand(1, 3, 128, 128), mode='tensor')
    assert out.shape == (1, 4, 32, 32)


def test_toy_det_backbone_loads_toy_cls_checkpoint(tmp_path):
    """The ImageNet -> COCO hand-over of the real recipe, at toy size: a
    checkpoint of the LTM-Swin classification toy config, saved as the
    Runner saves it (meta with a message hub, so the torch >= 2.6 loading
    fix is exercised too), initialises the toy Mask R-CNN's backbone
    through ``init_cfg=dict(type='Pretrained', prefix='backbone.')``."""
    from mmengine.logging import MessageHub
    from mmengine.registry import MODELS
    from mmengine.runner.checkpoint import save_checkpoint
    cls_cfg = load('configs/toy/ltm_swin_t_in1k_toy.py')
    init_default_scope('mmpretrain')
    torch.manual_seed(1)
    classifier = MODELS.build(cls_cfg.model)
    hub = MessageHub.get_instance('toy_cls_ckpt')
    hub.update_scalar('train/loss', 1.0)
    path = str(tmp_path / 'epoch_10.pth')
    save_checkpoint(
        dict(meta=dict(epoch=10, message_hub=hub.state_dict()),
             state_dict=classifier.state_dict()), path)

    det_cfg = load('configs/toy/mask_rcnn_ltm_swin_t_toy.py')
    real = load('configs/mask_rcnn_ltm_swin_t_coco.py').model.backbone.init_cfg
    det_cfg.model.backbone.init_cfg = dict(real, checkpoint=path)
    init_default_scope('mmdet')
    torch.manual_seed(2)
    detector = MODELS.build(det_cfg.model)
    # the tools install the torch >= 2.6 loading fix (import mmltm does not)
    from mmltm.engine import (checkpoint_fix_installed,
                              install_checkpoint_fix,
                              uninstall_checkpoint_fix)
    was_installed = checkpoint_fix_installed()
    install_checkpoint_fix()
    try:
        detector.init_weights()
    finally:
        if not was_installed:
            uninstall_checkpoint_fix()
    det_state = detector.backbone.state_dict()
    cls_state = {
        k[len('backbone.'):]: v
        for k, v in classifier.state_dict().items()
        if k.startswith('backbone.')
    }
    shared = set(det_state) & set(cls_state)
    # everything but the detector's per-stage output norms comes from it
    assert set(det_state) - shared <= {
        k for k in det_state if k.startswith('norm')
    }
    for key in shared:
        assert torch.equal(det_state[key], cls_state[key]), key


@pytest.mark.parametrize('size', ['t', 's', 'b'])
def test_ltm_swin_imagenet_configs_use_the_arch_default_ratio(size):
    """The ImageNet configs train at the ratio the backbone documents for
    their arch (the one that reproduces the paper's FLOP ratio)."""
    from mmltm.models.backbones.ltm_swin import (DEFAULT_COMPRESSION_RATIO,
                                                 LTMSwinTransformer)
    backbone = Config.fromfile(
        str(REPO / f'configs/ltm_swin_{size}_8xb128_in1k.py')).model.backbone
    arch = LTMSwinTransformer._arch_alias.get(backbone.arch, backbone.arch)
    assert backbone.compression_ratio == DEFAULT_COMPRESSION_RATIO[arch]


#: the toy ImageNet configs: the four baselines set
#: ``find_unused_parameters=True`` before (issue 11), the LTM ones have the
#: mask modules; the dense toy models are checked under DDP by
#: tests/test_engine/test_ddp*.py (one LTM model whose last stage cannot
#: merge), which is slower
TOY_CLS_CONFIGS = [p for p in CONFIGS if p.endswith('_in1k_toy.py')]


@pytest.mark.parametrize('path', TOY_CLS_CONFIGS)
def test_toy_model_trains_every_parameter(path):
    """One training step of each toy ImageNet model gives every trainable
    parameter a gradient, so the toy configs train under DDP with mmengine's
    default ``find_unused_parameters=False`` (no config sets it any more)."""
    from mmpretrain.structures import DataSample
    cfg = load(path)
    assert 'find_unused_parameters' not in cfg
    torch.manual_seed(0)
    model = build_model(cfg).train()
    images = torch.rand(2, 3, 112, 112)  # the toy crop size
    samples = [DataSample().set_gt_label(label) for label in (0, 3)]
    total, _ = model.parse_losses(model(images, samples, mode='loss'))
    total.backward()
    unused = [
        name for name, param in model.named_parameters()
        if param.requires_grad and param.grad is None
    ]
    assert not unused, f'{path}: no gradient for {unused}'
