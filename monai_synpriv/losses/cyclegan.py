"""The CycleGAN generator objective: adversarial + cycle consistency + identity."""

from __future__ import annotations

import torch
from torch import nn

from .adversarial import last_output, make_adversarial_loss

__all__ = ["CycleGANGeneratorLoss"]


class CycleGANGeneratorLoss(nn.Module):
    """
    The generators' loss of CycleGAN (Zhu et al. 2017), for translators ``G: A -> B`` and ``F: B -> A``::

        L = adv(D_B(G(a))) + adv(D_A(F(b)))                          # fool both discriminators
          + lambda_cycle * (|F(G(a)) - a|_1 + |G(F(b)) - b|_1)       # cycle consistency
          + lambda_cycle * lambda_identity * (|G(b) - b|_1 + |F(a) - a|_1)   # identity
          + lambda_structure * (S(a, G(a)) + S(b, F(b)))             # optional structure term, e.g. MIND

    Each L1 term is a mean over voxels. ``forward`` returns every term, so that they can be logged separately.

    Args:
        lambda_cycle: weight of each cycle-consistency term (reference 10).
        lambda_identity: identity weight as a fraction of ``lambda_cycle`` (reference 0.5); 0 disables it, which
            is required when A and B have different channel counts.
        criterion: adversarial criterion (``"least_squares"``, ``"bce"``, ``"hinge"``).
        structure_loss: a module ``(source, translated) -> scalar``
            (:class:`~monai_synpriv.losses.MINDStructureLoss`), or None.
        lambda_structure: its weight (0 disables it).
    """

    def __init__(
        self,
        lambda_cycle: float = 10.0,
        lambda_identity: float = 0.5,
        criterion: str = "least_squares",
        structure_loss: nn.Module | None = None,
        lambda_structure: float = 0.0,
    ):
        super().__init__()
        if lambda_cycle < 0 or lambda_identity < 0 or lambda_structure < 0:
            raise ValueError(
                f"loss weights must be >= 0, got lambda_cycle={lambda_cycle}, lambda_identity={lambda_identity}, "
                f"lambda_structure={lambda_structure}."
            )
        if lambda_structure > 0 and structure_loss is None:
            raise ValueError("lambda_structure > 0 needs a structure_loss (e.g. monai_synpriv.losses.MINDStructureLoss).")
        self.lambda_structure = float(lambda_structure)
        self.structure_loss = structure_loss
        self.lambda_cycle = float(lambda_cycle)
        self.lambda_identity = float(lambda_identity)
        self.adversarial = make_adversarial_loss(criterion)
        self.l1 = nn.L1Loss()

    def forward(
        self,
        fake_b_logits: torch.Tensor | list,
        fake_a_logits: torch.Tensor | list,
        real_a: torch.Tensor,
        real_b: torch.Tensor,
        rec_a: torch.Tensor,
        rec_b: torch.Tensor,
        idt_a: torch.Tensor | None = None,
        idt_b: torch.Tensor | None = None,
        fake_a: torch.Tensor | None = None,
        fake_b: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """
        Args:
            fake_b_logits: ``D_B(G(a))``; fake_a_logits: ``D_A(F(b))``.
            real_a, real_b: the inputs; rec_a = ``F(G(a))``, rec_b = ``G(F(b))``.
            idt_a: ``F(a)`` and idt_b: ``G(b)``, needed when ``lambda_identity > 0``.
            fake_a: ``F(b)`` and fake_b: ``G(a)``, needed with a structure loss.

        Returns:
            dict with ``gan_ab``, ``gan_ba``, ``cycle_a``, ``cycle_b``, ``identity_a``, ``identity_b``, ``structure``
            (weighted) and their sum ``total``.
        """
        terms = {
            "gan_ab": self.adversarial(last_output(fake_b_logits), target_is_real=True, for_discriminator=False),
            "gan_ba": self.adversarial(last_output(fake_a_logits), target_is_real=True, for_discriminator=False),
            "cycle_a": self.lambda_cycle * self.l1(rec_a, real_a),
            "cycle_b": self.lambda_cycle * self.l1(rec_b, real_b),
        }
        if self.lambda_identity > 0:
            if idt_a is None or idt_b is None:
                raise ValueError("lambda_identity > 0 needs idt_a = F(a) and idt_b = G(b).")
            w = self.lambda_cycle * self.lambda_identity
            terms["identity_a"] = w * self.l1(idt_a, real_a)
            terms["identity_b"] = w * self.l1(idt_b, real_b)
        else:
            zero = real_a.new_zeros(())
            terms["identity_a"] = zero
            terms["identity_b"] = zero
        if self.lambda_structure > 0:
            if fake_a is None or fake_b is None:
                raise ValueError("a structure loss needs fake_a = F(b) and fake_b = G(a).")
            s = self.structure_loss(real_a, fake_b) + self.structure_loss(real_b, fake_a)
            terms["structure"] = self.lambda_structure * s
        else:
            terms["structure"] = real_a.new_zeros(())
        terms["total"] = torch.stack(list(terms.values())).sum()
        return terms
