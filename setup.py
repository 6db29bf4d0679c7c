"""mmltm: Learnable Token Merging vision transformers for OpenMMLab.

``pip install --no-build-isolation -e .`` also compiles the CPU kernels of
the mask module (``mmltm/ops/csrc``, about a minute); they need torch at
build time, hence no build isolation. ``MMLTM_WITH_OPS=0`` skips them, and
so does a build without torch: mmltm then runs its PyTorch reference code
(and says so once at inference).

The package also carries what OpenMMLab's ``mim`` reads from an installed
codebase: ``mmltm/.mim/`` with ``configs/``, ``tools/`` and
``model-index.yml`` (symlinks in an editable install, copies in a wheel or
sdist; see :func:`add_mim_extension`), so that ``mim search mmltm`` lists
the models and ``mim train mmltm <config>`` / ``mim test`` run them.
"""
import os
import re
import shutil
import sys
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent


def kernel_build():
    """``(ext_modules, cmdclass)`` for the compiled kernels, or empty ones."""
    if os.environ.get('MMLTM_WITH_OPS', '1') == '0':
        print('mmltm: MMLTM_WITH_OPS=0, not building the kernels', file=sys.stderr)
        return [], {}
    try:
        from torch.utils.cpp_extension import BuildExtension, CppExtension
    except ImportError:
        print('mmltm: torch is not importable at build time (build isolation?); '
              'not building the kernels. Use `pip install --no-build-isolation -e .`',
              file=sys.stderr)
        return [], {}
    ext = CppExtension(
        'mmltm._ext', ['mmltm/ops/csrc/token_merging_cpu.cpp'],
        # -fopenmp: ATen's parallel_for is OpenMP in its headers (without the
        # flag the kernels run on one thread), and `omp simd` vectorises the
        # per-channel reductions
        extra_compile_args=['-O3', '-fopenmp'], extra_link_args=['-fopenmp'])
    base = BuildExtension.with_options(use_ninja=False)

    class OptionalBuildExtension(base):
        """A failed kernel build (no compiler, unsupported flags) does not
        fail the install: it is reported here and, at inference, once more."""

        def run(self):
            try:
                super().run()
            except Exception as err:  # noqa: BLE001 (any compiler failure)
                print(f'mmltm: WARNING: could not build the kernels ({err}); mmltm '
                      'will run its PyTorch reference code', file=sys.stderr)

    return [ext], {'build_ext': OptionalBuildExtension}


#: what ``mim`` expects in ``<package>/.mim`` (as mmdet / mmseg ship it)
MIM_FILES = ('configs', 'tools', 'model-index.yml')


def add_mim_extension() -> None:
    """Put ``configs/``, ``tools/`` and ``model-index.yml`` into the package
    as ``mmltm/.mim/``: symlinks to the originals for an editable install
    (``pip install -e .``: edits to configs are seen at once), copies for a
    wheel, sdist or plain install. Other setup.py commands (metadata only,
    egg_info, clean) leave the tree alone."""
    commands = set(sys.argv[1:])
    if commands & {'develop', 'editable_wheel'}:
        mode = 'symlink'
    elif commands & {'sdist', 'bdist_wheel', 'build', 'build_py', 'install'}:
        mode = 'copy'
    else:
        return
    mim_root = HERE / 'mmltm' / '.mim'
    mim_root.mkdir(exist_ok=True)
    for name in MIM_FILES:
        src, dst = HERE / name, mim_root / name
        if dst.is_symlink() or dst.is_file():
            dst.unlink()
        elif dst.is_dir():
            shutil.rmtree(dst)
        if mode == 'symlink':
            dst.symlink_to(os.path.relpath(src, mim_root))
        elif src.is_dir():
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns(
                '__pycache__', '*.pyc'))
        else:
            shutil.copyfile(src, dst)


EXT_MODULES, CMDCLASS = kernel_build()
VERSION = re.search(r"__version__ = '([^']+)'",
                    (HERE / 'mmltm' / 'version.py').read_text()).group(1)

add_mim_extension()
setup(
    name='mmltm',
    version=VERSION,
    description='Learnable Token Merging (LTM) vision transformers for '
                'mmpretrain, mmdet and mmseg',
    long_description=(HERE / 'README.md').read_text(encoding='utf-8'),
    long_description_content_type='text/markdown',
    python_requires='>=3.9',
    packages=find_packages(exclude=('tests', 'tests.*', 'configs', 'tools')),
    include_package_data=True,
    # mim's view of the codebase (add_mim_extension; MANIFEST.in for sdists)
    package_data={'mmltm': ['.mim/model-index.yml', '.mim/configs/**/*.py',
                            '.mim/configs/**/*.yml', '.mim/tools/**/*.py',
                            '.mim/tools/**/*.sh']},
    ext_modules=EXT_MODULES,
    cmdclass=CMDCLASS,
    install_requires=[
        # torch / torchvision come first (tools/setup_env.sh), and mmcv with
        # its compiled ops is built by tools/install_mmcv.sh: pip cannot
        # build mmcv 2.1.0 for torch 2.14 unaided.
        'torch>=2.0',
        'torchvision',
        'mmengine==0.10.7',
        'mmcv==2.1.0',
        'mmdet==3.3.0',
        'mmsegmentation==1.2.2',
        'mmpretrain==1.2.0',
        'numpy',
        'opencv-python',
        'pycocotools',
        'ftfy',
        'regex',
        'matplotlib',
    ],
    extras_require={
        'tests': ['pytest', 'pytest-timeout', 'openmim'],
        'mim': ['openmim'],
    },
    license='Apache-2.0',
    classifiers=[
        'Programming Language :: Python :: 3',
        'Topic :: Scientific/Engineering :: Artificial Intelligence',
    ],
)
