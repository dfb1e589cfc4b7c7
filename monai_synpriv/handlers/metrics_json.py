"""``MetricsJSONWriter``: an evaluator's metrics as one JSON file (the numbers the report and MLflow share)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from monai.utils import IgniteInfo, min_version, optional_import

from ..utils.distributed import is_rank0
from ..utils.io import write_json_atomic

if TYPE_CHECKING:
    from ignite.engine import Engine, Events
else:
    Engine, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Engine")
    Events, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Events")

__all__ = ["MetricsJSONWriter"]


class MetricsJSONWriter:
    """
    At ``COMPLETED``, write ``engine.state.metrics`` to ``path`` (atomically), with ``extra`` fields, and a
    comparison of every metric ``m`` that has a ``<baseline_prefix>m`` partner: the difference and whether the
    method is better (``lower_is_better`` names metrics where lower wins, e.g. MAE). Baselines are named
    ``<baseline_prefix><kind>_<metric>`` with no underscore in ``kind`` (``baseline_hist_fg_ssim``).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        extra: Mapping[str, Any] | None = None,
        baseline_prefix: str = "baseline_",
        lower_is_better: tuple[str, ...] = ("mae", "mse", "rmse"),
    ) -> None:
        self.path = path
        self.extra = dict(extra or {})
        self.baseline_prefix = baseline_prefix
        self.lower_is_better = tuple(lower_is_better)

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        if not is_rank0():  # under torchrun only rank 0 writes files
            return
        metrics = {k: float(v) for k, v in engine.state.metrics.items() if isinstance(v, (int, float))}
        comparison = {}
        for name, value in metrics.items():
            if name.startswith(self.baseline_prefix):
                continue
            # baselines are named <prefix><kind>_<metric> (baseline_hist_fg_ssim): the kind holds no underscore
            partners = [
                n
                for n in metrics
                if n.startswith(self.baseline_prefix) and n[len(self.baseline_prefix) :].partition("_")[2] == name
            ]
            for base_name in partners:
                base = metrics[base_name]
                better = value < base if name.lower() in self.lower_is_better else value > base
                comparison[f"{name}_vs_{base_name}"] = {
                    "method": value,
                    "baseline": base,
                    "difference": value - base,
                    "method_better": bool(better),
                }
        write_json_atomic(
            self.path,
            {"metrics": metrics, "comparison": comparison, **self.extra, "num_iterations": engine.state.iteration},
        )
