"""``EmbeddingCollapseMonitor``: is the self-supervised representation collapsing? One answer per epoch."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from monai.metrics import EmbeddingCollapseMetric
from monai.utils import IgniteInfo, min_version, optional_import

if TYPE_CHECKING:
    from ignite.engine import Engine, Events
else:
    Engine, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Engine")
    Events, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Events")

__all__ = ["EmbeddingCollapseMonitor", "embedding_std", "effective_rank"]


def embedding_std(z: torch.Tensor) -> float:
    """Mean per-dimension standard deviation of the L2-normalised embeddings (B x D): 0 when every sample maps to
    one point, about ``1 / sqrt(D)`` for embeddings spread over the sphere (the SimSiam collapse indicator)."""
    return float(torch.nn.functional.normalize(z.float(), dim=1).std(dim=0).mean())


def effective_rank(z: torch.Tensor) -> float:
    """``exp`` of the entropy of the normalised singular values of the centred embeddings (Roy & Vetterli 2007):
    1 for a rank-one (collapsed) set, up to ``min(B, D)``."""
    s = torch.linalg.svdvals(z.float() - z.float().mean(dim=0))
    p = s / s.sum().clamp_min(1e-12)
    p = p[p > 0]
    return float(torch.exp(-(p * p.log()).sum()))


class EmbeddingCollapseMonitor:
    """
    Collect the primary branch's embeddings (``engine.state.output[i][key]``, see ``MultiBranchSSLTrainer``) during
    each epoch, up to ``max_samples``, and at the epoch's end write to ``engine.state.metrics``:
    ``embedding_std``, ``embedding_effective_rank`` and MONAI's ``EmbeddingCollapseMetric`` effective-rank score
    (``collapse_effective_rank``, in [0, 1], higher = more collapsed). Attach it before MLflow/stats handlers (bundle
    handlers come first) so they log these metrics with the epoch.
    """

    def __init__(self, key: str = "embedding", max_samples: int = 2048) -> None:
        self.key = key
        self.max_samples = max_samples
        self._buffer: list[torch.Tensor] = []
        self._count = 0
        self._collapse = EmbeddingCollapseMetric(reduction="none", include_indicators=["effective_rank"])

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_STARTED, self._reset)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._collect)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self._compute)

    def _reset(self, engine: Engine) -> None:
        self._buffer, self._count = [], 0

    def _collect(self, engine: Engine) -> None:
        if self._count >= self.max_samples:
            return
        out = engine.state.output
        if isinstance(out, list):
            z = torch.stack([torch.as_tensor(o[self.key]) for o in out])
        else:
            z = torch.as_tensor(out[self.key])
        z = z[: self.max_samples - self._count].detach().float().cpu()
        self._buffer.append(z)
        self._count += len(z)

    def _compute(self, engine: Engine) -> None:
        if not self._buffer:
            return
        z = torch.cat(self._buffer)
        if len(z) < 2:
            return
        engine.state.metrics["embedding_std"] = embedding_std(z)
        engine.state.metrics["embedding_effective_rank"] = effective_rank(z)
        score = self._collapse(z).get("effective_rank_score")
        if score is not None:
            engine.state.metrics["collapse_effective_rank"] = float(score)
