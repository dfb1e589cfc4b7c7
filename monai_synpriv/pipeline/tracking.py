"""MLflow lineage for the pipeline: one parent run, one nested run per stage.

MONAI's ``MLFlowHandler`` logs into the newest *unfinished* run of its experiment that has its ``run_name``. The
tracker therefore creates each stage's run first (nested under the parent, with lineage tags) and hands its name to
the bundle (``run_name``): the bundle's own handler then logs into that run and closes it.

A remote tracking server that is down, goes away or hangs does not stop the pipeline: every call to it is bounded in
time, and at the first failure the tracker warns once and moves the rest of the run to a local SQLite store
(``fallback_uri``), re-creating there the parent and any open stage run with the same names and tags (plus
``synpriv.offline_copy_of``); the bundles of later stages are given that store too (:attr:`PipelineTracker.tracking_uri`).
"""

from __future__ import annotations

import logging
import os
import re
import time
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from monai.utils import optional_import, path_to_uri

from ..handlers.resilient_mlflow import call_with_deadline, cap_http_retries, is_remote_uri

mlflow, _ = optional_import("mlflow")
logger = logging.getLogger(__name__)

__all__ = ["PARENT_TAG", "PipelineTracker", "TAG_PREFIX", "mlflow_name"]

#: MLflow's own tag that nests a run under another in the UI.
PARENT_TAG = "mlflow.parentRunId"
#: Prefix of the pipeline's lineage tags (``synpriv.stage``, ``synpriv.translator_run_id``, ...).
TAG_PREFIX = "synpriv."


def mlflow_name(name: str) -> str:
    """``name`` with every character MLflow refuses in a param or metric name (anything but alphanumerics, ``_``,
    ``-``, ``.``, space, ``:`` and ``/``) replaced by ``/``."""
    return re.sub(r"[^\w\-. :/]", "/", name)


