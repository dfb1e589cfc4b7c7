"""Captions -> synthetic images: DDIM sampling with classifier-free guidance, written as (synthetic image, text) pairs.

Every image is drawn from its own noise, seeded by ``seed + index``, and DDIM with ``eta = 0`` is deterministic, so an
image does not depend on the batch it was drawn in (bit-exact on CPU here; on a GPU up to floating-point
nondeterminism of batched kernels): an interrupted run resumes where it stopped and gives the same files as an
uninterrupted one. Images are written atomically and the datalist is rewritten (atomically) after every
batch; a rerun with different generation settings on the same output refuses to mix them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from monai.inferers import DiffusionInferer
from torch import nn

from ..transforms.io import write_image
from ..utils.io import sha256_file, write_json_atomic
from ..utils.precision import autocast, resolve_precision

__all__ = ["sample_images", "generate_synthetic_pairs", "GENERATION_SETTINGS"]

#: settings stored in the datalist; a resume must use the same ones
GENERATION_SETTINGS = (
    "seed",
    "guidance_scale",
    "num_inference_steps",
    "image_size",
    "fill_value",
    "precision",
    "checkpoint",
    "checkpoint_sha256",
)
#: settings recorded for the reader but not compared on resume: the checkpoint is identified by its content hash, so
#: the same weights reached by another path (a symlink, a relative path, a moved bundle) resume
_RECORDED_ONLY = ("checkpoint",)


def item_noise(index: int, seed: int, shape: Sequence[int]) -> torch.Tensor:
    """The starting noise of item ``index`` (1 x C x spatial), from its own generator."""
    gen = torch.Generator().manual_seed(int(seed) + int(index))
    return torch.randn((1, *shape), generator=gen)


@torch.no_grad()
def sample_images(
    network: nn.Module,
    scheduler,
    context: torch.Tensor,
    indices: Sequence[int],
    image_shape: Sequence[int],
    seed: int = 0,
    guidance_scale: float | None = 3.0,
    num_inference_steps: int = 50,
    fill_value: float = -1.0,
    device: str | torch.device = "cpu",
    precision: str = "fp32",
) -> torch.Tensor:
    """Draw one image per context row with MONAI's ``DiffusionInferer.sample`` (DDIM/DDPM scheduler as given).

    Args:
        network: a ``DiffusionModelUNet`` trained with condition dropout to ``fill_value``.
        scheduler: the sampling scheduler (e.g. ``DDIMScheduler``); its timesteps are set here.
        context: B x tokens x D conditions.
        indices: the items' global indices (they seed the noise).
        image_shape: C x spatial shape of one image.
        seed: base seed.
        guidance_scale: classifier-free guidance weight ``w`` in ``uncond + w (cond - uncond)``; ``None`` or 1 samples
            with the condition only (half the cost).
        num_inference_steps: sampling steps.
        fill_value: the null condition used in training.
        device: where to sample.
        precision: ``fp32``, ``bf16``, ``fp16`` or ``auto``: the network's autocast; the sampler's updates stay fp32.

    Returns:
        B x C x spatial images in the network's training range (here [-1, 1]), on CPU.
    """
    if len(indices) != context.shape[0]:
        raise ValueError(f"sample_images: {len(indices)} indices for {context.shape[0]} contexts.")
    device = torch.device(device)
    network = network.to(device).eval()
    # timesteps stay on the CPU: MONAI's sampler concatenates them with a CPU tensor and moves each one itself
    scheduler.set_timesteps(num_inference_steps=num_inference_steps)
    noise = torch.cat([item_noise(i, seed, image_shape) for i in indices]).to(device)
    cfg = None if guidance_scale is None or float(guidance_scale) == 1.0 else float(guidance_scale)

    def model(*args, **kwargs) -> torch.Tensor:
        with autocast(device, precision):
            return network(*args, **kwargs).float()

    out = DiffusionInferer(scheduler).sample(
        input_noise=noise,
        diffusion_model=model,
        scheduler=scheduler,
        conditioning=context.to(device),
        cfg=cfg,
        cfg_fill_value=fill_value,
        verbose=False,
    )
    return out.float().cpu()


def _load_previous(
    datalist_path: Path, settings: Mapping[str, Any], items: Sequence[Mapping[str, Any]], text_key: str, image_key: str
) -> dict[int, dict]:
    """Items already generated with the same settings (by index) for the same captions, whose image files exist."""
    if not datalist_path.is_file():
        return {}
    previous = json.loads(datalist_path.read_text())
    old = previous.get("generation", {})
    clash = {
        k: (old.get(k), settings[k])
        for k in GENERATION_SETTINGS
        if k not in _RECORDED_ONLY and str(old.get(k)) != str(settings[k])
    }
    if clash:
        raise ValueError(
            f"{datalist_path} was generated with other settings {clash} (old, new); "
            "write to a new output folder or delete it to start again."
        )
    done = [it for v in previous.values() if isinstance(v, list) for it in v if isinstance(it, dict) and "index" in it]
    stale = [
        it["image"]
        for it in done
        if int(it["index"]) >= len(items)
        or it.get(text_key) != items[int(it["index"])].get(text_key)
        or it.get("source_image") != items[int(it["index"])].get(image_key)
    ]
    if stale:
        raise ValueError(
            f"{datalist_path}: {len(stale)} generated items no longer match the captions at their index (e.g. "
            f"{stale[0]}): the caption list changed (sections, max_items, datalist); write to a new output folder."
        )
    return {int(it["index"]): it for it in done if Path(it["image"]).is_file()}


def generate_synthetic_pairs(
    network: nn.Module,
    scheduler,
    items: Sequence[Mapping[str, Any]],
    conditioner: Callable[..., torch.Tensor],
    output_dir: str | os.PathLike,
    image_shape: Sequence[int] = (1, 64, 64),
    seed: int = 0,
    guidance_scale: float | None = 3.0,
    num_inference_steps: int = 50,
    batch_size: int = 32,
    fill_value: float = -1.0,
    device: str | torch.device = "cpu",
    precision: str = "fp32",
    text_key: str = "text",
    image_key: str = "image",
    checkpoint: str | None = None,
    datalist_name: str = "synthetic_datalist.json",
    max_items: int | None = None,
    progress: bool = True,
    grid_transform: Callable | None = None,
    grid_rows: int = 8,
) -> dict:
    """Generate one synthetic image per item's caption and write ``output_dir/images/*.png`` plus a datalist.

    The datalist (``output_dir/<datalist_name>``) holds ``{"generation": settings, <section>: [...]}``: each item is
    the source item with ``image`` replaced by the synthetic file and ``source_image``, ``index``, ``synthetic`` added
    (labels and the case id travel along), filed under the section of its caption (the item's ``section``, as
    :func:`~monai_synpriv.vlp.load_pairs` tags it; ``training`` if absent), so that the case-level split of the real
    data holds for the synthetic pairs too. Sections keep the order of ``items``.

    Args:
        network: the trained ``DiffusionModelUNet``.
        scheduler: sampling scheduler (``DDIMScheduler``).
        items: datalist items with ``text_key`` (caption) and ``image_key`` (the real image, for naming and grids).
        conditioner: captions -> B x tokens x D contexts (:class:`monai_synpriv.transforms.TextConditioner`).
        output_dir: output folder.
        image_shape: C x spatial shape to generate.
        seed: base seed (item i uses ``seed + i``).
        guidance_scale: classifier-free guidance weight.
        num_inference_steps: DDIM steps.
        batch_size: images per sampling batch.
        fill_value: the null condition used in training.
        device: where to sample.
        precision: ``fp32``, ``bf16``, ``fp16`` or ``auto``: the network's autocast (resolved and recorded in the
            settings; a resume must use the same).
        text_key: caption key.
        image_key: image key.
        checkpoint: the generator checkpoint (recorded, and part of the resume check).
        datalist_name: file name of the datalist.
        max_items: generate for the first ``max_items`` only.
        progress: show a progress bar.
        grid_transform: when given (a dict transform loading ``image`` in [0, 1]), also write
            ``output_dir/caption_grid.png``: caption, synthetic image, real image, for ``grid_rows`` items.
        grid_rows: rows of that grid.

    Returns:
        The datalist dict.

    Raises:
        ValueError: an item has no caption (names it), or the output holds a run with other settings.
    """
    items = list(items)[:max_items] if max_items else list(items)
    for i, it in enumerate(items):
        text = it.get(text_key)
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"item {i} ({it.get(image_key)}): empty or missing caption {text_key!r}.")
    out = Path(output_dir).resolve()  # absolute paths in the datalist: it is read from other folders
    img_dir = out / "images"
    img_dir.mkdir(parents=True, exist_ok=True)
    datalist_path = out / datalist_name
    settings = {
        "seed": int(seed),
        "guidance_scale": guidance_scale,
        "num_inference_steps": int(num_inference_steps),
        "image_size": list(image_shape[1:]),
        "fill_value": float(fill_value),
        "precision": resolve_precision(precision, device),
        "checkpoint": str(checkpoint) if checkpoint else None,
        "checkpoint_sha256": sha256_file(checkpoint) if checkpoint and Path(checkpoint).is_file() else None,
    }
    done = _load_previous(datalist_path, settings, items, text_key, image_key)
    pending = [i for i in range(len(items)) if i not in done]

    def record(i: int, path: str) -> dict:
        src = dict(items[i])
        src_image = src.get(image_key)
        src.update({image_key: path, "source_image": src_image, "index": i, "synthetic": True})
        return src

    def write_datalist() -> dict:
        data: dict[str, Any] = {"generation": settings}
        for i in sorted(done):
            data.setdefault(str(done[i].get("section", "training")), []).append(done[i])
        write_json_atomic(datalist_path, data)
        return data

    batches = [pending[s : s + batch_size] for s in range(0, len(pending), batch_size)]
    bar = None
    if progress and batches:
        from tqdm import tqdm

        bar = tqdm(total=len(pending), desc="generating", unit="img")
    data = write_datalist() if not batches else None
    for batch in batches:
        texts = [items[i][text_key] for i in batch]
        names = [str(items[i].get(image_key, i)) for i in batch]
        context = conditioner(texts, names=names)
        images = sample_images(
            network,
            scheduler,
            context,
            batch,
            image_shape,
            seed,
            guidance_scale,
            num_inference_steps,
            fill_value,
            device=device,
            precision=precision,
        )
        images = ((images + 1.0) / 2.0).clamp(0.0, 1.0)
        for i, img in zip(batch, images):
            stem = Path(str(items[i].get(image_key, f"item{i}"))).name.split(".")[0]
            path = str(img_dir / f"{i:05d}_{stem}.png")
            write_image(img, path)
            done[i] = record(i, path)
        data = write_datalist()
        if bar is not None:
            bar.update(len(batch))
    if bar is not None:
        bar.close()
    if grid_transform is not None and done:
        from .evaluation import save_caption_grid

        keys = sorted(done)
        save_caption_grid(
            [done[i] for i in keys], [items[i] for i in keys], grid_transform, out / "caption_grid.png", grid_rows
        )
    return data
