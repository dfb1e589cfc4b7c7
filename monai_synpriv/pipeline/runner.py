"""
The main job: the synthetic-privileged-information experiment end to end, driving the bundles through
``monai.bundle``'s Python API.

Stages (each writes files that the next one reads, each logs into its own MLflow run nested under one parent run):

1. ``prepare``: the downstream labelled set (brain-tumour MRI, leak-free test split), the multi-contrast slices
   (subject split) and the authentic (T1c, privileged) pairs of the training subjects;
2. ``translator_train``: the unpaired translator from the downstream training images (domain A) to the privileged
   contrast of the multi-contrast set (domain B);
3. ``translator_evaluate``: its quality on the aligned pairs of the held-out multi-contrast subject;
4. ``synthesis``: the privileged modality for every downstream training image, and the paired datalist;
5. ``ssl_train/<arm>/seed<k>`` and ``ssl_evaluate/<arm>/seed<k>``: every arm, same budget, every seed; frozen
   primary encoder probed on the clean test split (plus a randomly initialised encoder per seed);
6. ``report``: results table, plots and aggregated metrics in the parent run.

A stage whose outputs exist is skipped, so a re-run after an interruption continues where it stopped (training
stages also resume from their last checkpoint).
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from monai.utils import optional_import

from ..data import datalist_content_digest
from ..locations import bundles_dir
from ..utils import architecture_path
from ..utils.io import sha256_file, write_json_atomic
from .arms import RANDOM_INIT, Arm, get_arms
from .layout import RunLayout
from .profile import TRANSLATOR_CONFIGS, load_profile, profile_digest
from .report import write_report
from .sources import data_source, prepare_data, source_paths
from .stages import STAGES, Stage, stage_group
from .tracking import TAG_PREFIX, PipelineTracker

tqdm, has_tqdm = optional_import("tqdm", name="tqdm")

__all__ = ["PipelineError", "STAGES", "SynPrivPipeline", "default_bundles_dir", "default_data_root"]

logger = logging.getLogger(__name__)

#: profile section -> (bundle, configs its keys override)
_SECTION_CONFIGS: dict[str, tuple[str, list[str]]] = {
    "translator_train": ("unpaired_translator", ["train.json"]),
    "translator_net": ("unpaired_translator", ["train.json", "inference.json"]),
    "translator_evaluate": ("unpaired_translator", ["evaluate.json"]),
    "synthesis": ("unpaired_translator", ["inference.json"]),
    "ssl_train": ("multimodal_ssl", ["train.json"]),
    "ssl_evaluate": ("multimodal_ssl", ["evaluate.json"]),
}


def section_config_files(profile: dict[str, Any], section: str) -> tuple[str, list[list[str]]]:
    """The bundle of a profile section and the config-file groups its overrides go to, each group merged as the
    stage merges it (``configs/<file>`` names): the translator's training files follow ``translator_method``, and
    its evaluate.json is an overlay on inference.json."""
    bundle, configs = _SECTION_CONFIGS[section]
    groups: list[list[str]] = []
    for cfg in configs:
        if bundle == "unpaired_translator" and cfg == "train.json":
            groups.append(list(TRANSLATOR_CONFIGS[profile.get("translator_method", "cyclegan")]))
        elif bundle == "unpaired_translator" and cfg == "evaluate.json":
            groups.append(["inference.json", cfg])
        else:
            groups.append([cfg])
    return bundle, groups


class PipelineError(RuntimeError):
    """A stage failed, or the output folder belongs to another profile; the message names the stage or file."""


def default_bundles_dir() -> Path:
    """The bundles: ``bundles/`` of a source checkout, the copy shipped in the package, or ``$SYNPRIV_BUNDLES``
    (:func:`monai_synpriv.locations.bundles_dir`)."""
    return bundles_dir()


def default_data_root() -> Path:
    """``../shared/data`` beside the source tree (the public data of this project), or ``$SYNPRIV_DATA``."""
    env = os.environ.get("SYNPRIV_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[3] / "shared" / "data"


def _expr_path(path: Path | str) -> str:
    """A path as a MONAI config expression (``"$'/abs/path'"``): MONAI's tracking patch needs ``output_dir`` so."""
    return f"${str(Path(path).absolute())!r}"


