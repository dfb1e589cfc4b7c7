"""Text-conditioned diffusion training: MONAI's ``DiffusionPrepareBatch`` with condition dropout.

Classifier-free guidance (Ho and Salimans 2022) trains one network both conditioned and unconditioned by replacing
the condition with a fixed "null" value for a fraction of the samples. MONAI's ``DiffusionInferer.sample(cfg=...)``
builds its unconditioned branch by filling the condition with ``cfg_fill_value`` (default -1.0): the ``fill_value``
used here must be the same number, and both default to MONAI's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from monai.engines.utils import DiffusionPrepareBatch

__all__ = ["ConditionDropoutPrepareBatch"]


class ConditionDropoutPrepareBatch(DiffusionPrepareBatch):
    """
    ``prepare_batch`` for ``SupervisedTrainer`` + ``DiffusionInferer``: noise, random timesteps, the noise as the
    target, and the batch's condition (e.g. B x 1 x D text embeddings under ``condition_name``) with each sample's
    condition replaced by ``fill_value`` with probability ``drop_prob``.

    Args:
        num_train_timesteps: the scheduler's number of training timesteps.
        condition_name: batch key of the condition (cross-attention context, B x tokens x D).
        drop_prob: probability of dropping a sample's condition (0.1-0.2 is usual; 0 disables guidance training).
        fill_value: the null condition; keep it equal to ``DiffusionInferer.sample``'s ``cfg_fill_value``.
        generator: optional ``torch.Generator`` for the drop decisions (reproducible tests).
    """

    def __init__(
        self,
        num_train_timesteps: int,
        condition_name: str = "context",
        drop_prob: float = 0.1,
        fill_value: float = -1.0,
        generator: torch.Generator | None = None,
    ) -> None:
        if not 0.0 <= drop_prob <= 1.0:
            raise ValueError(f"drop_prob must be in [0, 1], got {drop_prob}.")
        super().__init__(num_train_timesteps=num_train_timesteps, condition_name=condition_name)
        self.drop_prob = float(drop_prob)
        self.fill_value = float(fill_value)
        self.generator = generator

    def drop_condition(self, condition: torch.Tensor) -> torch.Tensor:
        """Replace each sample's condition by ``fill_value`` with probability ``drop_prob``."""
        if self.drop_prob <= 0:
            return condition
        draw = torch.rand(condition.shape[0], generator=self.generator).to(condition.device)
        drop = (draw < self.drop_prob).view(-1, *([1] * (condition.ndim - 1)))
        return torch.where(drop, torch.full_like(condition, self.fill_value), condition)

    def __call__(
        self,
        batchdata: dict[str, torch.Tensor],
        device: str | torch.device | None = None,
        non_blocking: bool = False,
        **kwargs: Any,
    ) -> tuple[torch.Tensor, torch.Tensor, tuple, dict]:
        if not isinstance(batchdata, Mapping) or self.condition_name not in batchdata:
            keys = list(batchdata) if isinstance(batchdata, Mapping) else type(batchdata).__name__
            raise KeyError(f"ConditionDropoutPrepareBatch: no condition {self.condition_name!r} in the batch ({keys}).")
        images, target, args, infer_kwargs = super().__call__(batchdata, device, non_blocking, **kwargs)
        infer_kwargs["condition"] = self.drop_condition(infer_kwargs["condition"])
        return images, target, args, infer_kwargs
