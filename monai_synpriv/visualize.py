"""Pictures people would rather look at: labelled image grids saved as PNG."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch

from .utils.io import atomic_path

__all__ = ["save_figure", "save_image_grid", "to_display"]


def to_display(img: torch.Tensor | np.ndarray) -> np.ndarray:
    """A 2D float array for display from a channel-first 2D or 3D image (3D: middle slice of the last axis;
    several channels: the first one)."""
    arr = img.detach().float().cpu().numpy() if isinstance(img, torch.Tensor) else np.asarray(img, dtype=np.float32)
    if arr.ndim == 4:  # C, H, W, D
        arr = arr[..., arr.shape[-1] // 2]
    if arr.ndim == 3:
        arr = arr[0]
    if arr.ndim != 2:
        raise ValueError(f"cannot display an image of shape {arr.shape}.")
    return arr


def save_image_grid(
    rows: Sequence[Sequence[torch.Tensor | np.ndarray]],
    path: str | os.PathLike,
    column_titles: Sequence[str] | None = None,
    row_titles: Sequence[str] | None = None,
    vmin: float | None = 0.0,
    vmax: float | None = 1.0,
    title: str | None = None,
    orientation: str = "medical",
) -> str:
    """Save a grid (rows x columns of channel-first images) as a PNG, atomically. Images are shown in grey with a
    shared intensity window ``vmin``..``vmax`` (None: each image's own range); 2D arrays are shown as images, in
    MONAI's (H, W) = (rows, columns) orientation transposed so that axial slices look as radiologists expect
    (``orientation="medical"``), or as stored (``orientation="picture"``: arrays read as (rows, columns), e.g. by PIL).
    """
    if orientation not in ("medical", "picture"):
        raise ValueError(f"orientation must be 'medical' or 'picture', got {orientation!r}.")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n_rows, n_cols = len(rows), max(len(r) for r in rows)
    fig, axes = plt.subplots(
        n_rows, n_cols, figsize=(2.2 * n_cols, 2.2 * n_rows + (0.4 if title else 0)), squeeze=False
    )
    for r, row in enumerate(rows):
        for c in range(n_cols):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c < len(row):
                img = to_display(row[c])
                ax.imshow(
                    np.rot90(img) if orientation == "medical" else img,
                    cmap="gray",
                    vmin=vmin,
                    vmax=vmax,
                    interpolation="nearest",
                )
            if r == 0 and column_titles is not None and c < len(column_titles):
                ax.set_title(column_titles[c], fontsize=9)
            if c == 0 and row_titles is not None and r < len(row_titles):
                ax.set_ylabel(row_titles[r], fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    return save_figure(fig, path, dpi=100)


def save_figure(fig, path: str | os.PathLike, dpi: int = 110) -> str:
    """Lay out a matplotlib figure, write it as PNG atomically, close it; returns the path."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")
    plt.close(fig)
    return str(path)
