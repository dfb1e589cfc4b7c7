"""``ContrastiveAutoEncoderTrainer``: reconstruction + NT-Xent training of a contrastive autoencoder or VAE."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from monai.engines.utils import IterationEvents
from torch.optim.optimizer import Optimizer
from torch.utils.data import DataLoader

from ..losses.autoencoder import ContrastiveAutoEncoderLoss
from ..networks.autoencoder import ContrastiveAutoEncoder
from ..utils.distributed import unwrap
from .base import MixedPrecisionTrainer, PrepareBatchKeys

__all__ = ["ContrastiveAutoEncoderTrainer"]


class ContrastiveAutoEncoderTrainer(MixedPrecisionTrainer):
    """
    One optimisation step per batch of a :class:`~monai_synpriv.networks.ContrastiveAutoEncoder`: the two augmented
    views ``batch[view_keys[0]]`` and ``batch[view_keys[1]]`` go through the network in one batched pass (batch
    norm sees both), each view is reconstructed, the latents are projected, and
    :class:`~monai_synpriv.losses.ContrastiveAutoEncoderLoss` gives reconstruction + NT-Xent (+ KL for a VAE).

    ``engine.state.output`` holds ``loss``, ``loss_reconstruction``, ``loss_contrastive``, ``loss_kl`` and the first
    view's latent ``embedding`` (B x latent, detached: collapse monitors read it); ``IterationEvents.MODEL_COMPLETED``
    is fired and each loss is averaged per epoch into ``state.metrics["epoch_<name>"]``. ``precision`` sets the
    forward pass's autocast on CPU or CUDA; the loss is computed in fp32.

    Args:
        device, max_epochs, train_data_loader, epoch_length, non_blocking: as MONAI's ``SupervisedTrainer``.
        network: the contrastive autoencoder (or its ``DistributedDataParallel`` wrapper).
        optimizer: its optimiser.
        loss_function: the contrastive autoencoder loss.
        view_keys: batch keys of the two views.
        grad_clip_norm: clip the global gradient norm to this value (None: no clipping).
        kwargs: :class:`~monai_synpriv.engines.MixedPrecisionTrainer`'s arguments (MONAI's ``Trainer`` arguments and
            ``precision``).
    """

    loss_names = ("loss", "loss_reconstruction", "loss_contrastive", "loss_kl")

    def __init__(
        self,
        device: torch.device | str,
        max_epochs: int,
        train_data_loader: Iterable | DataLoader,
        network: ContrastiveAutoEncoder | torch.nn.Module,
        optimizer: Optimizer,
        loss_function: ContrastiveAutoEncoderLoss,
        view_keys: Sequence[str] = ("image", "image_2"),
        grad_clip_norm: float | None = None,
        **kwargs: Any,
    ) -> None:
        if len(view_keys) != 2:
            raise ValueError(f"view_keys must name two views, got {list(view_keys)}.")
        if not isinstance(unwrap(network), ContrastiveAutoEncoder):
            raise TypeError(f"network must be a ContrastiveAutoEncoder, got {type(unwrap(network)).__name__}.")
        self.view_keys = list(view_keys)
        super().__init__(device, max_epochs, train_data_loader, grad_clip_norm=grad_clip_norm, **kwargs)
        self.network, self.optimizer, self.loss_function = network, optimizer, loss_function
        self.scaler = self.add_scaler("network")
        self._finish_init()

    def default_prepare_batch(self) -> Callable:
        return PrepareBatchKeys(self.view_keys, type(self).__name__, f"view_keys are {self.view_keys}.")

    def _iteration(self, engine: ContrastiveAutoEncoderTrainer, batchdata: dict[str, Any]) -> dict[str, torch.Tensor]:
        v1, v2 = self.prepare_batch(batchdata, engine.state.device, engine.non_blocking, **self.to_kwargs)[:2]
        if v1.shape != v2.shape:
            raise ValueError(f"the two views must have one shape, got {tuple(v1.shape)} and {tuple(v2.shape)}.")
        n = v1.shape[0]
        net = unwrap(self.network)
        self.network.train()
        self.zero_grad(self.optimizer)
        with self.autocast():
            recon, mu, logvar, z = self.network(torch.cat([v1, v2]))
            proj = net.project(z)
        recon, mu, proj = recon.float(), mu.float(), proj.float()  # the loss in full precision
        logvar = logvar.float() if logvar is not None else None
        terms = self.loss_function.terms(
            [v1, v2],
            [recon[:n], recon[n:]],
            [proj[:n], proj[n:]],
            [mu[:n], mu[n:]],
            [None, None] if logvar is None else [logvar[:n], logvar[n:]],
        )
        loss = terms["total"]
        self.optimise(loss, self.optimizer, "network", self.network.parameters())
        output = {"embedding": mu[:n].detach(), "loss": loss.detach()}
        output.update({f"loss_{k}": v.detach() for k, v in terms.items() if k != "total"})
        engine.state.output = output
        engine.fire_event(IterationEvents.MODEL_COMPLETED)
        return engine.state.output
