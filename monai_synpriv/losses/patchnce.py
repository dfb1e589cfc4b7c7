"""CUT's PatchNCE loss and generator objective (Park et al. 2020, "Contrastive Learning for Unpaired
Image-to-Image Translation")."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from .adversarial import last_output, make_adversarial_loss

__all__ = ["PatchNCELoss", "CUTGeneratorLoss"]


class PatchNCELoss(nn.Module):
    """
    InfoNCE between corresponding patches of the input and the translated image, negatives drawn from the other
    patches *of the same image*. For a query ``q_i`` (the translated image's patch ``i``) and keys ``k_j`` (the
    input's patches), per image::

        loss_i = -log( exp(q_i . k_i / T) / (exp(q_i . k_i / T) + sum_{j != i} exp(q_i . k_j / T)) )

    Keys are detached (only the query side gets gradients, as in the reference). Inputs are L2-normalised vectors as
    :class:`~monai_synpriv.networks.PatchSampleMLP` returns them, batch-major.

    Args:
        temperature: ``T`` (reference 0.07).
    """

    def __init__(self, temperature: float = 0.07) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}.")
        self.temperature = float(temperature)

    def forward(self, feat_q: torch.Tensor, feat_k: torch.Tensor, batch_size: int) -> torch.Tensor:
        """
        Args:
            feat_q: queries, (B * P, C); feat_k: keys, (B * P, C), patch ``i`` of image ``b`` at row ``b * P + i``.
            batch_size: ``B`` (negatives are taken within each image).

        Returns:
            the loss of every patch, shape (B * P,).
        """
        if feat_q.shape != feat_k.shape or feat_q.ndim != 2:
            raise ValueError(f"feat_q and feat_k must be (B * P, C) of one shape, got {feat_q.shape} and {feat_k.shape}.")
        if batch_size < 1 or feat_q.shape[0] % batch_size:
            raise ValueError(f"{feat_q.shape[0]} rows cannot be split into batch_size={batch_size} images.")
        feat_q, feat_k = feat_q.float(), feat_k.detach().float()
        num = feat_q.shape[0]
        l_pos = (feat_q * feat_k).sum(dim=1, keepdim=True)  # (B*P, 1)
        q = feat_q.view(batch_size, -1, feat_q.shape[1])
        k = feat_k.view(batch_size, -1, feat_k.shape[1])
        l_neg = torch.bmm(q, k.transpose(1, 2))  # (B, P, P)
        eye = torch.eye(l_neg.shape[1], dtype=torch.bool, device=l_neg.device)[None]
        l_neg = l_neg.masked_fill(eye, -10.0).view(num, -1)  # the positive is not its own negative
        logits = torch.cat([l_pos, l_neg], dim=1) / self.temperature
        return F.cross_entropy(logits, torch.zeros(num, dtype=torch.long, device=logits.device), reduction="none")


class CUTGeneratorLoss(nn.Module):
    """
    The generator's objective of CUT and FastCUT::

        L = lambda_gan * adv(D(G(a)))
          + lambda_nce * mean_layers PatchNCE(H(E(G(a))), H(E(a)))            # CUT: averaged with the identity term
          [+ lambda_nce * mean_layers PatchNCE(H(E(G(b))), H(E(b)))] / 2     # nce_idt (CUT; off in FastCUT)
          + lambda_structure * structure(a, G(a))                             # optional, e.g. MINDStructureLoss

    ``E`` is the generator's own encoder (:meth:`CycleGANResNetGenerator.encode`), ``H`` a
    :class:`~monai_synpriv.networks.PatchSampleMLP`. Reference settings: CUT ``lambda_nce=1, nce_idt=True``;
    FastCUT ``lambda_nce=10, nce_idt=False`` (with flip-equivariance augmentation, an option of the trainer).

    Args:
        lambda_gan: weight of the adversarial term.
        lambda_nce: weight of the PatchNCE term.
        nce_idt: add the identity PatchNCE term on target-domain images (CUT).
        temperature: PatchNCE temperature.
        criterion: adversarial criterion (``"least_squares"`` = LSGAN, ``"bce"``, ``"hinge"``).
        structure_loss: a module ``(source, translated) -> scalar`` (e.g. MIND), or None.
        lambda_structure: its weight (0 disables it).
    """

    def __init__(
        self,
        lambda_gan: float = 1.0,
        lambda_nce: float = 1.0,
        nce_idt: bool = True,
        temperature: float = 0.07,
        criterion: str = "least_squares",
        structure_loss: nn.Module | None = None,
        lambda_structure: float = 0.0,
    ) -> None:
        super().__init__()
        for name, value in (("lambda_gan", lambda_gan), ("lambda_nce", lambda_nce), ("lambda_structure", lambda_structure)):
            if value < 0:
                raise ValueError(f"{name} must be >= 0, got {value}.")
        if lambda_structure > 0 and structure_loss is None:
            raise ValueError("lambda_structure > 0 needs a structure_loss (e.g. monai_synpriv.losses.MINDStructureLoss).")
        self.lambda_gan, self.lambda_nce, self.nce_idt = float(lambda_gan), float(lambda_nce), bool(nce_idt)
        self.lambda_structure = float(lambda_structure)
        self.structure_loss = structure_loss
        self.patch_nce = PatchNCELoss(temperature)
        self.adversarial = make_adversarial_loss(criterion)

    def nce(self, feat_q: Sequence[torch.Tensor], feat_k: Sequence[torch.Tensor], batch_size: int) -> torch.Tensor:
        """PatchNCE averaged over patches and over layers (unweighted)."""
        if len(feat_q) != len(feat_k) or not feat_q:
            raise ValueError(f"need as many query as key layers (>= 1), got {len(feat_q)} and {len(feat_k)}.")
        return torch.stack([self.patch_nce(q, k, batch_size).mean() for q, k in zip(feat_q, feat_k)]).mean()

    def forward(
        self,
        fake_b_logits: torch.Tensor | list,
        feat_q: Sequence[torch.Tensor],
        feat_k: Sequence[torch.Tensor],
        batch_size: int,
        idt_feat_q: Sequence[torch.Tensor] | None = None,
        idt_feat_k: Sequence[torch.Tensor] | None = None,
        real_a: torch.Tensor | None = None,
        fake_b: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """
        Args:
            fake_b_logits: ``D(G(a))``.
            feat_q, feat_k: sampled, projected features of ``G(a)`` and of ``a`` (one tensor per layer).
            batch_size: images per batch.
            idt_feat_q, idt_feat_k: the same for ``G(b)`` and ``b`` (needed with ``nce_idt``).
            real_a, fake_b: needed with a structure loss.

        Returns:
            ``gan``, ``nce``, ``nce_idt``, ``structure`` (weighted; absent terms are 0) and their sum ``total``.
        """
        zero = feat_q[0].new_zeros(())
        nce = self.nce(feat_q, feat_k, batch_size)
        if self.nce_idt:
            if idt_feat_q is None or idt_feat_k is None:
                raise ValueError("nce_idt needs the features of G(b) and b (idt_feat_q, idt_feat_k).")
            nce_idt = self.nce(idt_feat_q, idt_feat_k, batch_size)
            nce_term, idt_term = 0.5 * self.lambda_nce * nce, 0.5 * self.lambda_nce * nce_idt
        else:
            nce_term, idt_term = self.lambda_nce * nce, zero
        terms = {
            "gan": self.lambda_gan * self.adversarial(last_output(fake_b_logits), target_is_real=True, for_discriminator=False)
            if self.lambda_gan > 0
            else zero,
            "nce": nce_term,
            "nce_idt": idt_term,
            "structure": zero,
        }
        if self.lambda_structure > 0:
            if real_a is None or fake_b is None:
                raise ValueError("a structure loss needs real_a and fake_b.")
            terms["structure"] = self.lambda_structure * self.structure_loss(real_a.float(), fake_b.float())
        terms["total"] = torch.stack(list(terms.values())).sum()
        return terms
