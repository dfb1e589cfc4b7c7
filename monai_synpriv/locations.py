"""Where the package finds its bundles and pipeline profiles: a source checkout, or the copy shipped in the wheel.

``pip install -e .`` (a checkout) uses ``bundles/`` and ``configs/pipeline/`` of the checkout; ``pip install .``
ships a copy of both inside the package (``monai_synpriv/_shipped/``, written by ``setup.py``). ``SYNPRIV_BUNDLES``
and ``SYNPRIV_PROFILES`` point at other folders (a site's own copies of the bundles, say); the pipeline's
``--bundles_dir`` and a profile given as a path override all of these.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["bundles_dir", "profiles_dir"]

_PACKAGE = Path(__file__).resolve().parent
_CHECKOUT = _PACKAGE.parent
_SHIPPED = _PACKAGE / "_shipped"


def _find(env: str, checkout: Path, shipped: Path, marker: str) -> Path:
    if os.environ.get(env):
        return Path(os.environ[env])
    for candidate in (checkout, shipped):
        if any(candidate.glob(marker)):
            return candidate
    raise FileNotFoundError(
        f"no {checkout.name} folder found: neither {checkout} (a source checkout) nor {shipped} (a `pip install .` "
        f"of monai_synpriv) holds {marker}. Reinstall the package, or set {env} to the folder."
    )


def bundles_dir() -> Path:
    """The folder holding the bundles (``unpaired_translator``, ``multimodal_ssl``, ...)."""
    return _find("SYNPRIV_BUNDLES", _CHECKOUT / "bundles", _SHIPPED / "bundles", "*/configs/metadata.json")


def profiles_dir() -> Path:
    """The folder holding the pipeline profiles (``quick.json``, ``tiny.json``, ``full.json``, ...)."""
    return _find("SYNPRIV_PROFILES", _CHECKOUT / "configs" / "pipeline", _SHIPPED / "profiles", "*.json")
