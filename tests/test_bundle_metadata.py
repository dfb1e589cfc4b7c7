"""Every bundle's metadata.json verifies against the MONAI bundle schema (vendored: no download), and every bundle
ships the files the model-zoo layout expects."""

from __future__ import annotations

import shutil

import pytest
from conftest import REPO

BUNDLES = sorted(p.name for p in (REPO / "bundles").iterdir() if (p / "configs" / "metadata.json").is_file())


def test_every_bundle_is_listed():
    assert {"vision_language_pretraining", "text_to_image_diffusion", "mae_pretraining"} <= set(BUNDLES)


@pytest.mark.parametrize("name", BUNDLES)
def test_bundle_metadata_verifies(name, tmp_path):
    from monai.bundle import verify_metadata

    root = REPO / "bundles" / name
    schema = tmp_path / "schema.json"
    shutil.copy(REPO / "monai_synpriv" / "resources" / "meta_schema.json", schema)
    verify_metadata(meta_file=str(root / "configs" / "metadata.json"), filepath=str(schema))  # raises on error
    for part in ("LICENSE", "docs/README.md", "configs/logging.conf"):
        assert (root / part).is_file(), f"{name}: {part} missing"
