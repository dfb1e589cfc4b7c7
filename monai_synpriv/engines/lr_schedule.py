"""Learning-rate schedules as picklable callables (so ``LambdaLR`` state can be checkpointed)."""

from __future__ import annotations

__all__ = ["ConstantThenLinearDecay"]


class ConstantThenLinearDecay:
    """Multiplier for ``torch.optim.lr_scheduler.LambdaLR``: 1 for ``num_constant`` epochs, then linear to 0 over
    ``num_decay`` epochs (CycleGAN/pix2pix schedule). Stepped once per epoch; ``epoch`` counts from 0.

    Example::

        scheduler = LambdaLR(optimizer, ConstantThenLinearDecay(num_constant=100, num_decay=100))
    """

    def __init__(self, num_constant: int, num_decay: int) -> None:
        if num_constant < 0 or num_decay < 0:
            raise ValueError(f"num_constant and num_decay must be >= 0, got {num_constant}, {num_decay}.")
        self.num_constant = int(num_constant)
        self.num_decay = int(num_decay)

    def __call__(self, epoch: int) -> float:
        if epoch < self.num_constant:
            return 1.0
        return max(0.0, 1.0 - (epoch - self.num_constant + 1) / float(self.num_decay + 1))
