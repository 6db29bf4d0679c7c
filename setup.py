"""mmltm: Learnable Token Merging vision transformers for OpenMMLab."""
import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
VERSION = re.search(r"__version__ = '([^']+)'",
                    (HERE / 'mmltm' / 'version.py').read_text()).group(1)

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
        'tests': ['pytest', 'pytest-timeout'],
    },
    license='Apache-2.0',
    classifiers=[
        'Programming Language :: Python :: 3',
        'Topic :: Scientific/Engineering :: Artificial Intelligence',
    ],
)
