"""History buffer of generated images for discriminator updates (Shrivastava et al. 2017)."""

from __future__ import annotations

import torch

__all__ = ["ImagePool"]


class ImagePool:
    """
    Keeps up to ``pool_size`` previously generated images. ``query`` returns a batch in which each image is, with
    probability 0.5, swapped for a stored one (and the new image stored instead), so that the discriminator also sees
    older generator outputs. ``pool_size=0`` returns the input unchanged.

    The pool is checkpointable through ``state_dict`` / ``load_state_dict`` so that a resumed run continues
    with the same history.
    """

    def __init__(self, pool_size: int = 50) -> None:
        if pool_size < 0:
            raise ValueError(f"pool_size must be >= 0, got {pool_size}.")
        self.pool_size = int(pool_size)
        self.images: list[torch.Tensor] = []

    def query(self, images: torch.Tensor) -> torch.Tensor:
        """Return a batch mixing ``images`` (detached) with stored ones."""
        if self.pool_size == 0:
            return images.detach()
        out = []
        for image in images.detach():
            image = image.unsqueeze(0)
            if len(self.images) < self.pool_size:
                self.images.append(image.clone())
                out.append(image)
            elif torch.rand(()) < 0.5:
                idx = int(torch.randint(0, self.pool_size, ()))
                out.append(self.images[idx].clone())
                self.images[idx] = image.clone()
            else:
                out.append(image)
        return torch.cat(out, dim=0)

    def state_dict(self) -> dict:
        stacked = torch.cat(self.images, dim=0).cpu() if self.images else torch.empty(0)
        return {"pool_size": self.pool_size, "images": stacked}

    def load_state_dict(self, state: dict) -> None:
        self.pool_size = int(state["pool_size"])
        images = state["images"]
        self.images = [img.unsqueeze(0) for img in images] if images.numel() else []

    def to(self, device: torch.device | str) -> ImagePool:
        self.images = [img.to(device) for img in self.images]
        return self

    def __len__(self) -> int:
        return len(self.images)
