"""Log a finished piece of work (settings, metrics, files) as one MLflow run, outside an ignite engine."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

__all__ = ["log_mlflow_run"]


def log_mlflow_run(
    tracking_uri: str | None,
    experiment_name: str,
    run_name: str | None,
    params: Mapping[str, Any] | None = None,
    metrics: Mapping[str, float] | None = None,
    files: Iterable[str | os.PathLike] = (),
    artifact_path: str | None = None,
    artifact_root: str | os.PathLike | None = None,
    tags: Mapping[str, str] | None = None,
) -> str | None:
    """Create a run in ``experiment_name`` (made if missing, its artifacts under ``artifact_root/mlartifacts``
    rather than ``./mlruns`` of whatever folder the process started in), log ``params`` (as strings), finite
    ``metrics`` and existing ``files``, and close it. Returns the run id, or None when ``tracking_uri`` is empty."""
    if not tracking_uri:
        return None
    import math

    import mlflow

    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    exp = client.get_experiment_by_name(experiment_name)
    if exp is not None:
        exp_id = exp.experiment_id
    else:
        location = (Path(artifact_root or ".") / "mlartifacts").resolve().as_uri()
        exp_id = client.create_experiment(experiment_name, artifact_location=location)
    run_id = client.create_run(exp_id, run_name=run_name, tags=dict(tags or {})).info.run_id
    try:
        for key, value in (params or {}).items():
            client.log_param(run_id, key, str(value)[:6000])
        for key, value in (metrics or {}).items():
            if isinstance(value, (int, float)) and math.isfinite(float(value)):
                client.log_metric(run_id, key.replace("@", "_at_"), float(value))
        for path in files:
            if Path(path).is_file():
                client.log_artifact(run_id, str(path), artifact_path=artifact_path)
    except BaseException:
        client.set_terminated(run_id, status="FAILED")
        raise
    client.set_terminated(run_id)
    return run_id
