"""``Pix2PixTrainer``: paired image-to-image translation as a MONAI ``Trainer``."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from monai.engines.utils import IterationEvents
from torch import nn
from torch.optim.optimizer import Optimizer
from torch.utils.data import DataLoader

from ..losses import DiscriminatorLoss, Pix2PixGeneratorLoss
from ..utils.distributed import unwrap
from .base import TranslationTrainerBase
from .keys import TranslationIterationEvents, TranslationKeys
from .utils import requires_grad, to_float

__all__ = ["Pix2PixTrainer"]

K = TranslationKeys


class Pix2PixTrainer(TranslationTrainerBase):
    """
    Paired translation A -> B (Isola et al. 2017) for small aligned sets: a generator and a *conditional*
    discriminator that judges the concatenation (a, b) — so ``discriminator`` takes ``in_channels_a + in_channels_b``
    channels. Each iteration: one generator step on ``adv + lambda_l1 * L1`` (:class:`Pix2PixGeneratorLoss`), then one
    discriminator step on real (a, b) against (a, G(a)).

    Output keys (:class:`TranslationKeys`): ``real_a``, ``real_b``, ``fake_b``, ``loss`` (= ``loss_g``), ``loss_d``,
    ``loss_gan``, ``loss_l1``; ``MODEL_COMPLETED`` is fired, per-epoch averages land in ``state.metrics``.

    It is built on :class:`TranslationTrainerBase` rather than MONAI's ``AdversarialTrainer``: that one's
    discriminator judges an image alone (pix2pix's judges the pair), its autocast and scaler are CUDA-only and its
    scaler state is not checkpointed.

    Args: as :class:`CycleGANTrainer`, with ``generator``/``discriminator`` instead of the two pairs.
    """

    loss_names = (K.LOSS_G, K.LOSS_D, "loss_gan", "loss_l1")

    def __init__(
        self,
        device: torch.device | str,
        max_epochs: int,
        train_data_loader: Iterable | DataLoader,
        generator: nn.Module,
        discriminator: nn.Module,
        g_optimizer: Optimizer,
        d_optimizer: Optimizer,
        g_loss_function: Callable | None = None,
        d_loss_function: Callable | None = None,
        key_a: str = "A",
        key_b: str = "B",
        **kwargs: Any,
    ) -> None:
        super().__init__(device, max_epochs, train_data_loader, g_optimizer, d_optimizer, key_a, key_b, **kwargs)
        self.generator, self.discriminator = generator, discriminator
        self.g_loss_function = Pix2PixGeneratorLoss() if g_loss_function is None else g_loss_function
        self.d_loss_function = DiscriminatorLoss() if d_loss_function is None else d_loss_function
        self._finish_init()

    def _iteration(self, engine: Pix2PixTrainer, batchdata: dict[str, Any]) -> dict[str, torch.Tensor]:
        real_a, real_b = self._get_pair(batchdata)
        if real_a.shape[2:] != real_b.shape[2:]:
            raise ValueError(
                f"Pix2PixTrainer needs aligned pairs: {self.key_a} has spatial shape {list(real_a.shape[2:])}, "
                f"{self.key_b} has {list(real_b.shape[2:])}."
            )
        self.generator.train()
        self.discriminator.train()
        requires_grad([self.discriminator], False)
        self.zero_grad(self.g_optimizer)
        with self.autocast():
            fake_b = self.generator(real_a)
            pred_fake = unwrap(self.discriminator)(torch.cat([real_a, fake_b], 1))
        fake_b = fake_b.float()  # the losses in fp32
        g_terms = self.g_loss_function(to_float(pred_fake), fake_b, real_b)
        self.optimise(g_terms["total"], self.g_optimizer, "g")
        engine.fire_event(TranslationIterationEvents.GENERATORS_COMPLETED)

        requires_grad([self.discriminator], True)
        self.zero_grad(self.d_optimizer)
        with self.autocast():
            pred_real = self.discriminator(torch.cat([real_a, real_b], 1))
            pred_fake = self.discriminator(torch.cat([real_a, fake_b.detach()], 1))
        loss_d = self.d_loss_function(to_float(pred_real), to_float(pred_fake))
        self.optimise(loss_d, self.d_optimizer, "d")
        engine.fire_event(TranslationIterationEvents.DISCRIMINATORS_COMPLETED)

        loss_g = g_terms["total"].detach()
        engine.state.output = {
            K.REAL_A: real_a,
            K.REAL_B: real_b,
            K.FAKE_B: fake_b.detach(),
            K.LOSS: loss_g,
            K.LOSS_G: loss_g,
            K.LOSS_D: loss_d.detach(),
            "loss_gan": g_terms["gan"].detach(),
            "loss_l1": g_terms["l1"].detach(),
        }
        engine.fire_event(IterationEvents.MODEL_COMPLETED)
        return engine.state.output
