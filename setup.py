"""Install mmvpeft: ``pip install -e ".[tests]"`` (see README for the pinned stack)."""
import os.path as osp

from setuptools import find_packages, setup

here = osp.dirname(osp.abspath(__file__))
version = {}
with open(osp.join(here, 'mmvpeft', 'version.py')) as f:
    exec(f.read(), version)

# Pins follow the measured facts in shared/docs/install.md: torch 2.14.1 + torchvision 0.29.1
# is the pair that imports as shipped on CPU; mmcv-lite provides the `mmcv` module without
# compiled ops (mmvpeft needs none); open_clip is pinned to the range whose
# ResidualAttentionBlock layout our adapters and token mixing are tested against.
install_requires = [
    'torch>=2.6,<=2.14.1',
    'torchvision>=0.21,<=0.29.1',
    'mmengine==0.10.7',
    'mmcv-lite==2.2.0',
    'open_clip_torch>=3.0,<3.4',
    'pot==0.9.7.post1',
    'decord==0.6.0',
    'numpy',
    'opencv-python',
    'tqdm',
]

with open(osp.join(here, 'README.md'), encoding='utf-8') as f:
    long_description = f.read()

setup(
    name='mmvpeft',
    version=version['__version__'],
    description='Parameter-efficient transfer from image-language to video-language models, '
                'on MMEngine (Token Mixing, READ + PVLA).',
    long_description=long_description,
    long_description_content_type='text/markdown',
    packages=find_packages(exclude=('tests', 'tests.*', 'configs', 'tools')),
    python_requires='>=3.9',
    install_requires=install_requires,
    extras_require={
        # tensorboard, gradio and selenium let the suite test the TensorBoard backend and
        # the web demo in headless Chromium (skipped without them); about 45 s and 315 MB
        # more to install, measured on a 2-core machine.
        'tests': ['pytest>=8', 'pytest-xdist>=3', 'pycocoevalcap>=1.2', 'rouge-score>=0.1.2',
                  'tensorboard>=2.12', 'gradio>=4', 'selenium>=4.11'],
        # captioning / summarization metrics (coco-caption; METEOR and the PTB
        # tokenizer use Java when it is installed)
        'caption': ['pycocoevalcap>=1.2'],
        # the optional web demo (tools/web_demo.py); not a core dependency
        'demo': ['gradio>=4'],
        # the TensorBoard backend of default_runtime.py's visualizer (one line to switch on)
        'tracking': ['tensorboard>=2.12']},
    license='Apache-2.0',
)
