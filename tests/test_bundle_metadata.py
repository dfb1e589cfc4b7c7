"""Every bundle's metadata.json verifies against MONAI's published bundle schema (the offline copy in
../shared/schemas, not a schema this project wrote), and every bundle ships the files the model-zoo layout expects."""

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
    published = REPO.parent / "shared" / "schemas" / "meta_schema_20240725.json"
    assert published.is_file(), f"MONAI's published metadata schema is missing: {published} (see its README)"
    shutil.copy(published, schema)
    verify_metadata(meta_file=str(root / "configs" / "metadata.json"), filepath=str(schema))  # raises on error
    for part in ("LICENSE", "docs/README.md", "configs/logging.conf"):
        assert (root / part).is_file(), f"{name}: {part} missing"


def test_published_schema_rejects_a_metadata_without_a_required_field(tmp_path):
    """The check can fail: a real bundle's metadata without ``network_data_format`` does not verify."""
    import json

    from monai.bundle import verify_metadata

    meta = json.loads((REPO / "bundles" / BUNDLES[0] / "configs" / "metadata.json").read_text())
    del meta["network_data_format"]
    (tmp_path / "metadata.json").write_text(json.dumps(meta))
    shutil.copy(REPO.parent / "shared" / "schemas" / "meta_schema_20240725.json", tmp_path / "schema.json")
    with pytest.raises(Exception, match="network_data_format"):
        verify_metadata(meta_file=str(tmp_path / "metadata.json"), filepath=str(tmp_path / "schema.json"))
