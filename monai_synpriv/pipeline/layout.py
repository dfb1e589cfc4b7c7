"""Where the pipeline writes what: one object shared by the runner (which writes) and the report (which reads).

A run folder, from the first stage to the last::

    <out>/
      pipeline_state.json          stage status, run ids, input fingerprints
      mlruns.db, mlruns/           the embedded MLflow store and its artifacts (mlruns_offline.db: server fallback)
      cache/datalists/             prepare: downstream, privileged, authentic_pairs, paired_evaluation (.json)
      translator/models/model.pt   translator_train (translator/train/: its grids and logs)
      translator/evaluate/         translator_evaluate: metrics/translation_metrics.json, images/*.png
      synthesis/privileged/        synthesis: synthetic images + paired_datalist.json; synthesis/synthesis_grid.png
      synthesis/ssl_cache/, cache/ssl_images/, cache/probe_images/  preprocessed images shared by arms and seeds
      ssl/<arm>/seed<k>/           ssl_train: models/model.pt, train/; ssl_evaluate: evaluate/probes/*.json
      report/                      report: results.md, results.json, plots
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["DATALISTS", "RunLayout", "STATE_FILE"]

#: the pipeline's state file, in the run folder
STATE_FILE = "pipeline_state.json"
#: the datalists of the ``prepare`` stage (``cache/datalists/<name>.json``), see :mod:`monai_synpriv.pipeline.sources`
DATALISTS = ("downstream", "privileged", "authentic_pairs", "paired_evaluation")


@dataclass(frozen=True)
class RunLayout:
    """The paths of one pipeline run under ``out`` (no file is created here).

    Args:
        out: the run folder (``--output``).
    """

    out: Path

    # ------------------------------------------------------------------ run-wide
    @property
    def state_file(self) -> Path:
        return self.out / STATE_FILE

    @property
    def cache(self) -> Path:
        return self.out / "cache"

    @property
    def mlflow_db(self) -> Path:
        return self.out / "mlruns.db"

    @property
    def mlflow_fallback_db(self) -> Path:
        return self.out / "mlruns_offline.db"

    def datalist(self, name: str) -> Path:
        """One of :data:`DATALISTS`."""
        if name not in DATALISTS:
            raise KeyError(f"unknown datalist {name!r}; the pipeline writes {list(DATALISTS)}.")
        return self.cache / "datalists" / f"{name}.json"

    # ------------------------------------------------------------------ translator
    @property
    def translator(self) -> Path:
        return self.out / "translator"

    @property
    def translator_model(self) -> Path:
        return self.translator / "models" / "model.pt"

    @property
    def translator_evaluation(self) -> Path:
        return self.translator / "evaluate"

    @property
    def translation_metrics(self) -> Path:
        return self.translator_evaluation / "metrics" / "translation_metrics.json"

    @property
    def translation_grids(self) -> Path:
        return self.translator_evaluation / "images"

    # ------------------------------------------------------------------ synthesis
    @property
    def synthesis(self) -> Path:
        return self.out / "synthesis"

    @property
    def synthetic_dir(self) -> Path:
        return self.synthesis / "privileged"

    @property
    def paired_datalist(self) -> Path:
        return self.synthetic_dir / "paired_datalist.json"

    @property
    def synthesis_grid(self) -> Path:
        return self.synthesis / "synthesis_grid.png"

    def ssl_image_cache(self, pairs: str, content_digest: str) -> Path:
        """The preprocessed pre-training images of one kind of pairs (``downstream``, ``authentic``, ``synthetic``),
        shared by every arm and seed that reads them. MONAI's on-disk cache is keyed by path, not content, so the
        folder is named after the content digest of the datalist (:func:`~monai_synpriv.data.datalist_content_digest`):
        an image replaced under the same path gets a fresh cache. The synthetic ones live under ``synthesis/``, which
        goes with the images they were made from when the synthesis stage runs again."""
        root = self.synthesis / "ssl_cache" if pairs == "synthetic" else self.cache / "ssl_images"
        return root / f"{pairs}-{content_digest[:16]}"

    def probe_image_cache(self, content_digest: str) -> Path:
        """The preprocessed probe images of the downstream datalist with this content digest (see
        :meth:`ssl_image_cache`)."""
        return self.cache / "probe_images" / content_digest[:16]

    # ------------------------------------------------------------------ SSL arms
    def arm_dir(self, arm: str, seed: int) -> Path:
        return self.out / "ssl" / arm / f"seed{seed}"

    def encoder(self, arm: str, seed: int) -> Path:
        return self.arm_dir(arm, seed) / "models" / "model.pt"

    def probe_metrics(self, arm: str, seed: int) -> Path:
        return self.arm_dir(arm, seed) / "evaluate" / "probes" / "probe_metrics.json"

    def embedding_plot(self, arm: str, seed: int) -> Path:
        return self.arm_dir(arm, seed) / "evaluate" / "probes" / "embedding_tsne.png"

    # ------------------------------------------------------------------ report
    @property
    def report(self) -> Path:
        return self.out / "report"

    @property
    def results_md(self) -> Path:
        return self.report / "results.md"
