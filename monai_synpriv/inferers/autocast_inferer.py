"""``AutocastInferer``: any MONAI inferer at one precision, on CPU or CUDA."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from monai.inferers import Inferer, SimpleInferer

from ..engines.utils import to_float
from ..utils.precision import autocast, resolve_precision

__all__ = ["AutocastInferer"]


class AutocastInferer(Inferer):
    """
    Run ``inferer`` (default ``SimpleInferer``) under ``torch.autocast`` at ``precision`` on the inputs' device and
    return fp32 outputs. MONAI's evaluators autocast on CUDA only (``amp=True``); this inferer gives a
    ``SupervisedEvaluator``, a MONAI Label infer task or any code that calls ``inferer(inputs, network)`` the same
    precision setting as the trainers, on CPU (AMX/AVX512-BF16) or CUDA.

    Example::

        inferer = AutocastInferer(SlidingWindowInferer((64, 64), sw_batch_size=4), precision="auto")
        pred = inferer(image, network)  # bf16 on an AMX CPU, fp32 tensor out

    Args:
        inferer: the inferer to run (``SimpleInferer``, ``SlidingWindowInferer``, ...).
        precision: ``fp32``, ``bf16``, ``fp16`` or ``auto`` (resolved on the inputs' device at each call).
    """

    def __init__(self, inferer: Inferer | None = None, precision: str = "auto") -> None:
        super().__init__()
        resolve_precision(precision, "cpu")  # an unknown value fails here, not at the first batch
        self.inferer = SimpleInferer() if inferer is None else inferer
        self.precision = precision

    def __call__(self, inputs: torch.Tensor, network: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        with autocast(inputs.device, self.precision):
            out = self.inferer(inputs, network, *args, **kwargs)
        return to_float(out)
