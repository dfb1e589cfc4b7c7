"""``ImageTextTrainer``: contrastive image-text pre-training (ConVIRT) of a ``DualEncoder``."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import torch
from monai.engines import Trainer
from monai.engines.utils import IterationEvents
from monai.utils import IgniteInfo, min_version, optional_import
from torch.optim.optimizer import Optimizer
from torch.utils.data import DataLoader

from ..losses.convirt import ConVIRTLoss
from ..utils.distributed import unwrap
from .utils import attach_loss_averages, autocast_context, backward_and_step, make_grad_scaler, to_plain_tensor

if TYPE_CHECKING:
    from ignite.engine import EventEnum
else:
    EventEnum, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "EventEnum")

__all__ = ["ImageTextTrainer"]


class ImageTextTrainer(Trainer):
    """
    One step per batch of (image, tokenised text) pairs: the dual encoder embeds both, ``loss_function``
    (:class:`~monai_synpriv.losses.ConVIRTLoss`) compares them at the network's temperature, then backward, optional
    gradient clipping and the step. ``engine.state.output`` holds ``loss``, ``loss_image_to_text``,
    ``loss_text_to_image``, ``temperature`` and the batch's image ``embedding`` (detached; it gives the output a batch
    dimension so that MONAI's default ``--tracking mlflow`` handlers can decollate it). Per-epoch means of the losses
    go to ``state.metrics["epoch_<name>"]``. AMP with a gradient scaler on CUDA.

    Args:
        device, max_epochs, train_data_loader, epoch_length, non_blocking: as MONAI's ``SupervisedTrainer``.
        network: the :class:`~monai_synpriv.networks.DualEncoder` (or one wrapped in DistributedDataParallel).
        optimizer: its optimiser.
        loss_function: a :class:`ConVIRTLoss` (its ``terms`` are logged).
        image_key: batch key of the images.
        ids_key: batch key of the token ids (``TokenizeTextd`` writes ``<text key>_ids``).
        mask_key: batch key of the attention mask.
        grad_clip_norm: clip the global gradient norm (None: no clipping).
        train_handlers, amp, amp_kwargs, event_names, event_to_attr, decollate, optim_set_to_none: as MONAI's.
    """

    def __init__(
        self,
        device: torch.device | str,
        max_epochs: int,
        train_data_loader: Iterable | DataLoader,
        network: torch.nn.Module,
        optimizer: Optimizer,
        loss_function: ConVIRTLoss,
        image_key: str = "image",
        ids_key: str = "text_ids",
        mask_key: str = "text_mask",
        grad_clip_norm: float | None = 1.0,
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
            event_names=event_names,
            event_to_attr=event_to_attr,
            decollate=decollate,
            amp_kwargs=amp_kwargs,
        )
        self.network, self.optimizer, self.loss_function = network, optimizer, loss_function
        self.keys = (image_key, ids_key, mask_key)
        self.grad_clip_norm = grad_clip_norm
        self.optim_set_to_none = optim_set_to_none
        self.scaler_ = make_grad_scaler(self.amp)
        attach_loss_averages(self, ["loss", "loss_image_to_text", "loss_text_to_image"])
        if train_handlers is not None:
            self._register_handlers(train_handlers)

    def _iteration(self, engine: ImageTextTrainer, batchdata: dict[str, Any]) -> dict[str, torch.Tensor]:
        if batchdata is None:
            raise ValueError("Must provide batch data for current iteration.")
        missing = [k for k in self.keys if k not in batchdata]
        if missing:
            raise KeyError(
                f"ImageTextTrainer: batch has no key(s) {missing} (keys: {sorted(batchdata)}); tokenise the captions "
                "with monai_synpriv.transforms.TokenizeTextd."
            )
        image, ids, mask = (to_plain_tensor(batchdata[k], engine.state.device, engine.non_blocking) for k in self.keys)
        self.network.train()
        self.optimizer.zero_grad(set_to_none=self.optim_set_to_none)
        with autocast_context(self.amp, self.amp_kwargs):
            image_emb, text_emb = self.network(image, ids, mask)
        temperature = unwrap(self.network).temperature
        terms = self.loss_function.terms(image_emb.float(), text_emb.float(), temperature)
        params = [p for p in self.network.parameters() if p.requires_grad]
        backward_and_step(terms["total"], self.optimizer, self.scaler_, params, self.grad_clip_norm)
        engine.state.output = {
            "embedding": image_emb.detach().float(),
            "loss": terms["total"].detach(),
            "loss_image_to_text": terms["image_to_text"].detach(),
            "loss_text_to_image": terms["text_to_image"].detach(),
            "temperature": temperature.detach(),
        }
        engine.fire_event(IterationEvents.MODEL_COMPLETED)
        return engine.state.output
