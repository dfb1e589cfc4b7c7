"""``MLflowExtrasHandler``: pictures, metric files, parameters and per-iteration values into the run of MONAI's
``MLFlowHandler``."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from monai.handlers import MLFlowHandler
from monai.utils import IgniteInfo, min_version, optional_import

if TYPE_CHECKING:
    from ignite.engine import Engine, Events
else:
    Engine, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Engine")
    Events, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Events")

__all__ = ["MLflowExtrasHandler", "find_mlflow_handler"]

logger = logging.getLogger(__name__)


def find_mlflow_handler(engine: Engine) -> MLFlowHandler | None:
    """The ``MLFlowHandler`` attached to ``engine`` (e.g. by ``monai.bundle run ... --tracking mlflow``), if any."""
    for handlers in engine._event_handlers.values():
        for handler, *_ in handlers:
            owner = getattr(handler, "__self__", None)
            if isinstance(owner, MLFlowHandler):
                return owner
    return None


class MLflowExtrasHandler:
    """
    Log what a run writes to disk (PNG grids, metric JSON), its hyper-parameters and extra per-iteration values (every
    loss term, where MONAI's handler logs only ``loss``) into the MLflow run that MONAI's own ``MLFlowHandler``
    opened on the same engine, so that ``--tracking mlflow`` captures all of it. Files under ``artifact_dir`` are
    logged at the end of every epoch (new or changed ones only) and at completion; with no ``MLFlowHandler``
    attached it does nothing (the files stay on disk).

    Attach it *before* the ``MLFlowHandler`` (bundle handlers come before the ones ``--tracking`` adds), so that
    it logs before that handler closes the run.

    Args:
        artifact_dir: folder whose files are logged.
        artifact_path: folder inside the run's artifacts.
        params: hyper-parameters to log once (flat mapping; values are converted to strings).
        tags: run tags to set once.
        iteration_keys: scalar keys of ``engine.state.output`` to log every ``iteration_interval`` iterations.
        iteration_interval: every how many iterations.
    """

    def __init__(
        self,
        artifact_dir: str | os.PathLike,
        artifact_path: str | None = None,
        params: Mapping[str, Any] | None = None,
        tags: Mapping[str, Any] | None = None,
        iteration_keys: Sequence[str] = (),
        iteration_interval: int = 1,
    ) -> None:
        self.artifact_dir = Path(artifact_dir)
        self.iteration_keys = list(iteration_keys)
        self.iteration_interval = max(1, int(iteration_interval))
        self.artifact_path = artifact_path
        self.params = dict(params or {})
        self.tags = dict(tags or {})
        self._logged: dict[str, float] = {}
        self._params_done = False

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_COMPLETED, self)
        engine.add_event_handler(Events.COMPLETED, self)
        if self.iteration_keys:
            engine.add_event_handler(Events.ITERATION_COMPLETED(every=self.iteration_interval), self.log_iteration)

    def log_iteration(self, engine: Engine) -> None:
        """Log ``iteration_keys`` of the (decollated) output at this iteration."""
        handler = find_mlflow_handler(engine)
        output = engine.state.output
        if handler is None or handler.cur_run is None or output is None:
            return
        from mlflow.entities import Metric

        first = output[0] if isinstance(output, list) else output
        now = int(time.time() * 1000)
        metrics = [Metric(k, float(first[k]), now, engine.state.iteration) for k in self.iteration_keys if k in first]
        if metrics:
            handler.client.log_batch(handler.cur_run.info.run_id, metrics=metrics, params=[], tags=[])

    def __call__(self, engine: Engine) -> None:
        handler = find_mlflow_handler(engine)
        if handler is None or handler.cur_run is None:
            return
        run_id = handler.cur_run.info.run_id
        if not self._params_done:
            from mlflow.entities import Param, RunTag

            try:
                logged = handler.client.get_run(run_id).data.params
            except Exception:  # tracking server unreachable: log them all (an identical value may be re-logged)
                logged = {}
            params = [Param(str(k), str(v)) for k, v in self.params.items() if str(k) not in logged]
            tags = [RunTag(str(k), str(v)) for k, v in self.tags.items()]
            handler.client.log_batch(run_id, metrics=[], params=params, tags=tags)
            self._params_done = True
        if not self.artifact_dir.is_dir():
            return
        for path in sorted(self.artifact_dir.rglob("*")):
            if not path.is_file() or path.name.startswith("."):
                continue
            mtime = path.stat().st_mtime
            if self._logged.get(str(path)) == mtime:
                continue
            rel_parent = path.parent.relative_to(self.artifact_dir)
            sub = "/".join(p for p in (self.artifact_path, str(rel_parent) if str(rel_parent) != "." else None) if p)
            handler.client.log_artifact(run_id, str(path), sub or None)
            self._logged[str(path)] = mtime