class SynPrivPipeline:
    """
    Runs the experiment of ``profile`` into ``output_dir``.

    Args:
        profile: a profile name under ``configs/pipeline`` (``quick``, ``full``, ``tiny``), a JSON path or a dict.
        output_dir: everything goes here: ``cache/``, ``translator/``, ``synthesis/``, ``ssl/<arm>/seed<k>/``,
            ``report/``, ``pipeline_state.json`` and, by default, the MLflow store ``mlruns.db``.
        data_root: folder holding the public sets (default :func:`default_data_root`); a profile's ``data`` paths
            are relative to it unless absolute.
        bundles_dir: folder holding ``unpaired_translator`` and ``multimodal_ssl``.
        tracking_uri: MLflow tracking URI (default ``sqlite:///<output_dir>/mlruns.db``).
        experiment_name: MLflow experiment of the parent and stage runs.
        device: ``cpu``, ``cuda``, ``cuda:1``... (default: each bundle's choice, CUDA when available).
        progress: show a progress bar over the stages.
        until: stop after this stage (one of :data:`STAGES`; ``ssl`` = every SSL training and evaluation), to run
            the experiment stage by stage; a later call continues from there.
        translator_weights: generator weights (a state dict, e.g. ``translator/models/model.pt`` of another run, or
            one exported from a training checkpoint by :mod:`monai_synpriv.pipeline.fidelity`) to use instead of
            training a translator: the ``translator_train`` stage then imports them (with their
            ``<name>.network.json`` architecture record when there is one). They must match ``translator_net``.
        overrides: profile keys to set, e.g. ``{"data.contrast_b": "t2f"}`` (FLAIR as the privileged modality); see
            :func:`monai_synpriv.pipeline.profile.apply_overrides`.
    """

    def __init__(
        self,
        profile: str | os.PathLike | dict,
        output_dir: str | os.PathLike,
        data_root: str | os.PathLike | None = None,
        bundles_dir: str | os.PathLike | None = None,
        tracking_uri: str | None = None,
        experiment_name: str = "synpriv_pipeline",
        device: str | None = None,
        progress: bool = True,
        until: str | None = None,
        translator_weights: str | os.PathLike | None = None,
        overrides: dict[str, Any] | None = None,
    ) -> None:
        if until is not None and until not in STAGES:
            raise ValueError(f"until must be one of {list(STAGES)}, got {until!r}.")
        self.until = until
        self.profile = load_profile(profile, overrides)
        self.out = Path(output_dir).absolute()
        self.data_root = Path(data_root or default_data_root()).absolute()
        self.bundles = Path(bundles_dir or default_bundles_dir()).absolute()
        self.translator_weights = Path(translator_weights).absolute() if translator_weights is not None else None
        #: every path of the run (shared with the report)
        self.layout = RunLayout(self.out)
        self.tracking_uri = tracking_uri or f"sqlite:///{self.layout.mlflow_db}"
        self.experiment_name = experiment_name
        self.device = device
        self.progress = progress
        data = self.profile["data"]
        self.source = data_source(data)
        self.data_paths = source_paths(data, self.data_root)
        self.has_authentic = self.source == "public" or "authentic_pairs" in data
        self.has_paired_evaluation = self.source == "public" or "paired_evaluation" in data
        arms = get_arms(self.profile["arms"])
        #: arms that need authentic pairs the data does not have: not run, said in the log and the report
        self.arms_not_run = [a.name for a in arms if a.pairs == "authentic" and not self.has_authentic]
        self.arms: list[Arm] = [a for a in arms if a.name not in self.arms_not_run]
        self.seeds: list[int] = list(self.profile["seeds"])
        self.cache = self.layout.cache
        self.state: dict[str, Any] = {}
        self.tracker: PipelineTracker | None = None
        self._check_inputs()
        self._check_overrides()
        # what the results depend on: the profile, the data used and the bundle configs that ran
        configs = sorted(
            {f"{b}/{c}" for b, groups in map(lambda k: section_config_files(self.profile, k), _SECTION_CONFIGS)
             for g in groups for c in g}
        )  # fmt: skip
        self.digest = profile_digest(
            self.profile,
            extra={
                **{k: str(p.resolve()) for k, p in self.data_paths.items()},
                "configs": {
                    c: sha256_file(self.bundles / c.split("/")[0] / "configs" / c.split("/")[1]) for c in configs
                },
                **({"translator_weights": str(self.translator_weights)} if self.translator_weights else {}),
            },
        )
        self._check_output_dir()

    # ------------------------------------------------------------------ checks and state
    def _check_inputs(self) -> None:
        """Fail before any long work: missing data or bundles, an output folder made by another profile."""
        if self.translator_weights is not None and not self.translator_weights.is_file():
            raise FileNotFoundError(
                f"translator_weights {self.translator_weights} is not a file: give the generator's state dict (e.g. "
                "translator/models/model.pt of another run), or leave it out to train a translator."
            )
        if self.source == "public":
            mc, ds = self.data_paths["multicontrast_dir"], self.data_paths["downstream_dir"]
            if not mc.is_dir():
                raise FileNotFoundError(
                    f"multi-contrast MRI folder not found: {mc} (profile data.multicontrast_dir, data root "
                    f"{self.data_root}; see docs/data.md)."
                )
            if not (ds / "brain_tumor_mri_224.tar").is_file():
                raise FileNotFoundError(
                    f"downstream set not found: {ds / 'brain_tumor_mri_224.tar'} (profile data.downstream_dir; see "
                    "docs/data.md)."
                )
        for key, path in self.data_paths.items() if self.source == "user" else ():
            want_dir = key.endswith(".folder")
            if not (path.is_dir() if want_dir else path.is_file()):
                raise FileNotFoundError(
                    f"profile data.{key}: {'folder' if want_dir else 'file'} {path} not found (relative paths are "
                    f"read against the data root {self.data_root}, --data_root)."
                )
        for bundle in ("unpaired_translator", "multimodal_ssl"):
            if not (self.bundles / bundle / "configs" / "metadata.json").is_file():
                raise FileNotFoundError(f"bundle {bundle} not found under {self.bundles} (bundles_dir).")

    def _check_overrides(self) -> None:
        """Every key of the profile's override sections must be an id (nested ids with ``#``) or a component argument
        of the bundle configs it goes to, merged as the stage merges them: a misspelt key would otherwise be a silent
        no-op (:func:`monai_synpriv.bundle_checks.check_override_keys`, the bundles' own check, names close matches)."""
        from ..bundle_checks import check_override_keys

        for section in _SECTION_CONFIGS:
            if not self.profile[section]:
                continue
            bundle, groups = section_config_files(self.profile, section)
            for group in groups:
                check_override_keys(
                    [str(self.bundles / bundle / "configs" / f) for f in group],
                    self.profile[section],
                    origin=f"profile {self.profile['name']!r} section {section!r}",
                )

    def _check_output_dir(self) -> None:
        state_path = self.layout.state_file
        if state_path.is_file():
            self.state = json.loads(state_path.read_text())
            if self.state.get("profile_digest") != self.digest:
                raise PipelineError(
                    f"{self.out} holds a run of another profile, other data or other bundle configs (digest "
                    f"{self.state.get('profile_digest')}, profile {self.state.get('profile', {}).get('name')!r}); "
                    f"this run's digest is {self.digest}. Use another output folder, or delete that one: skipping its "
                    "finished stages would mix results."
                )
        self.state.setdefault("stages", {})
        self.state["profile_digest"] = self.digest
        self.state["profile"] = self.profile

    def _save_state(self) -> None:
        write_json_atomic(self.layout.state_file, self.state)

    def _stage_state(self, key: str) -> dict:
        return self.state["stages"].setdefault(key, {})

    # ------------------------------------------------------------------ running bundles
    def _common(self) -> dict[str, Any]:
        return {"device": f"$torch.device({self.device!r})"} if self.device else {}

    def _run_bundle(
        self,
        key: str,
        bundle: str,
        configs: Sequence[str],
        overrides: dict[str, Any],
        tags: dict[str, Any] | None = None,
    ) -> str:
        """Run one bundle workflow in this process, logging into the stage's nested MLflow run; returns its id."""
        assert self.tracker is not None
        st = self._stage_state(key)
        run_id, run_name = self.tracker.stage_run(key, st.get("run_id"), tags)
        st.update(run_id=run_id, status="running")
        self._save_state()
        root = self.bundles / bundle
        files = [str(root / "configs" / c) for c in configs]
        # monai.bundle.run drops keyword overrides whose value is None: pass None as the expression "$None"
        overrides = {k: ("$None" if v is None else v) for k, v in {**self._common(), **overrides}.items()}
        self.tracker.log_params(run_id, {f"override.{k}": v for k, v in overrides.items()})
        from monai.bundle import run as bundle_run

        bundle_run(
            config_file=files if len(files) > 1 else files[0],
            meta_file=str(root / "configs" / "metadata.json"),
            logging_file=str(root / "configs" / "logging.conf"),
            tracking=str(root / "configs" / "mlflow_tracking.json"),
            bundle_root=str(root),
            tracking_uri=self.tracker.tracking_uri,  # the fallback store once a remote server has failed
            experiment_name=self.experiment_name,
            run_name=run_name,
            **overrides,
        )
        return run_id

    @staticmethod
    def _fingerprint(inputs: Sequence[Path]) -> dict[str, str | None]:
        """SHA-256 of each input file (None: missing), and for a datalist JSON also of the content of every image it
        lists (:func:`datalist_content_digest`), so that a stage reruns when what it was built from changed, an
        image replaced under the same path included."""
        out: dict[str, str | None] = {}
        for p in inputs:
            p = Path(p)
            out[str(p)] = sha256_file(p) if p.is_file() else None
            if p.is_file() and p.suffix == ".json":
                out[f"{p}:images"] = datalist_content_digest(p)
        return out

    def _stage(
        self,
        key: str,
        outputs: Sequence[Path],
        fn: Callable[[], str | None],
        bar: Any = None,
        inputs: Sequence[Path] = (),
        clean: Sequence[Path] = (),
        always: bool = False,
    ) -> str | None:
        """Run ``fn`` unless it finished before, its ``outputs`` all exist and its ``inputs`` are unchanged (same
        SHA-256: e.g. a retrained translator reruns synthesis and everything downstream). A finished stage that must
        run again first deletes its ``clean`` folders (old checkpoints would otherwise be resumed); an interrupted
        one keeps them and resumes. Records time, status, run id and input fingerprints; a failure (or an
        interruption) marks the stage's MLflow run FAILED (KILLED). An ``always`` stage (``prepare``: cheap, and the
        only one that reads the user's files directly) runs every time, in its MLflow run, and says whether its
        outputs changed."""
        assert self.tracker is not None
        st = self._stage_state(key)
        t0 = time.time()
        fingerprint = self._fingerprint(inputs)
        if always:
            before = self._fingerprint(outputs) if st.get("status") == "done" else None
            run_id = fn()
            st.update(status="done", run_id=run_id, outputs=[str(p) for p in outputs])
            st["seconds"] = round(time.time() - t0, 1)
            self._save_state()
            self.tracker.finish(run_id)
            verb = (
                "up to date (datalists unchanged)"
                if before == self._fingerprint(outputs)
                else f"done in {time.time() - t0:.0f} s"
            )
        elif (
            outputs
            and all(Path(p).exists() for p in outputs)
            and st.get("status") == "done"
            and st.get("inputs", {}) == fingerprint
        ):
            verb = "skipped (outputs exist)"
            self.tracker.close_if_open(st.get("run_id"))  # finished while a tracking server was away
        else:
            if st.get("status") == "done":  # finished before, but its inputs changed or an output was deleted
                for path in clean:
                    shutil.rmtree(path, ignore_errors=True)
                st.pop("run_id", None)  # a fresh MLflow run for the new result
            st.pop("seconds", None)
            try:
                run_id = fn()
            except BaseException as e:
                st["status"] = "failed"
                self._save_state()
                if st.get("run_id"):
                    self.tracker.finish(st["run_id"], "FAILED" if isinstance(e, Exception) else "KILLED")
                if isinstance(e, Exception) and not isinstance(e, PipelineError):
                    from ..bundle_checks import fault_message

                    # the root cause, not MONAI's "Failed to evaluate ConfigExpression" wrapper around it
                    cause = fault_message(e) or f"{type(e).__name__}: {e}"
                    raise PipelineError(f"stage {key!r} failed: {cause}") from e
                raise
            if run_id:
                st["run_id"] = run_id
                self.tracker.finish(run_id)
            st.update(
                status="done",
                seconds=round(time.time() - t0, 1),
                outputs=[str(p) for p in outputs],
                inputs=fingerprint,
            )
            self._save_state()
            verb = f"done in {st['seconds']:.0f} s"
        msg = f"[pipeline] {key}: {verb}"
        if bar is not None:
            bar.write(msg)
            bar.update(1)
        else:
            print(msg, flush=True)
        return st.get("run_id")

    # ------------------------------------------------------------------ stages
    def prepare(self) -> str:
        """The four datalists every later stage reads (:mod:`monai_synpriv.pipeline.sources`): the user's data, or the
        public sets exported the same way; counts, split level and dropped duplicates go to the state and MLflow."""
        assert self.tracker is not None
        st = self._stage_state("prepare")
        run_id, _ = self.tracker.stage_run("prepare", st.get("run_id"), reopen=True)
        st.update(run_id=run_id, status="running")
        self._save_state()
        datalists = prepare_data(self.profile["data"], self.data_root, self.cache)
        counts: dict[str, int] = {}
        for name, path in datalists.items():
            if path is None:
                continue
            d = json.loads(Path(path).read_text())
            counts.update(
                {f"{name}_{k}": len(v) for k, v in d.items() if isinstance(v, list) and v and isinstance(v[0], dict)}
            )
        down = json.loads(Path(datalists["downstream"]).read_text())  # type: ignore[arg-type]
        dropped = down.get("dropped", {}).get("identical_to_earlier_split", {})
        counts.update({f"dropped_identical_{k}": len(v) for k, v in dropped.items()})
        self.tracker.log_params(
            run_id,
            {
                **{f"datalist_{k}": v for k, v in datalists.items()},
                "data_source": self.source,
                "split_level": down["params"]["split_level"],
                "classes": down["classes"],
            },
        )
        self.tracker.log_metrics(run_id, {f"count_{k}": v for k, v in counts.items()})
        self.state["datalists"] = datalists
        self.state["counts"] = counts
        self.state["data_root"] = str(self.data_root)
        self.state["data"] = {
            "source": self.source,
            "split_level": down["params"]["split_level"],
            "subject_key": down["params"]["subject_key"],
            "split": down["params"]["split"],
            "classes": down["classes"],
            "dropped_identical": {k: len(v) for k, v in dropped.items()},
            "arms_not_run": self.arms_not_run,
            "translator_scored": self.has_paired_evaluation,
        }
        return run_id

    def _translator_common(self) -> dict[str, Any]:
        data = self.profile["data"]
        return {
            "cache_dir": str(self.cache),
            "ckpt_dir": str(self.layout.translator_model.parent),
            "contrast_a": data["contrast_a"],
            "contrast_b": data["contrast_b"],
            "to_grayscale": True,
            "normalize_inputs": True,
            "crop_size": None,
            **self.profile["translator_net"],
        }

    def translator_train(self) -> str:
        overrides = {
            **self._translator_common(),
            "datalist_a": self.state["datalists"]["downstream"],
            "section_a": "training",
            "source_key_a": "image",
            "datalist_b": self.state["datalists"]["privileged"],
            "section_b": "training",
            "source_key_b": "image",
            "output_dir": _expr_path(self.layout.translator / "train"),
            "resume": True,
            **self.profile["translator_train"],
        }
        configs = list(TRANSLATOR_CONFIGS[self.profile["translator_method"]])
        return self._run_bundle("translator_train", "unpaired_translator", configs, overrides)

    def translator_import(self) -> str:
        """The ``translator_train`` stage when ``translator_weights`` is given: copy the weights (and their
        architecture record) to where the later stages read the translator, and record where they came from."""
        from ..utils.io import atomic_path

        assert self.tracker is not None and self.translator_weights is not None
        st = self._stage_state("translator_train")
        run_id, _ = self.tracker.stage_run("translator_train", st.get("run_id"))
        st.update(run_id=run_id, status="running")
        self._save_state()
        dst = self.layout.translator_model
        dst.parent.mkdir(parents=True, exist_ok=True)
        record = architecture_path(self.translator_weights)
        for src, out in ((self.translator_weights, dst), (record, architecture_path(dst))):
            if src.is_file():
                with atomic_path(out) as tmp:
                    shutil.copyfile(src, tmp)
        self.tracker.log_params(
            run_id,
            {"translator_weights": str(self.translator_weights), "translator_weights_sha256": sha256_file(dst)},
        )
        return run_id

    def translator_evaluate(self) -> str:
        overrides = {
            **self._translator_common(),
            "output_dir": _expr_path(self.layout.translator_evaluation),
            "input_datalist": self.state["datalists"]["paired_evaluation"],
            "input_section": "validation",
            "eval_section": "validation",
            "input_key": "A",
            "contrast_b_key": "B",
            **self.profile["translator_evaluate"],
        }
        tags = {f"{TAG_PREFIX}translator_run_id": self.state["stages"]["translator_train"].get("run_id")}
        return self._run_bundle(
            "translator_evaluate", "unpaired_translator", ["inference.json", "evaluate.json"], overrides, tags
        )

    def synthesis(self) -> str:
        translator_run = self.state["stages"]["translator_train"].get("run_id")
        out = self.layout.synthesis
        overrides = {
            **self._translator_common(),
            "input_datalist": self.state["datalists"]["downstream"],
            "input_section": "training",
            "input_key": "image",
            "max_items": self.profile["data"]["max_downstream"],
            "output_dir": _expr_path(out),
            "synthetic_dir": str(self.layout.synthetic_dir),
            "translator_run_id": translator_run,
            **self.profile["synthesis"],
        }
        tags = {f"{TAG_PREFIX}translator_run_id": translator_run}
        run_id = self._run_bundle("synthesis", "unpaired_translator", ["inference.json"], overrides, tags)
        assert self.tracker is not None
        paired = self.layout.paired_datalist
        grid = self._synthesis_grid(paired, self.layout.synthesis_grid)
        self.tracker.log_artifact(run_id, paired, "datalist")
        self.tracker.log_artifact(run_id, grid, "images")
        return run_id

    def _synthesis_grid(self, paired: Path, path: Path, n: int = 8) -> Path:
        """Downstream images beside their synthetic privileged modality (evenly spaced over the set)."""
        import numpy as np
        from PIL import Image

        from ..visualize import save_image_grid

        items = json.loads(paired.read_text())["training"]
        picks = [items[int(i * len(items) / n)] for i in range(min(n, len(items)))]

        def read(p: str) -> np.ndarray:
            a = np.asarray(Image.open(p).convert("L"), dtype=np.float32)
            return a / max(float(a.max()), 1.0)

        rows = [[read(it["image"]) for it in picks], [read(it["privileged"]) for it in picks]]
        contrast = self.profile["data"]["contrast_b"]
        save_image_grid(
            rows,
            path,
            column_titles=[str(it.get("class", "")) for it in picks],
            row_titles=["real (downstream)", f"synthetic {contrast}"],
            orientation="picture",
            title="Synthetic privileged modality of the downstream training images",
        )
        return path

    def _arm_data(self, arm: Arm) -> dict[str, Any]:
        if arm.pairs == "authentic":
            # the public multi-contrast slices are 240 x 240 with a wide background: train on the central brain
            crop = [192, 192] if self.source == "public" else None
            return {"datalist": self.state["datalists"]["authentic_pairs"], "crop_size": crop, "max_items": None}
        datalist = (
            self.state["datalists"]["downstream"]
            if arm.pairs == "downstream"
            else str(self.layout.paired_datalist)
        )
        return {"datalist": datalist, "crop_size": None, "max_items": self.profile["data"]["max_downstream"]}

    def _lineage(self, arm: Arm) -> dict[str, Any]:
        tags: dict[str, Any] = {f"{TAG_PREFIX}arm": arm.name, f"{TAG_PREFIX}pairs": arm.pairs}
        if arm.pairs == "synthetic":
            paired = json.loads(self.layout.paired_datalist.read_text())
            tags[f"{TAG_PREFIX}translator_run_id"] = paired.get("translator", {}).get("mlflow_run_id")
            tags[f"{TAG_PREFIX}synthesis_run_id"] = self.state["stages"]["synthesis"].get("run_id")
        return tags

    def ssl_train(self, arm: Arm, seed: int) -> str:
        d = self.layout.arm_dir(arm.name, seed)
        data = self._arm_data(arm)
        overrides = {
            **data,
            "section": "training",
            "variant": arm.variant,
            "encoder_indices": list(arm.encoder_indices),
            "branch_keys": list(arm.branch_keys),
            "seed": seed,
            "cache_dir": str(self.cache),
            "ckpt_dir": str(d / "models"),
            "output_dir": _expr_path(d / "train"),
            "to_grayscale": True,
            "normalize_inputs": True,
            "persistent_cache_dir": str(
                self.layout.ssl_image_cache(arm.pairs, datalist_content_digest(data["datalist"]))
            ),
            "resume": True,
            **self.profile["ssl_train"],
        }
        tags = {**self._lineage(arm), f"{TAG_PREFIX}seed": seed}
        return self._run_bundle(f"ssl_train/{arm.name}/seed{seed}", "multimodal_ssl", ["train.json"], overrides, tags)

    def random_init(self, seed: int) -> None:
        """The no-pre-training reference: the same encoder, randomly initialised with ``seed``, saved as model.pt."""
        from ..networks import make_resnet_encoder
        from ..utils.io import atomic_path

        depth = self.profile["ssl_train"].get("depth", 18)
        torch.manual_seed(seed)
        net = make_resnet_encoder(spatial_dims=2, in_channels=1, depth=depth)
        path = self.layout.encoder(RANDOM_INIT, seed)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            torch.save(net.state_dict(), tmp)

    def ssl_evaluate(self, arm_name: str, seed: int, tags: dict[str, Any]) -> str:
        d = self.layout.arm_dir(arm_name, seed)
        train = {k: v for k, v in self.profile["ssl_train"].items() if k in ("depth", "image_size")}
        overrides = {
            **train,
            "labelled_datalist": self.state["datalists"]["downstream"],
            "ckpt_path": str(d / "models" / "model.pt"),
            "output_dir": _expr_path(d / "evaluate"),
            "cache_dir": str(self.cache),
            "persistent_cache_dir": str(
                self.layout.probe_image_cache(datalist_content_digest(self.state["datalists"]["downstream"]))
            ),
            "seed": seed,
            "embedding_plot": seed in self.profile["embedding_plot_seeds"],
            **self.profile["ssl_evaluate"],
        }
        tags = {**tags, f"{TAG_PREFIX}seed": seed, f"{TAG_PREFIX}arm": arm_name}
        return self._run_bundle(
            f"ssl_evaluate/{arm_name}/seed{seed}", "multimodal_ssl", ["evaluate.json"], overrides, tags
        )

    # ------------------------------------------------------------------ the whole run
    def plan(self) -> list[Stage]:
        """Every stage of this run in order, with what it reads and writes (:class:`Stage`): the experiment as data.
        Stages whose data the profile does not give are left out (no ``paired_evaluation``: no
        ``translator_evaluate``; no ``authentic_pairs``: no authentic arms, see :attr:`arms_not_run`)."""
        lay = self.layout
        downstream, privileged = lay.datalist("downstream"), lay.datalist("privileged")
        authentic, evaluation = lay.datalist("authentic_pairs"), lay.datalist("paired_evaluation")
        translator = lay.translator_model
        prepared = [downstream, privileged]
        prepared += [authentic] if self.has_authentic else []
        prepared += [evaluation] if self.has_paired_evaluation else []
        stages = [
            Stage("prepare", self.prepare, tuple(prepared), always=True),
            Stage(
                "translator_train",
                self.translator_train,
                (translator,),
                inputs=(downstream, privileged),
                clean=(translator.parent, lay.translator / "train"),
            )
            if self.translator_weights is None
            else Stage(
                "translator_train", self.translator_import, (translator,),
                inputs=(self.translator_weights, architecture_path(self.translator_weights)), clean=(translator.parent,),
            ),
        ]
        if self.has_paired_evaluation:
            stages.append(
                Stage(
                    "translator_evaluate",
                    self.translator_evaluate,
                    (lay.translation_metrics,),
                    inputs=(translator, evaluation),
                    clean=(lay.translator_evaluation,),
                )
            )
        stages.append(
            Stage(
                "synthesis",
                self.synthesis,
                (lay.paired_datalist, lay.synthesis_grid),
                inputs=(translator, downstream),
                clean=(lay.synthesis,),
            )
        )
        pairs_file = {"downstream": downstream, "authentic": authentic, "synthetic": lay.paired_datalist}
        for seed in self.seeds:
            for arm in self.arms:
                d, train_key = lay.arm_dir(arm.name, seed), f"ssl_train/{arm.name}/seed{seed}"
                stages.append(
                    Stage(
                        train_key,
                        lambda arm=arm, seed=seed: self.ssl_train(arm, seed),
                        (lay.encoder(arm.name, seed),),
                        inputs=(pairs_file[arm.pairs],),
                        clean=(d / "models", d / "train"),
                    )
                )
                stages.append(
                    Stage(
                        f"ssl_evaluate/{arm.name}/seed{seed}",
                        lambda arm=arm, seed=seed, train_key=train_key: self.ssl_evaluate(
                            arm.name,
                            seed,
                            {**self._lineage(arm), f"{TAG_PREFIX}ssl_run_id": self._stage_state(train_key).get("run_id")},
                        ),
                        (lay.probe_metrics(arm.name, seed),),
                        inputs=(lay.encoder(arm.name, seed), downstream),
                        clean=(d / "evaluate",),
                    )
                )
            if self.profile["random_init_baseline"]:
                stages.append(
                    Stage(
                        f"ssl_evaluate/{RANDOM_INIT}/seed{seed}",
                        lambda seed=seed: self._random_init_evaluate(seed),
                        (lay.probe_metrics(RANDOM_INIT, seed),),
                        inputs=(downstream,),
                        clean=(lay.arm_dir(RANDOM_INIT, seed),),
                    )
                )
        stages.append(Stage("report", self.report))
        return stages

    def _random_init_evaluate(self, seed: int) -> str:
        self.random_init(seed)
        return self.ssl_evaluate(RANDOM_INIT, seed, {f"{TAG_PREFIX}pairs": "none"})

    def report(self) -> None:
        """Collect every evaluation into ``report/`` and the parent MLflow run (:func:`write_report`)."""
        assert self.tracker is not None
        write_report(
            self.layout,
            self.state,
            self.profile,
            [a.name for a in self.arms],
            self.tracker,
            self.data_paths,
        )

    def stage_keys(self) -> list[str]:
        return [st.key for st in self.plan()]

    def run(self) -> Path | None:
        """Run (or continue) every stage (up to ``until``); returns the path of the markdown report (None when
        stopped before the report)."""
        self.out.mkdir(parents=True, exist_ok=True)
        # MONAI's handler and MLflow's fluent API both honour MLFLOW_TRACKING_URI: point it at this run's store
        previous_uri = os.environ.get("MLFLOW_TRACKING_URI")
        os.environ["MLFLOW_TRACKING_URI"] = self.tracking_uri
        try:
            return self._run_all()
        finally:
            if previous_uri is None:
                os.environ.pop("MLFLOW_TRACKING_URI", None)
            else:
                os.environ["MLFLOW_TRACKING_URI"] = previous_uri

    def _run_all(self) -> Path | None:
        self.tracker = PipelineTracker(
            self.tracking_uri, self.experiment_name, fallback_uri=f"sqlite:///{self.layout.mlflow_fallback_db}"
        )
        started = datetime.datetime.now().strftime("%Y%m%d_%H%M%S")
        parent = self.tracker.start_parent(
            f"synpriv_{self.profile['name']}_{started}",
            self.state.get("parent_run_id"),
            tags={f"{TAG_PREFIX}profile": self.profile["name"], f"{TAG_PREFIX}profile_digest": self.digest},
        )
        if self.arms_not_run:
            print(f"[pipeline] no authentic_pairs in the profile's data section: arms {self.arms_not_run} not run")
        if not self.has_paired_evaluation:
            print("[pipeline] no paired_evaluation in the profile's data section: the translator is not scored")
        stages = self.plan()
        if self.until is not None:
            stages = [st for st in stages if STAGES.index(st.group) <= STAGES.index(self.until)]
        bar = tqdm(total=len(stages), desc="pipeline", unit="stage") if (self.progress and has_tqdm) else None
        t0 = time.time()
        try:
            self.state["parent_run_id"] = parent
            self.tracker.log_params(
                parent,
                {
                    "profile": self.profile["name"],
                    "profile_digest": self.digest,
                    "seeds": self.seeds,
                    "arms": [a.name for a in self.arms],
                    "output_dir": str(self.out),
                    "data_source": self.source,
                    **{f"data.{k}": str(v) for k, v in self.data_paths.items()},
                    "arms_not_run": self.arms_not_run,
                    **{f"data_{k}": v for k, v in self.profile["data"].items()},
                },
            )
            self._save_state()
            report = self._run_stages(stages, bar)
        except BaseException as e:
            self.tracker.finish(parent, "FAILED" if isinstance(e, Exception) else "KILLED")
            raise
        finally:
            if bar is not None:
                bar.close()
        self.state["total_seconds_last_invocation"] = round(time.time() - t0, 1)
        self._save_state()
        if report is None:
            self.tracker.set_tags(parent, {f"{TAG_PREFIX}stopped_after": self.until})  # re-opened by the next call
            self.tracker.finish(parent)
            print(f"[pipeline] stopped after stage {self.until!r}; run again without --until to continue.")
            return None
        self.tracker.set_tags(parent, {f"{TAG_PREFIX}stopped_after": "report"})
        self.tracker.finish(parent)
        print(
            f"[pipeline] report: {report}; MLflow: {self.tracker.tracking_uri} "
            f"(experiment {self.experiment_name!r}, parent run {parent})"
        )
        return report

    def _run_stages(self, stages: Sequence[Stage], bar: Any) -> Path | None:
        for st in stages:
            self._stage(st.key, st.outputs, st.run, bar, inputs=st.inputs, clean=st.clean, always=st.always)
        if stages and stages[-1].key == "report":
            return self.layout.results_md
        return None