class PipelineTracker:
    """
    Creates and finds the pipeline's MLflow runs.

    Args:
        tracking_uri: MLflow tracking URI (``sqlite:///...`` embedded store or ``http://host:port`` server).
        experiment_name: experiment holding the parent and every stage run.
        artifact_location: where a new experiment keeps artifacts. Default for an embedded SQLite store: ``mlruns/``
            beside the database file (as MONAI's ``MLFlowHandler`` does), so that moving the run folder moves its
            pictures with it; MLflow's own default would be ``./mlruns`` of whatever folder the process started in.
            Other URIs: MLflow's choice (the server's artifact root).
        fallback_uri: local SQLite store that takes over when a remote server fails (default
            ``sqlite:///<cwd>/mlruns_offline.db``; the pipeline passes one inside its output folder).
        call_timeout: bound in seconds on each tracker operation against a remote server (a hung server counts as
            failed after that long); MLflow's HTTP retries are capped too (``MLFLOW_HTTP_REQUEST_MAX_RETRIES`` 1,
            ``MLFLOW_HTTP_REQUEST_TIMEOUT`` 10 s unless set). Local stores are not bounded: their errors are raised.
    """

    def __init__(
        self,
        tracking_uri: str,
        experiment_name: str,
        artifact_location: str | None = None,
        fallback_uri: str | None = None,
        call_timeout: float = 30.0,
    ) -> None:
        self.requested_uri = tracking_uri
        self.experiment_name = experiment_name
        self.remote = is_remote_uri(tracking_uri)
        self.call_timeout: float | None = call_timeout if self.remote else None
        self.fallback_uri = fallback_uri or f"sqlite:///{Path(os.getcwd()) / 'mlruns_offline.db'}"
        #: why the tracker moved to the fallback store (None while it uses ``requested_uri``)
        self.offline_reason: str | None = None
        self.parent_id: str | None = None
        self._created: dict[str, tuple[str, dict[str, str]]] = {}  # run id -> (name, tags) of runs made here
        self._local: dict[str, str] = {}  # remote run id -> its copy in the fallback store
        self._offline_ids: set[str] = set()  # runs made in the fallback store
        if self.remote:
            cap_http_retries()
        try:
            if self.remote:
                call_with_deadline(self._connect, self.call_timeout, tracking_uri, artifact_location)
            else:
                self._connect(tracking_uri, artifact_location)
        except Exception as e:
            if not self.remote:
                raise
            self._go_offline(e)

    # ------------------------------------------------------------------ connection and fallback
    def _connect(self, uri: str, artifact_location: str | None) -> None:
        if artifact_location is None and uri.startswith("sqlite:///"):
            artifact_location = path_to_uri(Path(uri[len("sqlite:///") :]).parent / "mlruns")
        client = mlflow.MlflowClient(tracking_uri=uri)
        exp = client.get_experiment_by_name(self.experiment_name)
        exp_id = exp.experiment_id if exp is not None else client.create_experiment(
            self.experiment_name, artifact_location=artifact_location
        )
        self.client, self.tracking_uri, self.experiment_id = client, uri, exp_id

    def _guard(self, fn: Callable[[], Any]) -> Any:
        """Run one tracker operation; against a remote server bounded by ``call_timeout``, and on its failure move to
        the fallback store (once, with a warning) and run the operation there."""
        if self.offline_reason is not None or not self.remote:
            return fn()
        try:
            return call_with_deadline(fn, self.call_timeout)
        except Exception as e:  # connection refused, HTTP errors, no answer in time
            self._go_offline(e)
            return fn()

    def _go_offline(self, error: BaseException) -> None:
        self.offline_reason = f"{type(error).__name__}: {str(error)[:300]}"
        artifacts = None
        if self.fallback_uri.startswith("sqlite:///"):  # beside the fallback store, apart from the main store's
            artifacts = path_to_uri(Path(self.fallback_uri[len("sqlite:///") :]).parent / "mlruns_offline")
        self._connect(self.fallback_uri, artifacts)
        message = (
            f"MLflow tracking at {self.requested_uri} failed ({self.offline_reason}); the pipeline goes on and tracks "
            f"the rest of this run in {self.fallback_uri} (runs tagged {TAG_PREFIX}offline_copy_of where they began "
            "on the server). This warning is shown once."
        )
        logger.warning(message)
        warnings.warn(message, RuntimeWarning, stacklevel=3)
        print(f"[pipeline] {message}", flush=True)

    def _rid(self, run_id: str) -> str:
        """``run_id`` in the store in use: after a move to the fallback store, a run begun on the server is replaced
        by a local copy with the same name and tags (made the first time it is needed)."""
        if self.offline_reason is None or run_id in self._offline_ids:
            return run_id
        if run_id not in self._local:
            name, tags = self._created.get(run_id, (f"offline_copy_{run_id[:8]}", {}))
            tags = dict(tags)
            if PARENT_TAG in tags:
                tags[PARENT_TAG] = self._rid(tags[PARENT_TAG])
            tags[f"{TAG_PREFIX}offline_copy_of"] = run_id
            self._local[run_id] = self._create_run(name, tags)
        return self._local[run_id]

    def _create_run(self, name: str, tags: Mapping[str, str]) -> str:
        run_id = self.client.create_run(self.experiment_id, run_name=name, tags=dict(tags)).info.run_id
        self._created[run_id] = (name, dict(tags))
        if self.offline_reason is not None:
            self._offline_ids.add(run_id)
        return run_id

    def _alive(self, run_id: str | None) -> bool:
        if not run_id:
            return False
        if self.offline_reason is not None:
            run_id = self._local.get(run_id, run_id)
            if run_id in self._offline_ids:
                return True
        try:
            run = self.client.get_run(run_id)
        except Exception:  # deleted store entries, another store: a fresh run is made instead
            return False
        return run.info.lifecycle_stage == "active" and run.info.experiment_id == self.experiment_id

    # ------------------------------------------------------------------ runs
    def start_parent(self, run_name: str, run_id: str | None = None, tags: Mapping[str, Any] | None = None) -> str:
        """Open the parent run: ``run_id`` (a previous invocation's parent, re-opened so that skipped stages stay
        nested under it) when it still exists in this experiment, otherwise a new run called ``run_name``."""

        def op() -> str:
            if run_id and self._alive(run_id):
                rid = self._rid(run_id)
                self.client.update_run(rid, status="RUNNING")
                self._created[rid] = (run_name, {k: str(v) for k, v in (tags or {}).items()})
                return rid
            return self._create_run(run_name, {k: str(v) for k, v in (tags or {}).items()})

        self.parent_id = self._guard(op)
        return self.parent_id  # type: ignore[return-value]

    def stage_run(
        self, stage: str, run_id: str | None = None, tags: Mapping[str, Any] | None = None, reopen: bool = False
    ) -> tuple[str, str]:
        """A stage's nested run, re-used when ``run_id`` is unfinished (a resumed stage logs into the same run), or
        whatever its status with ``reopen`` (a stage that runs every time, such as ``prepare``, keeps one run).

        Returns:
            ``(run_id, run_name)``: pass ``run_name`` to the bundle so that its ``MLFlowHandler`` picks this run.
        """
        if self.parent_id is None:
            raise RuntimeError("start_parent() must be called before stage runs are created.")

        def op() -> tuple[str, str]:
            if run_id and self._alive(run_id):
                rid = self._rid(run_id)
                run = self.client.get_run(rid)
                if reopen or run.info.status != "FINISHED":
                    self.client.update_run(rid, status="RUNNING")
                    return rid, run.info.run_name
            parent = self._rid(self.parent_id)  # type: ignore[arg-type]
            name = f"{stage}@{parent[:8]}-{int(time.time() * 1000) % 10**8:08d}"
            all_tags = {PARENT_TAG: parent, f"{TAG_PREFIX}stage": stage, **{k: str(v) for k, v in (tags or {}).items()}}
            return self._create_run(name, all_tags), name

        return self._guard(op)

    def set_tags(self, run_id: str, tags: Mapping[str, Any]) -> None:
        """Lineage tags on a run (values stored as strings)."""

        def op() -> None:
            for k, v in tags.items():
                self.client.set_tag(self._rid(run_id), k, str(v))

        self._guard(op)

    def log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        """Log parameters that the run does not hold yet (MLflow refuses to change a logged parameter). Characters
        MLflow refuses in a name become ``/`` (a nested config id ``checkpoint_saver#n_saved`` is logged as
        ``checkpoint_saver/n_saved``)."""

        def op() -> None:
            rid = self._rid(run_id)
            have = self.client.get_run(rid).data.params
            for k, v in params.items():
                key = mlflow_name(k)
                if key not in have:
                    self.client.log_param(rid, key, str(v)[:6000])

        self._guard(op)

    def log_metrics(self, run_id: str, metrics: Mapping[str, float], step: int = 0) -> None:
        """Log numeric metrics in one batch."""
        ms = [mlflow.entities.Metric(k, float(v), int(time.time() * 1000), step) for k, v in metrics.items()]

        def op() -> None:
            for i in range(0, len(ms), 500):  # MLflow's batch limit is 1000 metrics
                self.client.log_batch(self._rid(run_id), metrics=ms[i : i + 500])

        self._guard(op)

    def log_artifact(self, run_id: str, path: str | os.PathLike, artifact_path: str | None = None) -> None:
        """Copy a file or a folder into the run's artifacts."""

        def op() -> None:
            if os.path.isdir(path):
                self.client.log_artifacts(self._rid(run_id), str(path), artifact_path)
            elif os.path.isfile(path):
                self.client.log_artifact(self._rid(run_id), str(path), artifact_path)

        self._guard(op)

    def finish(self, run_id: str, status: str = "FINISHED") -> None:
        """Close a run (``FINISHED`` or ``FAILED``), if the bundle's handler has not already."""

        def op() -> None:
            rid = self._rid(run_id)
            if self.client.get_run(rid).info.status != status:
                self.client.set_terminated(rid, status=status)

        self._guard(op)

    def close_if_open(self, run_id: str | None) -> None:
        """Mark a stage run FINISHED when this store still shows it RUNNING (a server that went away while the stage
        finished could not be told); a run this store does not hold is left alone."""

        def op() -> None:
            if run_id and self._alive(run_id):
                rid = self._rid(run_id)
                if self.client.get_run(rid).info.status == "RUNNING":
                    self.client.set_terminated(rid, status="FINISHED")

        self._guard(op)

    def metrics(self, run_id: str) -> dict[str, float]:
        """The latest value of every metric of a run."""
        return self._guard(lambda: dict(self.client.get_run(self._rid(run_id)).data.metrics))

