"""``ContrastiveAutoEncoderTrainer``: reconstruction + NT-Xent training of a contrastive autoencoder or VAE."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import torch
from monai.engines import Trainer
from monai.engines.utils import IterationEvents
from monai.utils import IgniteInfo, min_version, optional_import
from torch.optim.optimizer import Optimizer
from torch.utils.data import DataLoader

from ..losses.autoencoder import ContrastiveAutoEncoderLoss
from ..networks.autoencoder import ContrastiveAutoEncoder
from ..utils.distributed import unwrap
from .utils import attach_loss_averages, autocast_context, backward_and_step, make_grad_scaler, to_plain_tensor

if TYPE_CHECKING:
    from ignite.engine import EventEnum
else:
    EventEnum, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "EventEnum")

__all__ = ["ContrastiveAutoEncoderTrainer"]


class ContrastiveAutoEncoderTrainer(Trainer):
    """
    One optimisation step per batch of a :class:`~monai_synpriv.networks.ContrastiveAutoEncoder`: the two augmented
    views ``batch[view_keys[0]]`` and ``batch[view_keys[1]]`` go through the network in one batched pass (batch
    norm sees both), each view is reconstructed, the latents are projected, and
    :class:`~monai_synpriv.losses.ContrastiveAutoEncoderLoss` gives reconstruction + NT-Xent (+ KL for a VAE).

    ``engine.state.output`` holds ``loss``, ``loss_reconstruction``, ``loss_contrastive``, ``loss_kl`` and the first
    view's latent ``embedding`` (B x latent, detached: collapse monitors read it); ``IterationEvents.MODEL_COMPLETED``
    is fired and each loss is averaged per epoch into ``state.metrics["epoch_<name>"]``. AMP with a gradient scaler
    on CUDA.

    Args:
        device, max_epochs, train_data_loader, epoch_length, non_blocking: as MONAI's ``SupervisedTrainer``.
        network: the contrastive autoencoder (or its ``DistributedDataParallel`` wrapper).
        optimizer: its optimiser.
        loss_function: the contrastive autoencoder loss.
        view_keys: batch keys of the two views.
        grad_clip_norm: clip the global gradient norm to this value (None: no clipping).
        train_handlers, amp, amp_kwargs, event_names, event_to_attr, decollate, optim_set_to_none: as MONAI's.
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
        if len(view_keys) != 2:
            raise ValueError(f"view_keys must name two views, got {list(view_keys)}.")
        if not isinstance(unwrap(network), ContrastiveAutoEncoder):
            raise TypeError(f"network must be a ContrastiveAutoEncoder, got {type(unwrap(network)).__name__}.")
        self.network, self.optimizer, self.loss_function = network, optimizer, loss_function
        self.view_keys = list(view_keys)
        self.grad_clip_norm = grad_clip_norm
        self.optim_set_to_none = optim_set_to_none
        self.scaler_ = make_grad_scaler(self.amp)
        attach_loss_averages(self, self.loss_names)
        if train_handlers is not None:
            self._register_handlers(train_handlers)

    def _iteration(self, engine: ContrastiveAutoEncoderTrainer, batchdata: dict[str, Any]) -> dict[str, torch.Tensor]:
        if batchdata is None:
            raise ValueError("Must provide batch data for current iteration.")
        missing = [k for k in self.view_keys if k not in batchdata]
        if missing:
            raise KeyError(
                f"ContrastiveAutoEncoderTrainer: batch has no key(s) {missing} (keys: {sorted(batchdata)}); "
                f"view_keys are {self.view_keys}."
            )
        v1, v2 = (to_plain_tensor(batchdata[k], engine.state.device, engine.non_blocking) for k in self.view_keys)
        if v1.shape != v2.shape:
            raise ValueError(f"the two views must have one shape, got {tuple(v1.shape)} and {tuple(v2.shape)}.")
        n = v1.shape[0]
        net = unwrap(self.network)
        self.network.train()
        self.optimizer.zero_grad(set_to_none=self.optim_set_to_none)
        with autocast_context(self.amp, self.amp_kwargs):
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
        backward_and_step(loss, self.optimizer, self.scaler_, self.network.parameters(), self.grad_clip_norm)
        output = {"embedding": mu[:n].detach(), "loss": loss.detach()}
        output.update({f"loss_{k}": v.detach() for k, v in terms.items() if k != "total"})
        engine.state.output = output
        engine.fire_event(IterationEvents.MODEL_COMPLETED)
        return engine.state.output
