"""Putting the two images of a pair on one voxel grid.

Two modalities of one patient rarely share a voxel grid (a T2 at 0.5 x 0.5 x 3 mm and a DWI at 2 x 2 x 3 mm, origins
apart). Cropping both with one box then shows different anatomy in each. :class:`MatchPairGridd` resamples the second
image of a pair onto the first one's grid through their affines (MONAI's :class:`~monai.transforms.ResampleToMatch`),
passes already aligned pairs through untouched, and refuses, naming both files, a pair that no affine relates (2D
pictures of different sizes, identity affines with different shapes, fields of view that do not overlap).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform, ResampleToMatch, Transform
from monai.utils import GridSampleMode, GridSamplePadMode, ensure_tuple_rep

__all__ = ["MatchPairGrid", "MatchPairGridd", "PairGridError", "pair_grid_problem"]

#: meta key of a resampled image that names the file whose grid it was resampled onto
MATCHED_TO = "matched_to"

_FIX = (
    "Register the pair (e.g. with ANTs or elastix) and save the moved image with the primary's header, or store "
    "both with their true affines (NIfTI, DICOM, MHA/NRRD) so that they can be resampled; if the two are already "
    "aligned pictures of one field of view, resize both to one size before building the datalist."
)


class PairGridError(ValueError):
    """The two images of a pair are on different voxel grids and no affine relates them."""


def _name(img, fallback: str) -> str:
    if isinstance(img, MetaTensor):
        return str(img.meta.get("filename_or_obj", fallback))
    return fallback


def _affine(img) -> np.ndarray | None:
    if not isinstance(img, MetaTensor):
        return None
    return np.asarray(img.peek_pending_affine(), dtype=np.float64)


def _spatial_shape(img) -> tuple[int, ...]:
    return tuple(int(s) for s in (img.peek_pending_shape() if isinstance(img, MetaTensor) else img.shape[1:]))


def _is_identity(affine: np.ndarray) -> bool:
    return bool(np.allclose(affine, np.eye(affine.shape[0]), atol=1e-6))


def _world_box(affine: np.ndarray, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """World-space bounding box of the voxel centres of a grid."""
    corners = np.array(np.meshgrid(*[[0, s - 1] for s in shape], indexing="ij")).reshape(len(shape), -1)
    world = affine[:-1, :-1] @ corners + affine[:-1, -1:]
    return world.min(axis=1), world.max(axis=1)


def grids_match(src, dst, atol: float = 1e-3) -> bool:
    """Whether ``src`` and ``dst`` (channel-first) have one spatial shape and, where both carry one, one affine."""
    if _spatial_shape(src) != _spatial_shape(dst):
        return False
    a, b = _affine(src), _affine(dst)
    return a is None or b is None or (a.shape == b.shape and bool(np.allclose(a, b, atol=atol)))


def pair_grid_problem(src, dst, src_name: str | None = None, dst_name: str | None = None) -> str | None:
    """Why ``src`` cannot be resampled onto ``dst``'s grid, or ``None`` when it can (or need not be).

    Args:
        src: the image to move (channel-first array or ``MetaTensor``), e.g. the privileged or target image.
        dst: the image whose grid is kept, e.g. the primary image.
        src_name: how to name ``src`` in the message (default: its ``filename_or_obj``).
        dst_name: how to name ``dst`` in the message (default: its ``filename_or_obj``).
    """
    if grids_match(src, dst):
        return None
    src_name = src_name or _name(src, "the image to resample")
    dst_name = dst_name or _name(dst, "the reference image")
    s_shape, d_shape = _spatial_shape(src), _spatial_shape(dst)
    what = f"{src_name} (shape {s_shape}) and {dst_name} (shape {d_shape})"
    if len(s_shape) != len(d_shape):
        return f"{what} have different numbers of spatial dimensions: they cannot be a pair. {_FIX}"
    a, b = _affine(src), _affine(dst)
    if a is None or b is None or _is_identity(a) or _is_identity(b):
        return (
            f"{what} are on different voxel grids and no affine relates them (at least one carries none: a 2D "
            f"picture, or an identity affine), so one box would crop different anatomy from each. {_FIX}"
        )
    lo_s, hi_s = _world_box(a, s_shape)
    lo_d, hi_d = _world_box(b, d_shape)
    if np.any(hi_s < lo_d) or np.any(hi_d < lo_s):
        return (
            f"{what}: their fields of view do not overlap in world space ({src_name} spans {lo_s.round(1).tolist()}"
            f"..{hi_s.round(1).tolist()} mm, {dst_name} spans {lo_d.round(1).tolist()}..{hi_d.round(1).tolist()} mm): "
            f"they are not images of one region, or a header is wrong. {_FIX}"
        )
    return None


class MatchPairGrid(Transform):
    """Resample an image onto the voxel grid of its partner through their affines, or refuse an unrelated pair.

    A pair already on one grid (same shape and affine) is returned unchanged, without interpolation. Otherwise the
    image is resampled with :class:`~monai.transforms.ResampleToMatch` (it keeps its own ``filename_or_obj`` and
    gains the partner's under ``"matched_to"``); a pair that no affine relates raises :class:`PairGridError`.

    Args:
        mode: interpolation, ``"bilinear"`` for images, ``"nearest"`` for label maps.
        padding_mode: value outside the moved image's field of view; ``"zeros"`` (background) by default.
        align_corners: see :class:`~monai.transforms.ResampleToMatch`.
    """

    def __init__(
        self,
        mode: str | int = GridSampleMode.BILINEAR,
        padding_mode: str = GridSamplePadMode.ZEROS,
        align_corners: bool = False,
    ) -> None:
        self.mode = mode
        self.padding_mode = padding_mode
        self.align_corners = align_corners
        self.resampler = ResampleToMatch()

    def __call__(
        self, img: torch.Tensor, img_dst: torch.Tensor, src_name: str | None = None, dst_name: str | None = None
    ) -> torch.Tensor:
        """
        Args:
            img: channel-first image to move.
            img_dst: channel-first image whose grid is kept.
            src_name: name of ``img`` for error messages (default: its ``filename_or_obj``).
            dst_name: name of ``img_dst`` for error messages (default: its ``filename_or_obj``).

        Raises:
            PairGridError: the two are on different grids and no affine relates them; both files are named.
        """
        if grids_match(img, img_dst):
            return img
        problem = pair_grid_problem(img, img_dst, src_name, dst_name)
        if problem is not None:
            raise PairGridError(problem)
        out = self.resampler(
            img, img_dst, mode=self.mode, padding_mode=self.padding_mode, align_corners=self.align_corners
        )
        if isinstance(out, MetaTensor):
            out.meta[MATCHED_TO] = _name(img_dst, "")
        return out


class MatchPairGridd(MapTransform):
    """Dictionary wrapper of :class:`MatchPairGrid`: resample ``keys`` onto the grid of ``key_dst``.

    Put it right after ``LoadImaged`` (with ``ensure_channel_first``), before any transform that treats the keys
    alike (orientation, spacing, cropping), e.g.
    ``{"_target_": "monai_synpriv.transforms.MatchPairGridd", "keys": "privileged", "key_dst": "image"}``.

    Args:
        keys: keys of the images to move (the privileged or target image of a pair).
        key_dst: key of the image whose grid is kept (the primary image).
        mode: interpolation per key: ``"bilinear"`` for images, ``"nearest"`` for label maps.
        padding_mode: value outside the moved image's field of view, per key.
        align_corners: see :class:`~monai.transforms.ResampleToMatch`, per key.
        allow_missing_keys: skip keys absent from the data (e.g. a config used both with and without the partner).
    """

    def __init__(
        self,
        keys: KeysCollection,
        key_dst: str,
        mode: str | int | tuple = GridSampleMode.BILINEAR,
        padding_mode: str | tuple = GridSamplePadMode.ZEROS,
        align_corners: bool | tuple = False,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.key_dst = key_dst
        n = len(self.keys)
        self.matchers = [
            MatchPairGrid(m, p, a)
            for m, p, a in zip(
                ensure_tuple_rep(mode, n), ensure_tuple_rep(padding_mode, n), ensure_tuple_rep(align_corners, n)
            )
        ]

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        if self.key_dst not in d:
            if self.allow_missing_keys:
                return d
            raise KeyError(f"MatchPairGridd: the data has no reference key {self.key_dst!r} (keys: {sorted(d)}).")
        matchers = dict(zip(self.keys, self.matchers))
        for key in self.key_iterator(d):
            if key == self.key_dst:
                continue
            d[key] = matchers[key](
                d[key],
                d[self.key_dst],
                src_name=f"{key!r} image {_name(d[key], '(unnamed)')}",
                dst_name=f"{self.key_dst!r} image {_name(d[self.key_dst], '(unnamed)')}",
            )
        return d
