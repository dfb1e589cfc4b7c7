"""``MultiBranchSSLTrainer``: multimodal self-supervised learning (Siamese, privileged Siamese, TriDeNT)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import torch
from monai.engines import Trainer
from monai.engines.utils import IterationEvents
from monai.utils import IgniteInfo, min_version, optional_import
from torch.optim.optimizer import Optimizer
from torch.utils.data import DataLoader

from ..networks.multibranch import MultiBranchSSLNet
from ..utils.distributed import unwrap
from .utils import attach_loss_averages, autocast_context, backward_and_step, make_grad_scaler, to_plain_tensor

if TYPE_CHECKING:
    from ignite.engine import EventEnum
else:
    EventEnum, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "EventEnum")

__all__ = ["MultiBranchSSLTrainer"]


class MultiBranchSSLTrainer(Trainer):
    """
    One optimisation step per batch of a :class:`~monai_synpriv.networks.MultiBranchSSLNet`: branch ``k`` receives
    ``batch[branch_keys[k]]`` (e.g. ``["image", "image_2", "privileged"]`` for TriDeNT: two augmented views of the
    primary image and the augmented privileged image), the embeddings go to ``loss_function`` (a list of B x D
    tensors in, a scalar out: :class:`~monai_synpriv.losses.MultiBranchVICRegLoss`, ``CrossViewInfoNCELoss``,
    ``MultiBranchBarlowTwinsLoss``), then backward, optional gradient-norm clipping (reference 1.0) and the step.

    ``engine.state.output`` holds ``loss``, the primary branch's ``embedding`` (B x D, detached) and, when the loss
    has a ``terms`` method (VICReg), ``loss_<term>``;
    ``IterationEvents.MODEL_COMPLETED`` is fired (MONAI's ``--tracking mlflow`` handlers work) and every loss value is
    averaged per epoch into ``state.metrics["epoch_<name>"]``. AMP with a gradient scaler on CUDA.

    Args:
        device, max_epochs, train_data_loader, epoch_length, non_blocking: as MONAI's ``SupervisedTrainer``.
        network: the multi-branch network.
        optimizer: its optimiser.
        loss_function: loss over the list of branch embeddings.
        branch_keys: batch key of each branch, in branch order (branch 0 = primary modality).
        grad_clip_norm: clip the global gradient norm to this value (None: no clipping).
        train_handlers, amp, amp_kwargs, event_names, event_to_attr, decollate, optim_set_to_none: as MONAI's.
    """

    def __init__(
        self,
        device: torch.device | str,
        max_epochs: int,
        train_data_loader: Iterable | DataLoader,
        network: MultiBranchSSLNet | torch.nn.Module,
        optimizer: Optimizer,
        loss_function: Callable,
        branch_keys: Sequence[str],
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
        net = unwrap(network)  # DistributedDataParallel under torchrun
        if len(branch_keys) != net.num_branches:
            raise ValueError(
                f"branch_keys {list(branch_keys)} name {len(branch_keys)} inputs but the network has "
                f"{net.num_branches} branches (encoder_indices {net.encoder_indices})."
            )
        self.network, self.optimizer, self.loss_function = network, optimizer, loss_function
        self.branch_keys = list(branch_keys)
        self.grad_clip_norm = grad_clip_norm
        self.optim_set_to_none = optim_set_to_none
        self.scaler_ = make_grad_scaler(self.amp)
        names = ["loss"]
        if hasattr(loss_function, "terms"):
            names += ["loss_invariance", "loss_variance", "loss_covariance"]
        attach_loss_averages(self, names)
        if train_handlers is not None:
            self._register_handlers(train_handlers)

    def _iteration(self, engine: MultiBranchSSLTrainer, batchdata: dict[str, Any]) -> dict[str, torch.Tensor]:
        if batchdata is None:
            raise ValueError("Must provide batch data for current iteration.")
        missing = [k for k in self.branch_keys if k not in batchdata]
        if missing:
            raise KeyError(
                f"MultiBranchSSLTrainer: batch has no key(s) {missing} (keys: {sorted(batchdata)}); "
                f"branch_keys are {self.branch_keys}."
            )
        views = [to_plain_tensor(batchdata[k], engine.state.device, engine.non_blocking) for k in self.branch_keys]
        self.network.train()
        self.optimizer.zero_grad(set_to_none=self.optim_set_to_none)
        with autocast_context(self.amp, self.amp_kwargs):
            embeddings = self.network(views)
        embeddings = [e.float() for e in embeddings]  # the loss in full precision
        if hasattr(self.loss_function, "terms"):
            terms = self.loss_function.terms(embeddings)
            loss = terms["total"]
        else:
            terms, loss = {}, self.loss_function(embeddings)
        backward_and_step(loss, self.optimizer, self.scaler_, self.network.parameters(), self.grad_clip_norm)
        # the primary branch's embeddings travel with the losses: collapse monitors read them, and they give the
        # output a batch dimension so that MONAI decollates it into the list its default handlers expect
        output = {"embedding": embeddings[0].detach(), "loss": loss.detach()}
        output.update({f"loss_{k}": v.detach() for k, v in terms.items() if k != "total"})
        engine.state.output = output
        engine.fire_event(IterationEvents.MODEL_COMPLETED)
        return engine.state.output
