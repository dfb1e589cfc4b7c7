"""``MixedPrecisionSupervisedTrainer``: MONAI's ``SupervisedTrainer`` iteration with CPU/CUDA mixed precision."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from monai.engines.utils import IterationEvents
from monai.inferers import Inferer, SimpleInferer
from monai.utils import CommonKeys as Keys
from torch.optim.optimizer import Optimizer
from torch.utils.data import DataLoader

from .base import MixedPrecisionTrainer
from .utils import to_float

__all__ = ["MixedPrecisionSupervisedTrainer"]


class MixedPrecisionSupervisedTrainer(MixedPrecisionTrainer):
    """
    The iteration of MONAI's ``SupervisedTrainer`` (``prepare_batch`` -> ``inferer(inputs, network, *args,
    **kwargs)`` -> ``loss_function(pred, targets)`` -> backward and step, firing ``FORWARD_COMPLETED``,
    ``LOSS_COMPLETED``, ``BACKWARD_COMPLETED`` and ``MODEL_COMPLETED``; output keys ``image``, ``label``, ``pred``,
    ``loss``) at one ``precision`` on CPU or CUDA: the forward pass under autocast, the loss on the fp32 prediction.
    MONAI's own trainer autocasts on CUDA only. Used by the masked autoencoder (``prepare_batch`` =
    :func:`~monai_synpriv.engines.image_as_target`) and the diffusion model (``DiffusionPrepareBatch`` +
    ``DiffusionInferer``).

    Args:
        device, max_epochs, train_data_loader: as MONAI's ``SupervisedTrainer``.
        network: the network.
        optimizer: its optimiser.
        loss_function: ``loss_function(pred, targets)``, a scalar (or a tensor whose mean is taken).
        inferer: how the network is called (default ``SimpleInferer``).
        kwargs: :class:`~monai_synpriv.engines.MixedPrecisionTrainer`'s arguments (``prepare_batch`` defaults to
            MONAI's ``default_prepare_batch``: ``image`` and ``label``).
    """

    def __init__(
        self,
        device: torch.device | str,
        max_epochs: int,
        train_data_loader: Iterable | DataLoader,
        network: torch.nn.Module,
        optimizer: Optimizer,
        loss_function: Callable,
        inferer: Inferer | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(device, max_epochs, train_data_loader, **kwargs)
        self.network, self.optimizer, self.loss_function = network, optimizer, loss_function
        self.inferer = SimpleInferer() if inferer is None else inferer
        self.scaler = self.add_scaler("network")
        self._finish_init()

    def _iteration(self, engine: MixedPrecisionSupervisedTrainer, batchdata: dict[str, Any]) -> dict[str, Any]:
        if batchdata is None:
            raise ValueError("Must provide batch data for current iteration.")
        batch = self.prepare_batch(batchdata, engine.state.device, engine.non_blocking, **self.to_kwargs)
        if len(batch) == 2:
            inputs, targets = batch
            args: tuple = ()
            kwargs: dict = {}
        else:
            inputs, targets, args, kwargs = batch
        engine.state.output = {Keys.IMAGE: inputs, Keys.LABEL: targets}
        self.network.train()
        self.zero_grad(self.optimizer)
        with self.autocast():
            pred = self.inferer(inputs, self.network, *args, **kwargs)
        engine.state.output[Keys.PRED] = pred = to_float(pred)
        engine.fire_event(IterationEvents.FORWARD_COMPLETED)
        loss = self.loss_function(pred, targets).mean()
        engine.state.output[Keys.LOSS] = loss
        engine.fire_event(IterationEvents.LOSS_COMPLETED)
        self.optimise(
            loss,
            self.optimizer,
            "network",
            self.network.parameters(),
            after_backward=lambda: engine.fire_event(IterationEvents.BACKWARD_COMPLETED),
        )
        engine.state.output[Keys.LOSS] = loss.detach()
        engine.fire_event(IterationEvents.MODEL_COMPLETED)
        return engine.state.output
