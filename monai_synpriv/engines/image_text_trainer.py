"""``ImageTextTrainer``: contrastive image-text pre-training (ConVIRT) of a ``DualEncoder``."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from monai.engines.utils import IterationEvents
from torch.optim.optimizer import Optimizer
from torch.utils.data import DataLoader

from ..losses.convirt import ConVIRTLoss
from ..utils.distributed import unwrap
from .base import MixedPrecisionTrainer, PrepareBatchKeys

__all__ = ["ImageTextTrainer"]


class ImageTextTrainer(MixedPrecisionTrainer):
    """
    One step per batch of (image, tokenised text) pairs: the dual encoder embeds both, ``loss_function``
    (:class:`~monai_synpriv.losses.ConVIRTLoss`) compares them at the network's temperature, then backward, optional
    gradient clipping and the step. ``engine.state.output`` holds ``loss``, ``loss_image_to_text``,
    ``loss_text_to_image``, ``temperature`` and the batch's image ``embedding`` (detached; it gives the output a batch
    dimension so that MONAI's default ``--tracking mlflow`` handlers can decollate it). Per-epoch means of the losses
    go to ``state.metrics["epoch_<name>"]``. ``precision`` sets the forward pass's autocast on CPU or CUDA.

    Args:
        device, max_epochs, train_data_loader, epoch_length, non_blocking: as MONAI's ``SupervisedTrainer``.
        network: the :class:`~monai_synpriv.networks.DualEncoder` (or one wrapped in DistributedDataParallel).
        optimizer: its optimiser.
        loss_function: a :class:`ConVIRTLoss` (its ``terms`` are logged).
        image_key: batch key of the images.
        ids_key: batch key of the token ids (``TokenizeTextd`` writes ``<text key>_ids``).
        mask_key: batch key of the attention mask.
        grad_clip_norm: clip the global gradient norm (None: no clipping).
        kwargs: :class:`~monai_synpriv.engines.MixedPrecisionTrainer`'s arguments (MONAI's ``Trainer`` arguments and
            ``precision``).
    """

    loss_names = ("loss", "loss_image_to_text", "loss_text_to_image")

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
        **kwargs: Any,
    ) -> None:
        self.keys = (image_key, ids_key, mask_key)
        super().__init__(device, max_epochs, train_data_loader, grad_clip_norm=grad_clip_norm, **kwargs)
        self.network, self.optimizer, self.loss_function = network, optimizer, loss_function
        self.scaler = self.add_scaler("network")
        self._finish_init()

    def default_prepare_batch(self) -> Callable:
        return PrepareBatchKeys(
            self.keys, type(self).__name__, "tokenise the captions with monai_synpriv.transforms.TokenizeTextd."
        )

    def _iteration(self, engine: ImageTextTrainer, batchdata: dict[str, Any]) -> dict[str, torch.Tensor]:
        image, ids, mask = self.prepare_batch(batchdata, engine.state.device, engine.non_blocking, **self.to_kwargs)
        self.network.train()
        self.zero_grad(self.optimizer)
        with self.autocast():
            image_emb, text_emb = self.network(image, ids, mask)
        temperature = unwrap(self.network).temperature
        # the logits and their softmax in fp32
        terms = self.loss_function.terms(image_emb.float(), text_emb.float(), temperature)
        params = [p for p in self.network.parameters() if p.requires_grad]
        self.optimise(terms["total"], self.optimizer, "network", params)
        engine.state.output = {
            "embedding": image_emb.detach().float(),
            "loss": terms["total"].detach(),
            "loss_image_to_text": terms["image_to_text"].detach(),
            "loss_text_to_image": terms["text_to_image"].detach(),
            "temperature": temperature.detach(),
        }
        engine.fire_event(IterationEvents.MODEL_COMPLETED)
        return engine.state.output
