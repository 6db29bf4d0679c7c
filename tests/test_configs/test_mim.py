"""OpenMMLab metadata and ``mim``: ``model-index.yml`` lists every config
under its OpenMMLab name with measured (never invented) figures, and an
installed mmltm package (``pip install .``: ``mmltm/.mim/`` carries the
configs, tools and model index) is what ``mim search`` and ``mim train``
read and run."""
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

from test_configs_build import ALIASES  # this folder (pytest's sys.path)

REPO = Path(__file__).resolve().parents[2]
MIM = Path(sys.executable).with_name('mim')


def metafile_models():
    """``{name: model entry}`` of every metafile model-index.yml imports."""
    index = yaml.safe_load((REPO / 'model-index.yml').read_text())
    models = {}
    for metafile in index['Import']:
        for model in yaml.safe_load((REPO / metafile).read_text())['Models']:
            assert model['Name'] not in models, model['Name']
            models[model['Name']] = dict(model, metafile=metafile)
    return models


def test_model_index_lists_every_config():
    models = metafile_models()
    configs = sorted(ALIASES.values())  # the 34 renamed real configs
    assert sorted(f"configs/{m['Config'][len('configs/'):]}"
                  for m in models.values()) == configs
    for name, model in models.items():
        config = Path(model['Config'])
        # mim's config id is the file name; the metafile sits next to it
        assert config.stem == name
        assert config.parent == Path(model['metafile']).parent
        # nothing trained at full size yet: no results, no weights
        assert 'Results' not in model and 'Weights' not in model, name
        meta = model['Metadata']
        if 'FLOPs' in meta:
            assert isinstance(meta['FLOPs'], int) and meta['FLOPs'] > 0
            assert isinstance(meta['Parameters'], int)
            assert meta['FLOPs input size'].count('x') == 1


def test_model_index_figures_are_the_readme_measurements():
    """Spot checks against get_flops.py's table (README, measured on main):
    the LTM / baseline FLOP ratio is the measured 0.826 for Swin-T."""
    models = metafile_models()
    ltm = models['ltm-swin-tiny_8xb128_in1k']['Metadata']['FLOPs']
    base = models['swin-tiny_8xb128_in1k']['Metadata']['FLOPs']
    assert (ltm, base) == (3_726_000_000, 4_509_000_000)
    assert round(ltm / base, 3) == 0.826


@pytest.fixture(scope='module')
def installed(tmp_path_factory):
    """mmltm installed from a copy of this checkout (``pip install
    --target``, no kernels: they are not what this tests), as a user's
    ``pip install .`` installs it; returns the environment that puts it
    first on the path."""
    root = tmp_path_factory.mktemp('mim')
    files = subprocess.run(
        ['git', 'ls-files', '-co', '--exclude-standard'], cwd=REPO,
        check=True, capture_output=True, text=True).stdout.split('\n')
    src = root / 'src'
    with tarfile.open(root / 'src.tar', 'w') as tar:
        for name in files:
            if name and not name.startswith('tests/') and (REPO /
                                                           name).exists():
                tar.add(REPO / name, arcname=name)
    with tarfile.open(root / 'src.tar') as tar:
        tar.extractall(src, filter='data')
    site = root / 'site'
    env = dict(os.environ, MMLTM_WITH_OPS='0')
    subprocess.run(
        [sys.executable, '-m', 'pip', 'install', '-q', '--no-deps',
         '--no-build-isolation', '--target', str(site), '.'],
        cwd=src, env=env, check=True)
    mim_dir = site / 'mmltm' / '.mim'
    assert (mim_dir / 'model-index.yml').is_file()
    assert (mim_dir / 'tools' / 'train.py').is_file()
    assert (mim_dir / 'configs' / 'toy' / '_base_' / 'toy_coco.py').is_file()
    env = dict(os.environ, PYTHONPATH=str(site))
    return dict(env=env, site=site, cwd=root)


@pytest.mark.slow
def test_mim_search_reads_model_index(installed):
    out = subprocess.run([str(MIM), 'search', 'mmltm'], env=installed['env'],
                         cwd=installed['cwd'], check=True,
                         capture_output=True, text=True).stdout
    ids = {line.split(':', 1)[1].strip() for line in out.splitlines()
           if line.startswith('config id:')}
    assert ids == set(metafile_models())


@pytest.mark.slow
def test_mim_train_runs_a_toy_config(installed):
    """``mim train mmltm <toy config>`` finds the config inside the
    installed package and trains it with mmltm's tools/train.py (which
    generates the toy data in the working directory): one epoch of one
    iteration (8 images), then its validation."""
    work_dir = installed['cwd'] / 'work_dir'
    result = subprocess.run(
        [str(MIM), 'train', 'mmltm', 'ltm_swin_t_in1k_toy.py', '--work-dir',
         str(work_dir), '--cfg-options', 'train_cfg.max_epochs=1',
         'train_dataloader.dataset.indices=8',
         'val_dataloader.dataset.indices=8'],
        env=installed['env'], cwd=installed['cwd'], capture_output=True,
        text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    site_config = (installed['site'] / 'mmltm' / '.mim' / 'configs' / 'toy' /
                   'ltm_swin_t_in1k_toy.py')
    assert os.path.realpath(site_config) in result.stdout
    assert 'Epoch(train) [1][1/1]' in result.stdout + result.stderr
    assert (work_dir / 'epoch_1.pth').is_file()
