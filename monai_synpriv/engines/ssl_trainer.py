"""``MultiBranchSSLTrainer``: multimodal self-supervised learning (Siamese, privileged Siamese, TriDeNT)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from monai.engines.utils import IterationEvents
from torch.optim.optimizer import Optimizer
from torch.utils.data import DataLoader

from ..networks.multibranch import MultiBranchSSLNet
from ..utils.distributed import unwrap
from .base import MixedPrecisionTrainer, PrepareBatchKeys

__all__ = ["MultiBranchSSLTrainer"]


class MultiBranchSSLTrainer(MixedPrecisionTrainer):
    """
    One optimisation step per batch of a :class:`~monai_synpriv.networks.MultiBranchSSLNet`: branch ``k`` receives
    ``batch[branch_keys[k]]`` (e.g. ``["image", "image_2", "privileged"]`` for TriDeNT: two augmented views of the
    primary image and the augmented privileged image), the embeddings go to ``loss_function`` (a list of B x D
    tensors in, a scalar out: :class:`~monai_synpriv.losses.MultiBranchVICRegLoss`, ``CrossViewInfoNCELoss``,
    ``MultiBranchBarlowTwinsLoss``), then backward, optional gradient-norm clipping (reference 1.0) and the step.

    ``engine.state.output`` holds ``loss``, the primary branch's ``embedding`` (B x D, detached) and, when the loss
    has a ``terms`` method (VICReg), ``loss_<term>``;
    ``IterationEvents.MODEL_COMPLETED`` is fired (MONAI's ``--tracking mlflow`` handlers work) and every loss value is
    averaged per epoch into ``state.metrics["epoch_<name>"]``. ``precision`` sets the forward pass's autocast on
    CPU or CUDA; the loss is computed in fp32.

    Args:
        device, max_epochs, train_data_loader, epoch_length, non_blocking: as MONAI's ``SupervisedTrainer``.
        network: the multi-branch network.
        optimizer: its optimiser.
        loss_function: loss over the list of branch embeddings.
        branch_keys: batch key of each branch, in branch order (branch 0 = primary modality).
        grad_clip_norm: clip the global gradient norm to this value (None: no clipping).
        kwargs: :class:`~monai_synpriv.engines.MixedPrecisionTrainer`'s arguments (MONAI's ``Trainer`` arguments and
            ``precision``). A custom ``prepare_batch`` returns the branch tensors in branch order.
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
        **kwargs: Any,
    ) -> None:
        net = unwrap(network)  # DistributedDataParallel under torchrun
        if len(branch_keys) != net.num_branches:
            raise ValueError(
                f"branch_keys {list(branch_keys)} name {len(branch_keys)} inputs but the network has "
                f"{net.num_branches} branches (encoder_indices {net.encoder_indices})."
            )
        self.branch_keys = list(branch_keys)
        if hasattr(loss_function, "terms"):
            self.loss_names = ("loss", "loss_invariance", "loss_variance", "loss_covariance")
        super().__init__(device, max_epochs, train_data_loader, grad_clip_norm=grad_clip_norm, **kwargs)
        self.network, self.optimizer, self.loss_function = network, optimizer, loss_function
        self.scaler = self.add_scaler("network")
        self._finish_init()

    def default_prepare_batch(self) -> Callable:
        return PrepareBatchKeys(self.branch_keys, type(self).__name__, f"branch_keys are {self.branch_keys}.")

    def _iteration(self, engine: MultiBranchSSLTrainer, batchdata: dict[str, Any]) -> dict[str, torch.Tensor]:
        views = list(self.prepare_batch(batchdata, engine.state.device, engine.non_blocking, **self.to_kwargs))
        self.network.train()
        self.zero_grad(self.optimizer)
        with self.autocast():
            embeddings = self.network(views)
        embeddings = [e.float() for e in embeddings]  # the loss (VICReg variance/covariance, InfoNCE logits) in fp32
        if hasattr(self.loss_function, "terms"):
            terms = self.loss_function.terms(embeddings)
            loss = terms["total"]
        else:
            terms, loss = {}, self.loss_function(embeddings)
        self.optimise(loss, self.optimizer, "network", self.network.parameters())
        # the primary branch's embeddings travel with the losses: collapse monitors read them, and they give the
        # output a batch dimension so that MONAI decollates it into the list its default handlers expect
        output = {"embedding": embeddings[0].detach(), "loss": loss.detach()}
        output.update({f"loss_{k}": v.detach() for k, v in terms.items() if k != "total"})
        engine.state.output = output
        engine.fire_event(IterationEvents.MODEL_COMPLETED)
        return engine.state.output
