"""Every bundle's metadata.json verifies against MONAI's published bundle schema (the offline copy in
../shared/schemas, not a schema this project wrote), and every bundle ships the files the model-zoo layout expects.

This is model-zoo's ``verify_metadata_format``; its other CI checks are in ``test_bundle_zoo_checks.py``. A missing
schema fails (never skips) these tests. A bundle whose metadata does not verify is listed in
:data:`SCHEMA_FAILURES` with the error, as a strict expected failure (none today).
"""

from __future__ import annotations

import shutil

import pytest
from conftest import REPO

BUNDLES = sorted(p.name for p in (REPO / "bundles").iterdir() if (p / "configs" / "metadata.json").is_file())
PUBLISHED_SCHEMA = REPO.parent / "shared" / "schemas" / "meta_schema_20240725.json"
#: bundle -> "published schema: <exact error>" for a metadata.json that does not verify; fix the bundle, drop the entry.
SCHEMA_FAILURES: dict[str, str] = {}


def _cases():
    for name in BUNDLES:
        reason = SCHEMA_FAILURES.get(name)
        marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
        yield pytest.param(name, marks=marks, id=name)


def _published_schema(tmp_path) -> str:
    """A copy of MONAI's published schema in ``tmp_path`` (verify_metadata reads it); fails if the schema is absent."""
    if not PUBLISHED_SCHEMA.is_file():
        pytest.fail(
            f"MONAI's published metadata schema is missing: {PUBLISHED_SCHEMA} (see ../shared/schemas/README.md)",
            pytrace=False,
        )
    schema = tmp_path / "schema.json"
    shutil.copy(PUBLISHED_SCHEMA, schema)
    return str(schema)


def test_every_bundle_is_listed():
    assert {"vision_language_pretraining", "text_to_image_diffusion", "mae_pretraining"} <= set(BUNDLES)


@pytest.mark.parametrize("name", list(_cases()))
def test_bundle_metadata_verifies(name, tmp_path):
    from monai.bundle import verify_metadata

    root = REPO / "bundles" / name
    schema = _published_schema(tmp_path)
    verify_metadata(meta_file=str(root / "configs" / "metadata.json"), filepath=schema)  # raises on error
    for part in ("LICENSE", "docs/README.md", "configs/logging.conf"):
        assert (root / part).is_file(), f"{name}: {part} missing"


def test_published_schema_rejects_a_metadata_without_a_required_field(tmp_path):
    """The check can fail: a real bundle's metadata without ``network_data_format`` does not verify."""
    import json

    from monai.bundle import verify_metadata

    meta = json.loads((REPO / "bundles" / BUNDLES[0] / "configs" / "metadata.json").read_text())
    del meta["network_data_format"]
    (tmp_path / "metadata.json").write_text(json.dumps(meta))
    schema = _published_schema(tmp_path)
    with pytest.raises(Exception, match="network_data_format"):
        verify_metadata(meta_file=str(tmp_path / "metadata.json"), filepath=schema)
