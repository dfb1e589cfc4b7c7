"""``TranslationTrainerBase``: what the CycleGAN and pix2pix trainers share."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import torch
from monai.engines import Trainer
from monai.utils import IgniteInfo, min_version, optional_import
from torch.optim.optimizer import Optimizer
from torch.utils.data import DataLoader

from .keys import TranslationIterationEvents
from .utils import attach_loss_averages, make_grad_scaler, to_plain_tensor

if TYPE_CHECKING:
    from ignite.engine import EventEnum
else:
    EventEnum, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "EventEnum")

__all__ = ["TranslationTrainerBase"]


class TranslationTrainerBase(Trainer):
    """A MONAI ``Trainer`` with a generator optimiser and a discriminator optimiser, one AMP gradient scaler each,
    two batch keys, per-epoch loss averages and :class:`TranslationIterationEvents`. Subclasses implement
    ``_iteration``. Handlers are attached last, after the loss averages, so that they see the epoch metrics."""

    #: scalar outputs averaged per epoch into ``engine.state.metrics["epoch_<name>"]``
    loss_names: Sequence[str] = ()

    def __init__(
        self,
        device: torch.device | str,
        max_epochs: int,
        train_data_loader: Iterable | DataLoader,
        g_optimizer: Optimizer,
        d_optimizer: Optimizer,
        key_a: str = "A",
        key_b: str = "B",
        epoch_length: int | None = None,
        non_blocking: bool = False,
        train_handlers: Sequence | None = None,
        amp: bool = False,
        amp_kwargs: dict | None = None,
        event_names: list[str | EventEnum | type[EventEnum]] | None = None,
        event_to_attr: dict | None = None,
        decollate: bool = True,
        optim_set_to_none: bool = True,
    ) -> None:
        device = torch.device(device)
        super().__init__(
            device=device,
            max_epochs=max_epochs,
            data_loader=train_data_loader,
            epoch_length=epoch_length,
            non_blocking=non_blocking,
            handlers=None,
            amp=amp and device.type == "cuda",
            event_names=list(event_names or []) + [TranslationIterationEvents],
            event_to_attr=event_to_attr,
            decollate=decollate,
            amp_kwargs=amp_kwargs,
        )
        self.g_optimizer, self.d_optimizer = g_optimizer, d_optimizer
        # MONAI's MLFlowHandler and StatsHandler log ``engine.optimizer``'s learning rate
        self.optimizer = g_optimizer
        self.key_a, self.key_b = key_a, key_b
        self.optim_set_to_none = optim_set_to_none
        self.g_scaler = make_grad_scaler(self.amp)
        self.d_scaler = make_grad_scaler(self.amp)
        self._train_handlers = train_handlers

    def _finish_init(self) -> None:
        """Attach the per-epoch loss averages, then the user's handlers (call at the end of ``__init__``)."""
        attach_loss_averages(self, self.loss_names)
        if self._train_handlers is not None:
            self._register_handlers(self._train_handlers)

    def _get_pair(self, batchdata: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """The two domains' tensors of a batch, on the engine's device."""
        if batchdata is None:
            raise ValueError("Must provide batch data for current iteration.")
        missing = [k for k in (self.key_a, self.key_b) if k not in batchdata]
        if missing:
            raise KeyError(
                f"{type(self).__name__}: batch has no key(s) {missing} (keys: {sorted(batchdata)}); "
                "set key_a/key_b to the keys of your two domains."
            )
        return (
            to_plain_tensor(batchdata[self.key_a], self.state.device, self.non_blocking),
            to_plain_tensor(batchdata[self.key_b], self.state.device, self.non_blocking),
        )

    @staticmethod
    def _backward_step(loss: torch.Tensor, optimizer: Optimizer, scaler: Any) -> None:
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
