"""``MAEReconstructionGrid``: what the masked autoencoder sees and what it fills in, every few epochs."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from monai.utils import IgniteInfo, min_version, optional_import
from torch import nn

from ..networks.mae import patchify, unpatchify
from ..utils.distributed import is_rank0, unwrap
from ..visualize import save_image_grid

if TYPE_CHECKING:
    from ignite.engine import Engine, Events
else:
    Engine, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Engine")
    Events, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Events")

__all__ = ["MAEReconstructionGrid", "mae_reconstruction_rows"]


@torch.no_grad()
def mae_reconstruction_rows(
    network: nn.Module, images: torch.Tensor, patch_size: Sequence[int] | int, seed: int = 0
) -> list[list[torch.Tensor]]:
    """Rows of (input, visible patches, prediction, visible + predicted) for a ``MaskedAutoEncoderViT``.

    The network's mask is drawn with a fixed seed, so successive pictures show the same masks.
    """
    net = unwrap(network)
    was_training = net.training
    net.eval()
    device = next(net.parameters()).device
    x = images.to(device)
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        pred, mask = net(x)
    finally:
        torch.random.set_rng_state(state)
        net.train(was_training)
    spatial = x.shape[2:]
    target = patchify(x, patch_size)
    m = mask.unsqueeze(-1).to(target.dtype)
    visible = unpatchify(target * (1 - m), patch_size, spatial)
    predicted = unpatchify(pred.float(), patch_size, spatial)
    filled = unpatchify(target * (1 - m) + pred.float() * m, patch_size, spatial)
    return [[x[i].cpu(), visible[i].cpu(), predicted[i].cpu(), filled[i].cpu()] for i in range(x.shape[0])]


class MAEReconstructionGrid:
    """Save ``<output_dir>/mae_reconstruction_epoch<N>.png`` (and ``_latest.png``) every ``interval`` epochs.

    Rows are fixed images; columns: the input, the visible patches, the network's prediction of every patch, and
    the visible patches completed with the predicted masked ones. Attach before ``MLflowExtrasHandler`` so the
    picture of an epoch is logged at that epoch's end.

    Args:
        network: the ``MaskedAutoEncoderViT`` being trained (DDP-wrapped is fine).
        images: ``(N, C, *spatial)`` preprocessed images to show, or
        items: datalist entries to load with ``transform`` (the first ``num_images``; key ``image_key``).
        patch_size: the network's patch size.
        output_dir: folder of the PNGs.
        transform: loads one datalist entry (a dict transform).
        num_images: rows at most.
        image_key: the image key of the entries.
        interval: every how many epochs.
        orientation: ``"medical"`` or ``"picture"`` (see :func:`monai_synpriv.visualize.save_image_grid`).
    """

    def __init__(
        self,
        network: nn.Module,
        patch_size: Sequence[int] | int,
        output_dir: str | os.PathLike,
        images: torch.Tensor | None = None,
        items: Sequence[dict] | None = None,
        transform: Callable | None = None,
        num_images: int = 8,
        image_key: str = "image",
        interval: int = 1,
        orientation: str = "medical",
    ) -> None:
        if images is None:
            if not items or transform is None:
                raise ValueError("MAEReconstructionGrid needs images, or items and a transform to load them.")
            images = torch.stack([torch.as_tensor(transform(dict(d))[image_key]) for d in list(items)[:num_images]])
        self.network = network
        self.images = torch.as_tensor(images)[:num_images]
        self.patch_size = patch_size
        self.output_dir = Path(output_dir)
        self.interval = max(1, int(interval))
        self.orientation = orientation
        self.saved: list[str] = []

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_COMPLETED(every=self.interval), self)

    def __call__(self, engine: Engine) -> None:
        if not is_rank0():
            return
        rows = mae_reconstruction_rows(self.network, self.images, self.patch_size)
        titles = ["input", "visible", "prediction", "visible + predicted"]
        title = f"masked autoencoder, epoch {engine.state.epoch}"
        kw = dict(column_titles=titles, title=title, vmin=None, vmax=None, orientation=self.orientation)
        self.saved.append(
            save_image_grid(rows, self.output_dir / f"mae_reconstruction_epoch{engine.state.epoch:03d}.png", **kw)
        )
        save_image_grid(rows, self.output_dir / "mae_reconstruction_latest.png", **kw)
