"""Shared fixtures: the real public data in ../shared/data (tests skip with a clear reason where it is absent)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("SYNPRIV_DATA", REPO.parent / "shared" / "data"))
MULTICONTRAST = DATA / "mri_brain_multicontrast"
BUNDLE = REPO / "bundles" / "unpaired_translator"


def require(path: Path) -> Path:
    """Skip the calling test when a public data file is absent (outside this workspace, see docs/data.md)."""
    if not path.exists():
        pytest.skip(f"public data not found: {path} (set SYNPRIV_DATA or see docs/data.md)")
    return path


@pytest.fixture(scope="session")
def multicontrast_dir() -> Path:
    return require(MULTICONTRAST)


@pytest.fixture(scope="session")
def slice_datalist(tmp_path_factory, multicontrast_dir) -> Path:
    """The 2D translation datalist (T1c -> FLAIR) built once per session from the real volumes."""
    from monai_synpriv.data import prepare_multicontrast_slices

    cache = tmp_path_factory.mktemp("slices")
    return Path(prepare_multicontrast_slices(multicontrast_dir, cache))


def bundle(*args: str, cwd: Path = BUNDLE, check: bool = True) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.pop("MLFLOW_TRACKING_URI", None)
    proc = subprocess.run(
        [sys.executable, "-m", "monai.bundle", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"bundle command failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
        )
    return proc


def expr(path: Path) -> str:
    """``--output_dir`` given as an expression, so that MONAI logs the executed config to MLflow."""
    return f"$'{path}'"
