"""monai_synpriv: synthetic privileged information and friends, as MONAI components and bundles."""

import shutil
from pathlib import Path

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).parent
#: what a bundle folder holds that is not the bundle (weights, outputs, caches): not shipped
_NOT_SHIPPED = ("*.pt", "*.ts", "eval", "cache", "outputs", "mlruns*", "__pycache__", "*.pyc")


class BuildWithBundles(build_py):
    """``pip install .`` (not editable) ships ``bundles/`` and ``configs/pipeline/`` inside the package, as
    ``monai_synpriv/_shipped/{bundles,profiles}`` (found by :mod:`monai_synpriv.locations`)."""

    def run(self) -> None:
        super().run()
        target = Path(self.build_lib) / "monai_synpriv" / "_shipped"
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(HERE / "bundles", target / "bundles", ignore=shutil.ignore_patterns(*_NOT_SHIPPED))
        shutil.copytree(HERE / "configs" / "pipeline", target / "profiles")

version = {}
exec((HERE / "monai_synpriv" / "_version.py").read_text(), version)

setup(
    name="monai_synpriv",
    version=version["__version__"],
    description=(
        "MONAI components and bundles for synthetic privileged information: unpaired translation, "
        "multimodal self-supervised learning, synthetic vision-language pre-training, EXAMINE and contrastive "
        "autoencoder clustering."
    ),
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["monai_synpriv", "monai_synpriv.*"]),
    include_package_data=True,
    package_data={"monai_synpriv": ["resources/*.json"]},
    # Ranges, never a build: GPU users keep their own CUDA torch (see docs/installation.md).
    install_requires=[
        "torch>=2.8",
        "monai[fire,ignite,nibabel,jsonschema,einops]>=1.6.1",
        "pytorch-ignite>=0.5",
        "nibabel>=5",
        "itk-io>=5.3",
        "pydicom>=2.4",
        "mlflow>=3.15",
        "numpy>=1.24",
        "scipy>=1.10",
        "scikit-learn>=1.3",
        "pillow>=10",
        "matplotlib>=3.7",
        "tqdm>=4.60",
        "pandas>=2",
        # vision-language pre-training: tokenizers (fitted or pretrained) and BERT weights; never `transformers`
        # (MONAI imports it eagerly when installed, seconds per process). Pretrained text weights: see setup_env.sh.
        "tokenizers>=0.15",
        "safetensors>=0.4",
    ],
    extras_require={
        "test": ["pytest>=8", "pytest-xdist>=3"],
        "itk": ["itk>=5.3"],
        # MONAI Label app (monai_synpriv.label): its own environment, scripts/setup_label_env.sh installs it
        # (torch + a matching torchvision first); monailabel 0.8.5 breaks with pydicom 3 and needs numpy<2.
        "label": [
            "monailabel==0.8.5",
            "pydicom>=2.4,<3",
            "dicomweb-client<0.60",
            "pynetdicom<3",
            "numpy>=1.24,<2",
        ],
    },
    entry_points={"console_scripts": ["monai-synpriv=monai_synpriv.cli:main"]},
    cmdclass={"build_py": BuildWithBundles},
    classifiers=[
        "Programming Language :: Python :: 3",
        "License :: OSI Approved :: Apache Software License",
        "Topic :: Scientific/Engineering :: Medical Science Apps.",
    ],
)
