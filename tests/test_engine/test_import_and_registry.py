"""``import mmltm`` registers and does nothing else; registration never
shadows another library's name; the opt-in checkpoint fix."""
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, '-c', textwrap.dedent(code)],
                          cwd=REPO, capture_output=True, text=True,
                          timeout=300)


def test_import_has_no_side_effects_beyond_registration():
    """In a fresh process: ``import mmltm`` leaves torch.load and mmengine's
    local loader as they were and the toy generator unimported; the opt-in
    import installs the fix; no library name collides with an mmltm one."""
    proc = run_python('''
        import sys
        import torch
        from mmengine.runner.checkpoint import (CheckpointLoader,
                                                load_from_local)
        torch_load = torch.load
        loader = CheckpointLoader._get_checkpoint_loader('w/iter_2.pth')
        assert loader is load_from_local

        import mmltm
        assert 'mmltm.datasets.toy' not in sys.modules
        # mmltm.datasets itself only registers the Checked/Toy datasets
        from mmdet.registry import DATASETS
        assert 'ToyCocoDataset' in DATASETS.module_dict
        assert torch.load is torch_load
        assert CheckpointLoader._get_checkpoint_loader(
            'w/iter_2.pth') is load_from_local
        from mmltm.registry import registered_in
        assert set(registered_in('LTMSwinTransformer')) == {
            'mmltm', 'mmpretrain', 'mmdet', 'mmseg'}
        assert set(registered_in('CheckpointGuardHook', 'hook')) == {
            'mmltm', 'mmpretrain', 'mmdet', 'mmseg'}

        # the opt-in import (a config's custom_imports) installs the fix
        import mmltm.engine.checkpoint_fix
        from mmltm.engine.checkpoint import load_from_local as fixed
        assert CheckpointLoader._get_checkpoint_loader(
            'w/iter_2.pth') is fixed
        assert torch.load is torch_load  # torch itself is never patched
        # and the toy generator loads on first use only
        assert mmltm.datasets.make_toy_data is not None
        assert 'mmltm.datasets.toy' in sys.modules

        # all of mmdet's, mmseg's and mmpretrain's models and hooks imported
        # after mmltm: none registers a name mmltm registered (it would
        # raise), and each mmltm name resolves to the mmltm class there
        from mmltm.registry import HOOKS, MODELS, _library_registry
        for lib in ('mmdet', 'mmseg', 'mmpretrain'):
            for kind in ('model', 'hook'):
                _library_registry(lib, kind).import_from_location()
        names = 0
        for kind, local in (('model', MODELS), ('hook', HOOKS)):
            for name, cls in local.module_dict.items():
                for lib in ('mmdet', 'mmseg', 'mmpretrain'):
                    other = _library_registry(lib, kind).module_dict[name]
                    assert other is cls, (lib, name, other)
                names += 1
        assert 'EfficientViT' in MODELS.module_dict
        assert 'SimpleFeaturePyramid' in MODELS.module_dict
        print('checked', names)
    ''')
    assert proc.returncode == 0, proc.stderr[-3000:]
    last = proc.stdout.split()
    assert last[-2] == 'checked' and int(last[-1]) >= 10


def test_registering_an_existing_name_raises():
    from mmdet.registry import MODELS as DET_MODELS

    from mmltm.registry import (MODELS, RegistryCollisionError,
                                register_model)

    class TheirNeck:
        pass

    class OurNeck:
        pass

    name = 'MmltmTestCollidingNeck'
    DET_MODELS.register_module(name=name, module=TheirNeck)
    try:
        with pytest.raises(RegistryCollisionError) as err:
            register_model(name=name)(OurNeck)
        msg = str(err.value)
        assert msg.startswith(f'mmltm cannot register {__name__}.'
                              'test_registering_an_existing_name_raises.'
                              f'<locals>.OurNeck as {name!r} in the mmdet '
                              'model registry: it already holds')
        assert 'TheirNeck under that name, and mmltm never shadows' in msg
        # nothing was registered anywhere, and theirs is untouched
        assert name not in MODELS.module_dict
        assert DET_MODELS.module_dict[name] is TheirNeck
    finally:
        DET_MODELS.module_dict.pop(name, None)

    # the same class again (a re-import) is not a collision
    class Ours:
        pass

    key = 'MmltmTestReRegistered'
    try:
        register_model(name=key)(Ours)
        register_model(name=key)(Ours)
        assert DET_MODELS.module_dict[key] is Ours
        assert MODELS.module_dict[key] is Ours
    finally:
        for registry in (MODELS, DET_MODELS):
            registry.module_dict.pop(key, None)
        from mmltm.registry import _library_registry
        for lib in ('mmpretrain', 'mmseg'):
            reg = _library_registry(lib, 'model')
            if reg is not None:
                reg.module_dict.pop(key, None)


def test_registry_source_has_no_force():
    import re
    source = (REPO / 'mmltm' / 'registry.py').read_text()
    assert 'register_module(' in source
    assert not re.search(r'register_module\([^)]*force=True', source)
