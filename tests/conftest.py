"""Shared fixtures: the real public data in ../shared/data (tests skip with a clear reason where it is absent)."""

from __future__ import annotations

import os
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
