"""``CUTTrainer``: contrastive unpaired translation (CUT and FastCUT) as a MONAI ``Trainer``."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from torch import nn
from torch.optim.optimizer import Optimizer
from torch.utils.data import DataLoader

from ..losses import CUTGeneratorLoss, DiscriminatorLoss
from ..utils.distributed import unwrap
from .base import TranslationTrainerBase
from .keys import TranslationIterationEvents, TranslationKeys
from .utils import requires_grad, to_float

__all__ = ["CUTTrainer"]

K = TranslationKeys


class CUTTrainer(TranslationTrainerBase):
    """
    Contrastive unpaired translation A -> B (Park et al. 2020) on MONAI's engine: one generator, one discriminator
    and a patch-sampling MLP head; no inverse generator, no cycle. The generator's own encoder layers embed the input
    ``a`` and its translation ``G(a)``; PatchNCE makes each patch of ``G(a)`` closer to the patch of ``a`` at the same
    place than to the other patches of ``a`` (:class:`~monai_synpriv.losses.CUTGeneratorLoss`). CUT adds the same
    term between ``b`` and ``G(b)`` (``nce_idt``); FastCUT drops it, weights PatchNCE 10x and flips the generator's
    input half of the time (``flip_equivariance``: the features of ``G(flip(a))`` are flipped back before PatchNCE).

    Each iteration: one forward pass of the generator (``a``, with ``b`` batched in for the identity term), one step
    of the discriminator on ``b`` against ``G(a)`` (LSGAN), then one step of the generator and the MLP head (both in
    ``g_optimizer``). The encoder passes over the inputs, whose features are the PatchNCE keys and get no gradient
    in the reference, run without a graph.

    The generator must provide ``encode(x, layers)`` (:class:`~monai_synpriv.networks.CycleGANResNetGenerator`); the
    head is a :class:`~monai_synpriv.networks.PatchSampleMLP` built for ``generator.feature_channels(nce_layers)``.
    ``engine.state.output`` holds ``real_a``, ``real_b``, ``fake_b`` (aligned with ``real_a`` even when flipped),
    ``loss`` (= ``loss_g``), ``loss_d`` and the generator terms ``loss_gan``, ``loss_nce``, ``loss_nce_idt``,
    ``loss_structure``; each is also averaged per epoch into ``engine.state.metrics["epoch_<name>"]``.

    Checkpointing: save ``generator``, ``discriminator``, ``patch_mlp``, both optimisers (and schedulers) and
    ``trainer``; ``CheckpointLoader`` restores them and training resumes at the saved epoch.

    Args:
        device: where to run.
        max_epochs: total epochs.
        train_data_loader: loader of dicts with ``key_a`` and ``key_b`` (unpaired).
        generator: A -> B, with ``encode``.
        discriminator: judges B images (e.g. MONAI ``PatchDiscriminator``).
        patch_mlp: the PatchNCE projection head.
        g_optimizer: one optimiser over the generator's and the head's parameters.
        d_optimizer: the discriminator's optimiser.
        g_loss_function: default ``CUTGeneratorLoss()`` (CUT: lambda_nce 1, nce_idt).
        d_loss_function: default ``DiscriminatorLoss()`` (LSGAN, x 0.5).
        nce_layers: generator layers read by PatchNCE (default ``generator.default_nce_layers()``).
        num_patches: locations sampled per layer and image (reference 256).
        flip_equivariance: FastCUT's random flip of the generator's input along the last spatial axis.
        key_a, key_b: batch keys of the two domains.
        kwargs: :class:`~monai_synpriv.engines.MixedPrecisionTrainer`'s arguments (``epoch_length``,
            ``train_handlers``, ``precision``, ``grad_clip_norm``, ...).
    """

    loss_names = (K.LOSS_G, K.LOSS_D, "loss_gan", "loss_nce", "loss_nce_idt", "loss_structure")

    def __init__(
        self,
        device: torch.device | str,
        max_epochs: int,
        train_data_loader: Iterable | DataLoader,
        generator: nn.Module,
        discriminator: nn.Module,
        patch_mlp: nn.Module,
        g_optimizer: Optimizer,
        d_optimizer: Optimizer,
        g_loss_function: Callable | None = None,
        d_loss_function: Callable | None = None,
        nce_layers: Sequence[int] | None = None,
        num_patches: int = 256,
        flip_equivariance: bool = False,
        key_a: str = "A",
        key_b: str = "B",
        **kwargs: Any,
    ) -> None:
        super().__init__(device, max_epochs, train_data_loader, g_optimizer, d_optimizer, key_a, key_b, **kwargs)
        self.generator, self.discriminator, self.patch_mlp = generator, discriminator, patch_mlp
        encoder = unwrap(generator)
        if not hasattr(encoder, "encode"):
            raise TypeError(
                f"CUTTrainer needs a generator with encode(x, layers) (e.g. CycleGANResNetGenerator), got "
                f"{type(encoder).__name__}."
            )
        self.nce_layers = list(encoder.default_nce_layers() if nce_layers is None else nce_layers)
        if num_patches < 1:
            raise ValueError(f"num_patches must be positive, got {num_patches}.")
        self.num_patches = int(num_patches)
        self.flip_equivariance = bool(flip_equivariance)
        self.g_loss_function = CUTGeneratorLoss() if g_loss_function is None else g_loss_function
        self.d_loss_function = DiscriminatorLoss() if d_loss_function is None else d_loss_function
        heads = len(getattr(unwrap(patch_mlp), "mlps", self.nce_layers))
        if heads != len(self.nce_layers):
            raise ValueError(f"patch_mlp has {heads} heads for {len(self.nce_layers)} nce_layers {self.nce_layers}.")
        has_bn = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in encoder.modules())
        self.batch_passes = not has_bn
        self._finish_init()

    def _features(self, images: list[torch.Tensor], flip: bool, ids: list | None):
        """PatchNCE samples of each image batch in ``images`` (one encoder pass when the generator normalises per
        sample); with ``ids`` None the locations are drawn (keys, without a graph), else reused (queries)."""
        encoder = unwrap(self.generator)
        sizes = [x.shape[0] for x in images]
        if self.batch_passes and all(x.shape[1:] == images[0].shape[1:] for x in images):
            feats = [encoder.encode(torch.cat(images), self.nce_layers)]
        else:
            feats = [encoder.encode(x, self.nce_layers) for x in images]
        if flip:
            feats = [[f.flip(-1) for f in fs] for fs in feats]
        merged = [torch.cat([fs[i] for fs in feats]) for i in range(len(self.nce_layers))]
        samples, ids = self.patch_mlp(merged, num_patches=self.num_patches, patch_ids=ids)
        # rows are batch-major: split them back into the given image batches
        split = [s.split([n * (s.shape[0] // sum(sizes)) for n in sizes]) for s in samples]
        return [[s[j] for s in split] for j in range(len(images))], ids

    def _iteration(self, engine: CUTTrainer, batchdata: dict[str, Any]) -> dict[str, torch.Tensor]:
        real_a, real_b = self._get_pair(batchdata)
        n = real_a.shape[0]
        loss_fn = self.g_loss_function
        nce_idt = getattr(loss_fn, "nce_idt", False)
        if nce_idt and real_a.shape[1:] != real_b.shape[1:]:
            raise ValueError(
                f"CUT's identity PatchNCE term runs the generator on B: A and B need the same shape per image, got "
                f"{list(real_a.shape[1:])} ({self.key_a}) and {list(real_b.shape[1:])} ({self.key_b}); use FastCUT "
                "(nce_idt false) or resample the domains to one shape."
            )
        flip = self.flip_equivariance and bool(torch.rand(()) < 0.5)
        for net in (self.generator, self.discriminator, self.patch_mlp):
            net.train()

        gen_in = torch.cat([real_a, real_b]) if nce_idt else real_a
        if flip:
            gen_in = gen_in.flip(-1)
        with self.autocast():
            out = self.generator(gen_in)
        fake_b, idt_b = (out[:n], out[n:]) if nce_idt else (out, None)

        # discriminator: real b vs G(a)
        requires_grad([self.discriminator], True)
        self.zero_grad(self.d_optimizer)
        with self.autocast():
            real_pred, fake_pred = self.discriminator(real_b), self.discriminator(fake_b.detach())
        loss_d = self.d_loss_function(*to_float([real_pred, fake_pred]))
        self.optimise(loss_d, self.d_optimizer, "d")
        engine.fire_event(TranslationIterationEvents.DISCRIMINATORS_COMPLETED)

        # generator and MLP head: adversarial + PatchNCE (+ identity PatchNCE, + structure)
        requires_grad([self.discriminator], False)
        self.zero_grad(self.g_optimizer)
        sources = [real_a, real_b] if nce_idt else [real_a]
        targets = [fake_b, idt_b] if nce_idt else [fake_b]
        with self.autocast():
            # unwrapped: under DDP a frozen module's forward would leave DDP waiting for its gradients
            pred_fake = unwrap(self.discriminator)(fake_b)
            with torch.no_grad():
                keys, ids = self._features(sources, flip=False, ids=None)
            queries, _ = self._features(targets, flip=flip, ids=ids)
        fake_b_aligned = fake_b.flip(-1) if flip else fake_b
        terms = loss_fn(
            to_float(pred_fake),
            queries[0],
            keys[0],
            n,
            queries[1] if nce_idt else None,
            keys[1] if nce_idt else None,
            real_a=real_a,
            fake_b=fake_b_aligned.float(),
        )
        loss_g = terms["total"]
        self.optimise(loss_g, self.g_optimizer, "g")
        engine.fire_event(TranslationIterationEvents.GENERATORS_COMPLETED)

        output: dict[str, torch.Tensor] = {
            K.REAL_A: real_a,
            K.REAL_B: real_b,
            K.FAKE_B: fake_b_aligned.detach().float(),
            K.LOSS: loss_g.detach(),
            K.LOSS_G: loss_g.detach(),
            K.LOSS_D: loss_d.detach(),
        }
        return self._publish(engine, output, terms)
