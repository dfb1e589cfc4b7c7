"""Small helpers shared by the trainers."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from monai.utils import optional_import
from torch import nn

Average, _ = optional_import("ignite.metrics", name="Average")

__all__ = [
    "attach_loss_averages",
    "image_as_target",
    "requires_grad",
    "to_float",
    "to_plain_tensor",
]


def requires_grad(nets: Iterable[nn.Module], flag: bool) -> None:
    """Switch gradients of every parameter of ``nets`` on or off."""
    for net in nets:
        for p in net.parameters():
            p.requires_grad_(flag)


def image_as_target(
    batchdata: dict, device: torch.device | str | None = None, non_blocking: bool = False, image_key: str = "image", **_
) -> tuple[torch.Tensor, torch.Tensor]:
    """``prepare_batch`` for self-supervised reconstruction with MONAI's ``SupervisedTrainer``: the image is both the
    input and the target (a masked autoencoder's loss compares the prediction with the input)."""
    if image_key not in batchdata:
        raise KeyError(f"batch has no {image_key!r} (keys: {sorted(batchdata)}).")
    x = to_plain_tensor(batchdata[image_key], device, non_blocking)
    return x, x


def to_plain_tensor(x: torch.Tensor, device: torch.device, non_blocking: bool = False) -> torch.Tensor:
    """Move a batch tensor to ``device`` as a plain ``torch.Tensor`` (no MetaTensor overhead in the hot loop)."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"expected a tensor in the batch, got {type(x).__name__}.")
    if hasattr(x, "as_tensor"):
        x = x.as_tensor()
    return x.to(device=device, non_blocking=non_blocking)


def to_float(x):
    """Cast the floating tensors of ``x`` (a tensor, or nested tuples/lists/dicts of tensors such as a
    ``PatchDiscriminator``'s list of features) to fp32: losses are computed from autocast outputs in full precision."""
    if isinstance(x, torch.Tensor):
        return x.float() if x.is_floating_point() else x
    if isinstance(x, (tuple, list)):
        return type(x)(to_float(v) for v in x)
    if isinstance(x, dict):
        return {k: to_float(v) for k, v in x.items()}
    return x


def attach_loss_averages(engine, names: Sequence[str], prefix: str = "epoch_") -> None:
    """Average each scalar output ``name`` over the epoch into ``engine.state.metrics[prefix + name]``.

    Attached at construction time, so the averages are in ``state.metrics`` before any later handler (stats,
    MLflow) reads them at ``EPOCH_COMPLETED``.
    """
    for name in names:
        Average(output_transform=_scalar_of(name)).attach(engine, f"{prefix}{name}")


def _scalar_of(name: str):
    """Read scalar ``name`` from a decollated (list of dicts) or plain (dict) engine output."""

    def transform(output):
        return output[0][name] if isinstance(output, list) else output[name]

    return transform
