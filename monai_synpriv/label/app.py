"""The MONAI Label app: EXAMINE scoring + strategy on an encoder bundle, and the translator as an infer task.

Start it with ``monailabel start_server --app <dir> --studies <images> --conf encoder_bundle <path> ...`` where
``<dir>/main.py`` imports :class:`ExamineLabelApp` (``python -m monai_synpriv.label init-app <dir>`` writes it).
Conf keys (``--conf KEY VALUE``), all optional:

- ``encoder_bundle``: encoder bundle folder (default: the repository's ``bundles/mae_pretraining``);
- ``encoder_overrides``: JSON object of encoder config ids to override;
- ``encoder_config``: the encoder bundle's config file relative to it (default ``configs/inference.json``);
- ``encoder_allow_untrained`` (true/false, default false): score with an untrained encoder (a missing checkpoint
  otherwise stops the app at start-up, naming the file);
- ``examine_center``, ``examine_l2_normalize`` (true/false), ``examine_method`` (``exact``/``first_order``),
  ``examine_temperature``, ``examine_batch_size``: EXAMINE options (each also per request);
- ``translator_bundle``: translator bundle folder (default: the repository's ``bundles/unpaired_translator``;
  ``none`` leaves the infer task out);
- ``translator_overrides``: JSON object of translator config ids, merged over ``{"to_grayscale": true,
  "normalize_inputs": true}`` (datastore images are neither one-channel nor in [0, 1] in general);
- ``translator_allow_untrained`` (true/false, default false): run the translator without trained weights (tests).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from monailabel.interfaces.app import MONAILabelApp
from monailabel.interfaces.tasks.infer_v2 import InferTask
from monailabel.interfaces.tasks.scoring import ScoringMethod
from monailabel.interfaces.tasks.strategy import Strategy
from monailabel.tasks.activelearning.random import Random
from monailabel.utils.others.generic import strtobool

from monai_synpriv import __version__

from .infer import TranslatorInferTask
from .scoring import ExamineScoring
from .strategy import ExamineStrategy

__all__ = ["ExamineLabelApp", "REPO_BUNDLES"]

logger = logging.getLogger(__name__)

REPO_BUNDLES = Path(__file__).resolve().parents[2] / "bundles"
"""Where a source checkout keeps the bundles (absent in a plain wheel install: pass the conf keys then)."""

DEFAULT_TRANSLATOR_OVERRIDES = {"to_grayscale": True, "normalize_inputs": True}


def _json_conf(conf: dict[str, str], key: str, default: dict[str, Any]) -> dict[str, Any]:
    raw = conf.get(key)
    if raw is None:
        return dict(default)
    try:
        value = json.loads(raw)
    except ValueError as e:
        raise ValueError(f"--conf {key} must be a JSON object, got {raw!r}: {e}") from e
    if not isinstance(value, dict):
        raise ValueError(f"--conf {key} must be a JSON object, got {raw!r}.")
    return value


def _bundle_path(conf: dict[str, str], key: str, default: Path) -> Path | None:
    raw = conf.get(key)
    if raw is not None and raw.strip().lower() in ("", "none", "off"):
        return None
    path = Path(os.path.expanduser(raw)).resolve() if raw else default
    if not path.is_dir():
        how = f"--conf {key} {raw}" if raw else f"the default {default} (no --conf {key} given)"
        raise FileNotFoundError(f"MONAI Label app: bundle folder not found for {how}.")
    return path


class ExamineLabelApp(MONAILabelApp):
    """EXAMINE active learning on an encoder bundle, plus the translator bundle as a ``translation`` infer task.

    Scoring ``examine`` (:class:`ExamineScoring`), strategies ``examine`` (:class:`ExamineStrategy`) and ``random``,
    infer task ``translator`` (:class:`TranslatorInferTask`). Conf keys: see the module docstring.
    """

    def __init__(self, app_dir: str, studies: str, conf: dict[str, str]) -> None:
        conf = dict(conf or {})
        self.encoder_bundle = _bundle_path(conf, "encoder_bundle", REPO_BUNDLES / "mae_pretraining")
        if self.encoder_bundle is None:
            raise ValueError("MONAI Label app: EXAMINE needs an encoder bundle (--conf encoder_bundle <folder>).")
        self.translator_bundle = _bundle_path(conf, "translator_bundle", REPO_BUNDLES / "unpaired_translator")
        self.encoder_overrides = _json_conf(conf, "encoder_overrides", {})
        self.encoder_config = conf.get("encoder_config") or None
        self.encoder_allow_untrained = bool(strtobool(conf.get("encoder_allow_untrained", "false")))
        self.translator_overrides = {**DEFAULT_TRANSLATOR_OVERRIDES, **_json_conf(conf, "translator_overrides", {})}
        self.translator_allow_untrained = bool(strtobool(conf.get("translator_allow_untrained", "false")))
        self.examine_options = {
            "center": bool(strtobool(conf.get("examine_center", "false"))),
            "l2_normalize": bool(strtobool(conf.get("examine_l2_normalize", "false"))),
            "method": conf.get("examine_method", "exact"),
            "temperature": float(conf.get("examine_temperature", "1.0")),
        }
        self.examine_batch_size = int(conf.get("examine_batch_size", "16"))
        logger.info(
            f"EXAMINE app: encoder {self.encoder_bundle}, translator {self.translator_bundle}, "
            f"options {self.examine_options}"
        )
        super().__init__(
            app_dir=app_dir,
            studies=studies,
            conf=conf,
            name="monai_synpriv: EXAMINE + translator",
            description="Label first what EXAMINE ranks highest; synthesise the privileged modality",
            version=__version__,
        )

    def init_infers(self) -> dict[str, InferTask]:
        if self.translator_bundle is None:
            return {}
        return {
            "translator": TranslatorInferTask(
                self.translator_bundle,
                allow_untrained=self.translator_allow_untrained,
                overrides=self.translator_overrides,
            )
        }

    def init_strategies(self) -> dict[str, Strategy]:
        return {"examine": ExamineStrategy(scoring_name="examine"), "random": Random()}

    def init_scoring_methods(self) -> dict[str, ScoringMethod]:
        return {
            "examine": ExamineScoring(
                self.encoder_bundle,
                encoder_overrides=self.encoder_overrides,
                encoder_config=self.encoder_config,
                allow_untrained=self.encoder_allow_untrained,
                batch_size=self.examine_batch_size,
                **self.examine_options,
            )
        }
