"""LTMSwinTransformer as a drop-in in the configs that ship with mmdet and
mmseg: a user config inherits the installed config, adds
``custom_imports=dict(imports=['mmltm'])`` and changes the backbone ``type``
(plus, for a CPU test: no pretrained download, BN instead of SyncBN). The
model must build, train one step (loss + backward) and predict."""
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

import mmltm  # noqa: F401

DET_CONFIGS = [
    'mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py',
    'mmdet::swin/retinanet_swin-t-p4-w7_fpn_1x_coco.py',
]
SEG_CONFIG = ('mmseg::swin/swin-tiny-patch4-window7-in1k-pre_upernet_'
              '8xb2-160k_ade20k-512x512.py')


def user_config(tmp_path: Path, base: str, extra: str = '') -> Config:
    """Write the drop-in config a user would write, and load it."""
    path = tmp_path / 'dropin.py'
    path.write_text(
        f"_base_ = ['{base}']\n"
        'custom_imports = dict(imports=[\'mmltm\'], '
        'allow_failed_imports=False)\n'
        'model = dict(\n'
        '    backbone=dict(type=\'LTMSwinTransformer\', init_cfg=None)'
        f'{extra})\n')
    return Config.fromfile(str(path))


def build(cfg: Config):
    from mmengine.registry import MODELS
    init_default_scope(cfg.default_scope)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    assert type(model.backbone).__name__ == 'LTMSwinTransformer'
    return model


def train_step_and_predict(model, packed):
    model.train()
    data = model.data_preprocessor(packed, True)
    losses = model(**data, mode='loss')
    total, _ = model.parse_losses(losses)  # what the Runner optimises
    assert torch.isfinite(total)
    total.backward()
    grads = [
        p.grad for n, p in model.backbone.named_parameters()
        if p.requires_grad and p.grad is not None
    ]
    assert grads and any(g.abs().sum() > 0 for g in grads)
    model.eval()
    with torch.no_grad():
        return model(**model.data_preprocessor(packed, False), mode='predict')


@pytest.mark.parametrize('base', DET_CONFIGS)
def test_mmdet_swin_config_dropin(base, tmp_path):
    from mmdet.testing import demo_mm_inputs
    cfg = user_config(tmp_path, base)
    assert cfg.model.backbone.drop_path_rate == 0.2  # the rest is mmdet's
    model = build(cfg)
    with_mask = 'mask' in cfg.model.type.lower()
    packed = demo_mm_inputs(
        batch_size=1,
        image_shapes=[(3, 64, 96)],
        num_items=[2],
        num_classes=80,
        with_mask=with_mask)
    results = train_step_and_predict(model, packed)
    assert len(results) == 1
    pred = results[0].pred_instances
    assert pred.bboxes.shape[1] == 4
    if with_mask:
        assert 'masks' in pred


def test_mmseg_swin_upernet_config_dropin(tmp_path):
    from mmseg.structures import SegDataSample
    from mmengine.structures import PixelData
    cfg = user_config(
        tmp_path, SEG_CONFIG,
        extra=",\n    decode_head=dict(norm_cfg=dict(type='BN')),\n"
        "    auxiliary_head=dict(norm_cfg=dict(type='BN'))")
    assert cfg.model.backbone.drop_path_rate == 0.3  # the rest is mmseg's
    # small crops for a CPU test (the data preprocessor pads to this size)
    cfg.model.data_preprocessor.size = (64, 64)
    model = build(cfg)
    h, w = 64, 64
    inputs, samples = [], []
    gen = torch.Generator().manual_seed(0)
    for _ in range(2):
        inputs.append(torch.randint(0, 256, (3, h, w), generator=gen,
                                    dtype=torch.uint8))
        sample = SegDataSample(metainfo=dict(
            img_shape=(h, w), ori_shape=(h, w), pad_shape=(h, w)))
        sample.gt_sem_seg = PixelData(data=torch.randint(
            0, 150, (1, h, w), generator=gen))
        samples.append(sample)
    results = train_step_and_predict(
        model, dict(inputs=inputs, data_samples=samples))
    assert len(results) == 2
    assert results[0].pred_sem_seg.data.shape == (1, h, w)
