"""``CycleGANTrainer``: unpaired image-to-image translation as a MONAI ``Trainer``."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn
from torch.optim.optimizer import Optimizer
from torch.utils.data import DataLoader

from ..losses import CycleGANGeneratorLoss, DiscriminatorLoss
from ..utils.distributed import unwrap
from .base import TranslationTrainerBase
from .image_pool import ImagePool
from .keys import TranslationIterationEvents, TranslationKeys
from .utils import requires_grad, to_float

__all__ = ["CycleGANTrainer"]

K = TranslationKeys


class CycleGANTrainer(TranslationTrainerBase):
    """
    Unpaired translation between domains A and B (Zhu et al. 2017) on MONAI's engine.

    Two generators (``g_ab``: A -> B, ``g_ba``: B -> A) and two discriminators (``d_a`` judges A images, ``d_b``
    judges B images). Each iteration: one step of the generators on the adversarial + cycle + identity loss
    (:class:`~monai_synpriv.losses.CycleGANGeneratorLoss`), then one step of both discriminators on real images
    and on generated images drawn through a history pool (:class:`ImagePool`).

    The batch is a dict holding ``key_a`` and ``key_b`` (same batch size; A and B need not be paired, see
    :class:`monai_synpriv.data.UnpairedDataset`). ``engine.state.output`` holds the images and losses named in
    :class:`TranslationKeys`; ``loss`` is the generators' total, and ``IterationEvents.MODEL_COMPLETED`` is fired
    so that MONAI decollates the output and its default MLflow/stats handlers (``--tracking mlflow``) work.
    Every loss term is also averaged per epoch into ``engine.state.metrics`` (``epoch_loss_g``, ...).

    ``precision`` (``fp32``, ``bf16``, ``fp16``, ``auto``) sets the autocast of the forward passes on CPU or CUDA; the
    losses are computed in fp32, and in fp16 each optimiser has its gradient scaler (checkpointed with ``trainer``).
    When the generators normalise per sample (instance norm, the default), the passes through each generator are
    batched (G(a) with G(b), F(b) with F(a)), which gives identical results with fewer kernel launches.

    Checkpointing: save ``g_ab``, ``g_ba``, ``d_a``, ``d_b``, both optimisers (and schedulers), ``trainer`` and
    ``pool_a``/``pool_b`` (``trainer.pool_a``) with MONAI's ``CheckpointSaver``; ``CheckpointLoader`` restores them
    and training resumes at the saved epoch.

    Args:
        device: where to run.
        max_epochs: total epochs.
        train_data_loader: loader of dicts with ``key_a`` and ``key_b``.
        g_ab, g_ba: generators A -> B and B -> A.
        d_a, d_b: discriminators of domains A and B (e.g. MONAI ``PatchDiscriminator``).
        g_optimizer: one optimiser over both generators' parameters.
        d_optimizer: one optimiser over both discriminators' parameters.
        g_loss_function: the generators' loss; default ``CycleGANGeneratorLoss()`` (10 x cycle, 0.5 identity, LSGAN).
        d_loss_function: the discriminators' loss; default ``DiscriminatorLoss()`` (LSGAN, x 0.5).
        pool_size: size of each history pool (reference 50; 0 disables).
        key_a, key_b: batch keys of the two domains.
        batch_generator_passes: batch the two passes through each generator (requires per-sample normalisation;
            switched off automatically when a generator contains batch normalisation).
        kwargs: :class:`~monai_synpriv.engines.MixedPrecisionTrainer`'s arguments (MONAI's ``Trainer`` arguments:
            ``epoch_length``, ``prepare_batch``, ``iteration_update``, ``postprocessing``, ``key_train_metric``,
            ``train_handlers``, ..., and ``precision``, ``grad_clip_norm``).
    """

    loss_names = (
        K.LOSS_G,
        K.LOSS_D_A,
        K.LOSS_D_B,
        "loss_gan_ab",
        "loss_gan_ba",
        "loss_cycle_a",
        "loss_cycle_b",
        "loss_identity_a",
        "loss_identity_b",
        "loss_structure",
    )

    def __init__(
        self,
        device: torch.device | str,
        max_epochs: int,
        train_data_loader: Iterable | DataLoader,
        g_ab: nn.Module,
        g_ba: nn.Module,
        d_a: nn.Module,
        d_b: nn.Module,
        g_optimizer: Optimizer,
        d_optimizer: Optimizer,
        g_loss_function: Callable | None = None,
        d_loss_function: Callable | None = None,
        pool_size: int = 50,
        key_a: str = "A",
        key_b: str = "B",
        batch_generator_passes: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(device, max_epochs, train_data_loader, g_optimizer, d_optimizer, key_a, key_b, **kwargs)
        self.g_ab, self.g_ba, self.d_a, self.d_b = g_ab, g_ba, d_a, d_b
        self.g_loss_function = CycleGANGeneratorLoss() if g_loss_function is None else g_loss_function
        self.d_loss_function = DiscriminatorLoss() if d_loss_function is None else d_loss_function
        self.pool_a, self.pool_b = ImagePool(pool_size), ImagePool(pool_size)
        has_bn = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for g in (g_ab, g_ba) for m in g.modules())
        self.batch_generator_passes = batch_generator_passes and not has_bn
        self._finish_init()

    def _generate(self, real_a: torch.Tensor, real_b: torch.Tensor, with_identity: bool) -> dict[str, torch.Tensor]:
        """fake_b = G(a), fake_a = F(b), rec_a = F(G(a)), rec_b = G(F(b)), idt_b = G(b), idt_a = F(a)."""
        out: dict[str, torch.Tensor] = {}
        n = real_a.shape[0]
        if self.batch_generator_passes and with_identity and real_a.shape[1:] == real_b.shape[1:]:
            fake_b, out["idt_b"] = self.g_ab(torch.cat([real_a, real_b])).split([n, real_b.shape[0]])
            fake_a, out["idt_a"] = self.g_ba(torch.cat([real_b, real_a])).split([real_b.shape[0], n])
        else:
            fake_b, fake_a = self.g_ab(real_a), self.g_ba(real_b)
            if with_identity:
                out["idt_b"], out["idt_a"] = self.g_ab(real_b), self.g_ba(real_a)
        out[K.FAKE_B], out[K.FAKE_A] = fake_b, fake_a
        out[K.REC_A], out[K.REC_B] = self.g_ba(fake_b), self.g_ab(fake_a)
        return out

    def _iteration(self, engine: CycleGANTrainer, batchdata: dict[str, Any]) -> dict[str, torch.Tensor]:
        real_a, real_b = self._get_pair(batchdata)
        with_identity = getattr(self.g_loss_function, "lambda_identity", 0.0) > 0
        if with_identity and real_a.shape[1] != real_b.shape[1]:
            raise ValueError(
                f"Identity loss needs A and B with the same channel count, got {real_a.shape[1]} ({self.key_a}) "
                f"and {real_b.shape[1]} ({self.key_b}); set lambda_identity=0 in the generator loss."
            )

        # generators: discriminators frozen
        for net in (self.g_ab, self.g_ba, self.d_a, self.d_b):
            net.train()
        requires_grad([self.d_a, self.d_b], False)
        self.zero_grad(self.g_optimizer)
        with self.autocast():
            gen = self._generate(real_a, real_b, with_identity)
            # the unwrapped discriminators: under DistributedDataParallel a forward pass whose parameters get no
            # gradient would leave DDP waiting for a reduction that never comes
            pred_fake_b, pred_fake_a = unwrap(self.d_b)(gen[K.FAKE_B]), unwrap(self.d_a)(gen[K.FAKE_A])
        gen = {k: v.float() for k, v in gen.items()}  # the losses in fp32
        g_terms = self.g_loss_function(
            to_float(pred_fake_b),
            to_float(pred_fake_a),
            real_a,
            real_b,
            gen[K.REC_A],
            gen[K.REC_B],
            gen.get("idt_a"),
            gen.get("idt_b"),
            fake_a=gen[K.FAKE_A],
            fake_b=gen[K.FAKE_B],
        )
        loss_g = g_terms["total"]
        self.optimise(loss_g, self.g_optimizer, "g")
        engine.fire_event(TranslationIterationEvents.GENERATORS_COMPLETED)

        # discriminators: real vs (pooled) fake
        requires_grad([self.d_a, self.d_b], True)
        self.zero_grad(self.d_optimizer)
        fake_b_pool = self.pool_b.query(gen[K.FAKE_B])
        fake_a_pool = self.pool_a.query(gen[K.FAKE_A])
        with self.autocast():
            preds = [self.d_b(real_b), self.d_b(fake_b_pool), self.d_a(real_a), self.d_a(fake_a_pool)]
        real_pred_b, fake_pred_b, real_pred_a, fake_pred_a = to_float(preds)
        loss_d_b = self.d_loss_function(real_pred_b, fake_pred_b)
        loss_d_a = self.d_loss_function(real_pred_a, fake_pred_a)
        self.optimise(loss_d_a + loss_d_b, self.d_optimizer, "d")
        engine.fire_event(TranslationIterationEvents.DISCRIMINATORS_COMPLETED)

        output: dict[str, torch.Tensor] = {
            K.REAL_A: real_a,
            K.REAL_B: real_b,
            K.FAKE_B: gen[K.FAKE_B].detach(),
            K.FAKE_A: gen[K.FAKE_A].detach(),
            K.REC_A: gen[K.REC_A].detach(),
            K.REC_B: gen[K.REC_B].detach(),
            K.LOSS: loss_g.detach(),
            K.LOSS_G: loss_g.detach(),
            K.LOSS_D: (loss_d_a + loss_d_b).detach(),
            K.LOSS_D_A: loss_d_a.detach(),
            K.LOSS_D_B: loss_d_b.detach(),
        }
        return self._publish(engine, output, g_terms)
