"""Text-conditioned diffusion training: MONAI's ``DiffusionPrepareBatch`` with condition dropout.

Classifier-free guidance (Ho and Salimans 2022) trains one network both conditioned and unconditioned by replacing
the condition with a fixed "null" value for a fraction of the samples. MONAI's ``DiffusionInferer.sample(cfg=...)``
builds its unconditioned branch by filling the condition with ``cfg_fill_value`` (default -1.0): the ``fill_value``
used here must be the same number, and both default to MONAI's.

The regression target follows the scheduler's ``prediction_type``: the noise (``epsilon``, MONAI's default), the
velocity ``v = sqrt(alpha_bar_t) * noise - sqrt(1 - alpha_bar_t) * x0`` (``v_prediction``, Salimans and Ho 2022, as
MONAI's ``VPredictionPrepareBatch``) or the clean image (``sample``). Training and sampling schedulers must share it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from monai.engines.utils import DiffusionPrepareBatch

__all__ = ["PREDICTION_TYPES", "ConditionDropoutPrepareBatch"]

#: the regression targets MONAI's schedulers sample from (``DDPMPredictionType``)
PREDICTION_TYPES = ("epsilon", "v_prediction", "sample")


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
        scheduler: the training scheduler; its ``prediction_type`` chooses the target (default: the noise).
    """

    def __init__(
        self,
        num_train_timesteps: int,
        condition_name: str = "context",
        drop_prob: float = 0.1,
        fill_value: float = -1.0,
        generator: torch.Generator | None = None,
        scheduler: Any | None = None,
    ) -> None:
        if not 0.0 <= drop_prob <= 1.0:
            raise ValueError(f"drop_prob must be in [0, 1], got {drop_prob}.")
        super().__init__(num_train_timesteps=num_train_timesteps, condition_name=condition_name)
        self.drop_prob = float(drop_prob)
        self.fill_value = float(fill_value)
        self.generator = generator
        self.scheduler = scheduler
        self.prediction_type = getattr(scheduler, "prediction_type", "epsilon") if scheduler is not None else "epsilon"
        if self.prediction_type not in PREDICTION_TYPES:
            raise ValueError(
                f"the scheduler's prediction_type {self.prediction_type!r} is not one of {list(PREDICTION_TYPES)}."
            )
        if scheduler is not None and scheduler.num_train_timesteps != num_train_timesteps:
            raise ValueError(
                f"num_train_timesteps {num_train_timesteps} differs from the scheduler's "
                f"{scheduler.num_train_timesteps}."
            )

    def get_target(self, images: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        """The noise, the velocity or the clean images, as the scheduler's ``prediction_type`` says."""
        if self.prediction_type == "v_prediction":
            return self.scheduler.get_velocity(images, noise, timesteps)
        if self.prediction_type == "sample":
            return images
        return noise

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
