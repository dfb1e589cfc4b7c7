"""Small helpers shared by the trainers."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence

import torch
from monai.utils import optional_import
from torch import nn

Average, _ = optional_import("ignite.metrics", name="Average")

__all__ = [
    "attach_loss_averages",
    "autocast_context",
    "backward_and_step",
    "image_as_target",
    "make_grad_scaler",
    "requires_grad",
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


def autocast_context(enabled: bool, amp_kwargs: dict | None = None):
    """``torch.autocast('cuda')`` when ``enabled``, else a no-op context."""
    if enabled:
        return torch.autocast("cuda", **(amp_kwargs or {}))
    return contextlib.nullcontext()


def make_grad_scaler(enabled: bool) -> torch.amp.GradScaler | None:
    """A CUDA gradient scaler for AMP, or None."""
    return torch.amp.GradScaler("cuda") if enabled else None


def backward_and_step(
    loss: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler | None,
    parameters: Iterable[torch.Tensor],
    grad_clip_norm: float | None = None,
) -> None:
    """Backward pass and optimiser step, through the AMP gradient scaler when there is one, with optional clipping
    of the global gradient norm (on unscaled gradients)."""
    if scaler is not None:
        scaler.scale(loss).backward()
        if grad_clip_norm is not None:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(parameters, grad_clip_norm)
        scaler.step(optimizer)
        scaler.update()
    else:
        loss.backward()
        if grad_clip_norm is not None:
            torch.nn.utils.clip_grad_norm_(parameters, grad_clip_norm)
        optimizer.step()


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
