"""MONAI Label app for monai_synpriv (optional extra ``label``, in its own environment: scripts/setup_label_env.sh).

- :class:`EncoderBundle` (from :mod:`monai_synpriv.assessment.embedding`, no MONAI Label needed) embeds images
  with any encoder bundle;
- :mod:`.scoring`: ``ExamineScoring``, a MONAI Label scoring method writing per-image EXAMINE scores;
- :mod:`.strategy`: ``ExamineStrategy``, the next image to label = the highest-scored unlabelled one;
- :mod:`.infer`: ``TranslatorInferTask``, the translator bundle as a ``translation`` infer task;
- :mod:`.app`: ``ExamineLabelApp``, the app wiring them (``python -m monai_synpriv.label init-app DIR``).

Importing this package needs neither ``monailabel`` nor torch: :class:`EncoderBundle` loads torch and MONAI on first
use; the other modules need ``monailabel``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

__all__ = ["EncoderBundle", "MAIN_PY", "UntrainedEncoderWarning", "find_bundle_config", "init_app_dir"]

MAIN_PY = '''"""MONAI Label app folder for monai_synpriv (written by `python -m monai_synpriv.label init-app`)."""

from monai_synpriv.label.app import ExamineLabelApp  # noqa: F401  (monailabel looks for this class here)
'''


def init_app_dir(app_dir: str | os.PathLike) -> Path:
    """Make ``app_dir`` a MONAI Label app folder (``main.py`` importing :class:`ExamineLabelApp`) and return it.

    ``monailabel start_server`` creates ``model/``, ``lib/``, ``logs/`` and ``bin/`` inside the app folder, so the
    app lives in a folder of your choice rather than inside the installed package.
    """
    path = Path(app_dir)
    path.mkdir(parents=True, exist_ok=True)
    main = path / "main.py"
    if not main.is_file() or main.read_text() != MAIN_PY:
        main.write_text(MAIN_PY)
    return path


def __getattr__(name: str) -> Any:  # the embedding code imports torch and MONAI: only when asked for
    if name in ("EncoderBundle", "UntrainedEncoderWarning", "find_bundle_config"):
        from ..assessment import embedding

        return getattr(embedding, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
