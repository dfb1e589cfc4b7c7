"""One precision setting for training and inference, on CPU and CUDA.

``precision`` is one of ``fp32``, ``bf16``, ``fp16`` or ``auto``:

- ``fp32``: no autocast.
- ``bf16``: ``torch.autocast(<device type>, dtype=torch.bfloat16)``; on a CPU with AMX-BF16 or AVX512-BF16 units
  convolutions and matrix products run on them (MONAI's own trainers autocast on CUDA only).
- ``fp16``: ``torch.autocast(<device type>, dtype=torch.float16)`` with a gradient scaler per optimiser (a CUDA
  choice: on a CPU without AMX-FP16 it is far slower than fp32, and asking for it there warns once).
- ``auto``: bf16 on a CPU that has AMX-BF16 or AVX512-BF16 and on a CUDA device that supports bf16, fp32 otherwise.

Weights stay in fp32 (autocast casts per operation); the callers compute their losses, norms and solves from
``.float()`` tensors.

Example::

    precision = resolve_precision("auto", device)  # "bf16" on this project's CPU
    with autocast(device, precision):
        out = net(x)
    loss = loss_fn(out.float(), target)
"""

from __future__ import annotations

import contextlib
import functools
import warnings
from collections.abc import Iterator
from pathlib import Path

import torch
from monai.utils import StrEnum

__all__ = [
    "Precision",
    "autocast",
    "autocast_dtype",
    "cpu_bf16_units",
    "make_grad_scaler",
    "memory_format_for",
    "resolve_precision",
    "to_device",
]


class Precision(StrEnum):
    """The values of the ``precision`` setting."""

    FP32 = "fp32"
    BF16 = "bf16"
    FP16 = "fp16"
    AUTO = "auto"


_DTYPES = {Precision.BF16: torch.bfloat16, Precision.FP16: torch.float16}


@functools.lru_cache(maxsize=1)
def cpu_bf16_units() -> tuple[str, ...]:
    """The bf16 matrix/vector units of this CPU that PyTorch can use: a subset of ``("amx_bf16", "avx512_bf16")``.

    Read from ``/proc/cpuinfo`` (Linux); elsewhere from PyTorch's own CPU feature probes when it has them.
    """
    flags: set[str] = set()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    else:  # pragma: no cover - non-Linux
        probes = {"amx_bf16": "_is_amx_tile_supported", "avx512_bf16": "_is_avx512_bf16_supported"}
        for name, probe in probes.items():
            fn = getattr(getattr(torch._C, "_cpu", None), probe, None)
            if fn is not None and fn():
                flags.add(name)
    return tuple(f for f in ("amx_bf16", "avx512_bf16") if f in flags)


def resolve_precision(precision: str | Precision, device: torch.device | str) -> str:
    """The concrete precision (``fp32``, ``bf16`` or ``fp16``) that ``precision`` means on ``device``.

    Args:
        precision: ``fp32``, ``bf16``, ``fp16`` or ``auto`` (case-insensitive).
        device: where the model runs.

    Raises:
        ValueError: an unknown ``precision``, or ``bf16`` asked of a CUDA device without bf16 support.
    """
    value = str(precision).lower()
    if value not in set(Precision):
        raise ValueError(f"precision must be one of {[p.value for p in Precision]}, got {precision!r}.")
    device = torch.device(device)
    if value == Precision.AUTO:
        if device.type == "cuda":
            return Precision.BF16.value if torch.cuda.is_bf16_supported() else Precision.FP32.value
        if device.type == "cpu":
            return Precision.BF16.value if cpu_bf16_units() else Precision.FP32.value
        return Precision.FP32.value
    if value == Precision.BF16 and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ValueError(f"precision 'bf16' asked but {device} does not support bf16; use 'fp16' or 'auto'.")
    if value == Precision.FP16 and device.type == "cpu":
        _warn_fp16_on_cpu()
    return value


@functools.lru_cache(maxsize=1)
def _warn_fp16_on_cpu() -> None:
    # measured on this project's AMX-BF16 CPU (no AMX-FP16): fp16 autocast ran a CycleGAN iteration ~100x slower
    # than fp32 (benchmarks/precision.py --fp16); it stays available, for CPUs with AMX-FP16 and for tests
    warnings.warn(
        "precision 'fp16' on CPU: PyTorch's CPU kernels in fp16 can be two orders of magnitude slower than fp32 "
        "(docs/benchmarks.md); use 'bf16' or 'auto' on a CPU.",
        stacklevel=3,
    )


def autocast_dtype(precision: str) -> torch.dtype | None:
    """The autocast dtype of a resolved precision (None for ``fp32``)."""
    return _DTYPES.get(Precision(precision)) if precision != Precision.AUTO else None


@contextlib.contextmanager
def autocast(device: torch.device | str, precision: str, **kwargs) -> Iterator[None]:
    """``torch.autocast`` on ``device``'s type at ``precision`` (resolved first), or nothing for fp32.

    Args:
        device: the device the operations run on.
        precision: ``fp32``, ``bf16``, ``fp16`` or ``auto``.
        kwargs: more arguments of ``torch.autocast`` (e.g. ``cache_enabled``).
    """
    device = torch.device(device)
    dtype = autocast_dtype(resolve_precision(precision, device))
    if dtype is None:
        yield
        return
    with torch.autocast(device.type, dtype=dtype, **kwargs):
        yield


def make_grad_scaler(precision: str, device: torch.device | str) -> torch.amp.GradScaler | None:
    """A gradient scaler for fp16 on ``device`` (CUDA or CPU), None for fp32 and bf16 (bf16 has fp32's range)."""
    device = torch.device(device)
    if resolve_precision(precision, device) != Precision.FP16:
        return None
    return torch.amp.GradScaler(device.type)


def memory_format_for(network: torch.nn.Module, device: torch.device | str, precision: str) -> torch.memory_format:
    """The memory format chosen for ``network`` on ``device`` at ``precision``, from benchmarks/precision.py.

    ``channels_last`` for a network with 2D convolutions and no 3D ones, on a CPU, in bf16: measured on this
    project's AMX CPU (docs/benchmarks.md) it made a ResNet-18 embedding pass 3.3x faster than fp32 instead of 1.7x
    (bf16 alone), a TriDeNT step 2.6x instead of 2.1x, and left the CycleGAN and diffusion steps unchanged (within
    noise). ``contiguous_format`` everywhere else (fp32 on CPU, CUDA: not measured yet, 3D networks).
    """
    device = torch.device(device)
    if device.type != "cpu" or resolve_precision(precision, device) != Precision.BF16:
        return torch.contiguous_format
    kinds = {type(m) for m in network.modules()}
    has_2d = any(issubclass(k, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)) for k in kinds)
    has_3d = any(issubclass(k, (torch.nn.Conv3d, torch.nn.ConvTranspose3d)) for k in kinds)
    return torch.channels_last if has_2d and not has_3d else torch.contiguous_format


def to_device(network: torch.nn.Module, device: torch.device | str, precision: str = "fp32") -> torch.nn.Module:
    """``network`` moved to ``device`` in the memory format :func:`memory_format_for` picks (values unchanged; a
    checkpoint saved from it loads into a contiguous network and back)."""
    return network.to(device=torch.device(device), memory_format=memory_format_for(network, device, precision))
