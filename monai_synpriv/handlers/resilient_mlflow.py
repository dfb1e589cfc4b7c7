"""MONAI's ``MLFlowHandler`` that survives a tracking server going away mid-run: training goes on, one warning is
printed, the records are kept, sent when the server is back, or written to a local SQLite store at the end."""

from __future__ import annotations

import logging
import os
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from monai.handlers import MLFlowHandler
from monai.utils import optional_import, path_to_uri

mlflow, _ = optional_import("mlflow")

__all__ = [
    "ResilientMLFlowHandler",
    "ResilientMlflowClient",
    "WRITE_METHODS",
    "call_with_deadline",
    "cap_http_retries",
    "is_remote_uri",
]

logger = logging.getLogger(__name__)


def _warn(message: str) -> None:
    """To the log and as a Python warning (visible whatever logging configuration a bundle installs)."""
    logger.warning(message)
    warnings.warn(message, RuntimeWarning, stacklevel=3)


def call_with_deadline(fn: Callable[..., Any], timeout: float | None, *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)``, raising ``TimeoutError`` when it has not returned within ``timeout`` seconds (None:
    no bound). The call runs on a daemon thread, so a hung tracking server cannot hold the caller (training, the
    pipeline) longer than ``timeout``; an abandoned call finishes or dies in the background."""
    if timeout is None:
        return fn(*args, **kwargs)
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn(*args, **kwargs)
        except BaseException as e:  # re-raised in the caller's thread
            box["error"] = e

    worker = threading.Thread(target=target, name=f"mlflow-{getattr(fn, '__name__', 'call')}", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        raise TimeoutError(f"no answer within {timeout:g} s")
    if "error" in box:
        raise box["error"]
    return box.get("value")


def is_remote_uri(uri: str) -> bool:
    """True for a tracking URI reached over a network (``http(s)://``, ``databricks``), False for local stores."""
    return str(uri).startswith(("http://", "https://", "databricks"))


def cap_http_retries(max_retries: int = 1, timeout: float = 10.0) -> None:
    """Default MLflow's HTTP retry count and request timeout (``MLFLOW_HTTP_REQUEST_MAX_RETRIES``/``_TIMEOUT``) to
    small values unless the user set them: MLflow's own defaults (7 retries with back-off, 120 s timeout) let one call
    to a server that is down block for minutes."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", str(max_retries))
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(int(timeout)))


#: client calls that record something (buffered when the server is unreachable); everything else passes through
WRITE_METHODS = frozenset(
    {"log_batch", "log_metric", "log_param", "set_tag", "log_artifact", "log_artifacts", "log_inputs", "set_terminated"}
)


class ResilientMlflowClient:
    """
    Wraps an ``mlflow.MlflowClient``: a recording call that fails (server down, network error) is kept in an
    in-memory queue instead of raising, with one warning; later calls first try to send the queue again (at most every
    ``retry_interval`` seconds, so a dead server does not slow every iteration down). A recording call that does not
    answer within ``call_timeout`` seconds (a hung, not dead, server) counts as failed. Reads pass through unchanged.

    Args:
        client: the client to wrap.
        retry_interval: seconds between two attempts to send the queue while the server is unreachable.
        call_timeout: bound on one recording call in seconds (None: unbounded); not applied to local ``sqlite:``/
            ``file:`` stores, which cannot hang on a network.
    """

    def __init__(self, client: Any, retry_interval: float = 30.0, call_timeout: float | None = 10.0) -> None:
        self._client = client
        self.retry_interval = retry_interval
        self.call_timeout = call_timeout if is_remote_uri(getattr(client, "tracking_uri", "")) else None
        self.pending: list[tuple[str, tuple, dict]] = []
        self._last_failure: float | None = None
        self._warned = False
        self.failures = 0

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if name not in WRITE_METHODS:
            return attr
        return lambda *args, **kwargs: self._write(name, args, kwargs)

    @property
    def tracking_uri(self) -> str:
        return self._client.tracking_uri

    def _write(self, name: str, args: tuple, kwargs: dict) -> None:
        self.pending.append((name, args, kwargs))
        if self._last_failure is not None and time.monotonic() - self._last_failure < self.retry_interval:
            return
        self.flush()

    def flush(self) -> bool:
        """Send every queued call in order; True when the queue is empty afterwards."""
        while self.pending:
            name, args, kwargs = self.pending[0]
            try:
                call_with_deadline(getattr(self._client, name), self.call_timeout, *args, **kwargs)
            except Exception as e:  # connection refused, timeouts, 5xx, no answer: keep the call for later
                self.failures += 1
                self._last_failure = time.monotonic()
                if not self._warned:
                    self._warned = True
                    _warn(
                        f"MLflow tracking at {self._client.tracking_uri} is unreachable ({type(e).__name__}: "
                        f"{str(e)[:200]}); training goes on and the records are kept: they are sent when the server "
                        "is back, or written to a local store when the run ends. This warning is shown once."
                    )
                return False
            self.pending.pop(0)
        self._last_failure = None
        return True


class ResilientMLFlowHandler(MLFlowHandler):
    """
    :class:`monai.handlers.MLFlowHandler` (same arguments) for a shared tracking server that may go away mid-run.

    - Recording calls go through :class:`ResilientMlflowClient`: a failure warns once and queues the call; the queue
      is re-sent every ``retry_interval`` seconds and at the end of the run.
    - If the server is still unreachable when the run closes, the queued records are written to a local SQLite store
      (``fallback_uri``, default ``sqlite:///<cwd>/mlruns_offline.db``) as a run of the same name, tagged with the
      original tracking URI and run id, and the location is logged: nothing is lost.
    - HTTP retries are capped (``MLFLOW_HTTP_REQUEST_MAX_RETRIES``/``_TIMEOUT`` default to ``http_max_retries`` and
      ``http_timeout`` unless already set) so that one unreachable call does not stall training for minutes, and every
      recording call to a remote server is bounded by ``http_timeout`` (a hung server is treated as a dead one).

    Args:
        fallback_uri: local store for records that could not be sent.
        retry_interval: seconds between attempts while the server is unreachable.
        http_max_retries, http_timeout: defaults for MLflow's HTTP retry count and timeout (seconds).
        kwargs: everything :class:`monai.handlers.MLFlowHandler` takes.
    """

    def __init__(
        self,
        *args: Any,
        fallback_uri: str | None = None,
        retry_interval: float = 30.0,
        http_max_retries: int = 1,
        http_timeout: float = 10.0,
        **kwargs: Any,
    ) -> None:
        cap_http_retries(http_max_retries, http_timeout)
        super().__init__(*args, **kwargs)
        self.client = ResilientMlflowClient(self.client, retry_interval=retry_interval, call_timeout=http_timeout)
        self.fallback_uri = fallback_uri or f"sqlite:///{Path(os.getcwd()) / 'mlruns_offline.db'}"
        self.fallback_run_id: str | None = None

    def close(self) -> None:
        """Send what is queued; what cannot be sent goes to the local fallback store (logged)."""
        run = self.cur_run
        try:
            super().close()  # set_terminated is queued like any other record when the server is down
        finally:
            client = self.client
            if isinstance(client, ResilientMlflowClient) and client.pending and not client.flush():
                self._write_fallback(client, run)

    def _write_fallback(self, client: ResilientMlflowClient, run: Any) -> None:
        local = mlflow.MlflowClient(tracking_uri=self.fallback_uri)
        exp = local.get_experiment_by_name(self.experiment_name)
        artifacts = None  # next to a SQLite fallback store (MLflow's default would be ./mlruns of the working folder)
        if self.fallback_uri.startswith("sqlite:///"):
            artifacts = path_to_uri(Path(self.fallback_uri[len("sqlite:///") :]).parent / "mlruns_offline")
        exp_id = (
            exp.experiment_id
            if exp is not None
            else local.create_experiment(self.experiment_name, artifact_location=artifacts)
        )
        original = run.info.run_id if run is not None else "unknown"
        name = run.info.run_name if run is not None else self.run_name
        new = local.create_run(
            exp_id,
            run_name=name,
            tags={"synpriv.offline_copy_of": original, "synpriv.original_tracking_uri": client.tracking_uri},
        )
        new_id = new.info.run_id
        replay: Callable[..., Any]
        for method, args, kwargs in client.pending:
            args = tuple(new_id if a == original else a for a in args)
            kwargs = {k: (new_id if v == original else v) for k, v in kwargs.items()}
            replay = getattr(local, method)
            replay(*args, **kwargs)
        n = len(client.pending)
        client.pending.clear()
        self.fallback_run_id = new_id
        _warn(
            f"MLflow tracking at {client.tracking_uri} stayed unreachable: {n} record(s) of run {original} were "
            f"written "
            f"to {self.fallback_uri} (run {new_id}, tag synpriv.offline_copy_of={original})."
        )
