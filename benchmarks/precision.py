r"""fp32 against bf16 (and fp16) for every trainer and the inference paths: speed, timed alternately in one process,
and, with ``--quality``, what bf16 does to training (loss curves and final metrics, fp32 seed spread alongside).

Usage::

    # speed: every case, fp32 vs bf16 (+ bf16 with channels_last on the 2D conv cases)
    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/precision.py --repeats 5 --channels-last

    # a subset (case-name substrings), fp16 too, on a GPU
    .venv/bin/python benchmarks/precision.py --cases cyclegan diffusion --fp16 --device cuda

    # quality: CycleGAN and TriDeNT trained 200 steps from the same seeds in fp32 and bf16, seeds 0 and 1
    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/precision.py --quality --quality-steps 200 --seeds 0 1

Speed (the default mode). Each case is built once per arm from the same seed (``fp32``, ``bf16``; ``fp16`` with
``--fp16``, and always on CUDA; ``bf16+channels_last`` with ``--channels-last`` on the 2D convolutional cases:
network and inputs in ``torch.channels_last``). Every arm gets one warm-up call, then ``--repeats`` rounds call the
arms in turn (A B A B ...), so that drifts of the machine's speed (other jobs, turbo, thermals) hit all arms alike.
Reported per arm: the median seconds per call, items per second, and ``fp32 / arm``: the median over the rounds of
the ratio of that round's fp32 time to the arm's (> 1: the arm is faster). Inputs are random tensors of the named
shapes (speed does not depend on content). Cases (``--cases`` selects by case-insensitive name substring):

- ``cyclegan 64px ngf64 9blk``, ``cyclegan 128px ngf64 9blk``: one full ``CycleGANTrainer`` iteration (both
  generators and discriminators, forward, backward, steps), reference widths, batch 4, 1 channel (as
  ``benchmarks/translator_speed.py``); ``cyclegan quick 64px ngf32 6blk``: the bundle's quick profile.
- ``ssl tridente``: one ``MultiBranchSSLTrainer`` step, TriDeNT ``[0, 0, 1]``, ResNet-18 2D, 64 px, batch 32,
  projector 512-512-512, VICReg, gradient clipping 1 (the multimodal_ssl bundle's defaults).
- ``diffusion train``: one ``MixedPrecisionSupervisedTrainer`` step of the text_to_image_diffusion bundle's default
  ``DiffusionModelUNet`` (64-128-256, 2 res blocks, attention at the two lower levels) at 64 px, batch 32, with its
  ``DDPMScheduler``, ``DiffusionInferer`` and ``ConditionDropoutPrepareBatch`` (context B x 1 x 384 random).
- ``contrastive ae``: one ``ContrastiveAutoEncoderTrainer`` step (bundle defaults: 28 px, batch 64, 32-64-128).
- ``mae``: one masked-autoencoder step (``MixedPrecisionMaskedAutoEncoderViT``, the MAE bundle's network, 192-wide,
  6 layers, 28 px, patch 4, batch 64).
- ``imagetext``: one ``ImageTextTrainer`` ConVIRT step, ResNet-18 64 px + the bundle's from-scratch text encoder
  (BERT 256-wide, 4 layers, vocabulary 4000), captions padded to 128 tokens (40 real), batch 32.
- ``infer translator``: generator forward (ngf 64, 9 blocks) under ``AutocastInferer``, batch 16 at 128 px.
- ``infer ssl embedding``: ResNet-18 encoder forward under ``autocast`` (what ``embed_items`` runs per batch),
  batch 64 at 64 px.
- ``infer diffusion sampling``: ``sample_images`` of 4 images, 10 DDIM steps, guidance 3, the diffusion UNet above.

Writes ``precision_<device>.json`` and ``precision_<device>.md`` under ``--out`` (rewritten after every case); the
markdown header records the date, CPU model, ``cpu_bf16_units()``, torch version, threads and what
``resolve_precision("auto", device)`` gives. An arm that fails (build or warm-up) is reported as failed in the table
and the exit status is 1; the case's other arms still run. On CPU the fp16 arm can be two
orders of magnitude slower than fp32 (measured here: ~120 s against ~1 s for the quick CycleGAN iteration), so
``--fp16`` on a CPU makes the run far longer. At ``--repeats 5 --channels-last`` the whole speed part takes about
12-15 minutes on 2 CPU cores (about half of it the diffusion training and sampling cases).

Quality (``--quality``, instead of speed). For each seed of ``--seeds`` and each precision (fp32, bf16), from the
same initial weights and the same batches (both drawn from the seed, so the two precisions differ only in
arithmetic):

- a CycleGAN translator T1c -> T2w (ngf = ndf = 16, 3 residual blocks, 32 px, batch 4, the bundle's augmentations)
  trained ``--quality-steps`` steps on the real multi-contrast brain MRI slices of the training subjects; metric:
  SSIM (MONAI ``SSIMMetric``, data range of the held-out T2w slices) of G_AB(T1c) against the real T2w on the
  held-out subject, the prediction masked by the input as the bundle's evaluation does;
- a TriDeNT multi-branch SSL net (ResNet-10, 32 px, batch 32, VICReg, warm-up + cosine learning rate) trained the
  same number of steps on the authentic T1c/T2w pairs of the training subjects; metric: linear-probe accuracy
  (``monai_synpriv.evaluation.probes.linear_probe``; k-NN too) of the frozen primary encoder's embeddings on the
  brain-tumour MRI 4-class set (1000 training / 600 test images, the SSL bundle tests' protocol).

Every step's losses are kept. The final metrics are computed with fp32 inference (the effect of training in bf16)
and with inference at the training precision, next to the untrained network's. The report compares the fp32-bf16
difference with the fp32 seed-to-seed spread, for the metrics and for the (smoothed) loss curves. Writes
``precision_quality_<device>.json``, ``.md`` and ``.png`` (loss curves) under ``--out``. Data come from
``--data-root`` (default ``$SYNPRIV_DATA`` or ``../shared/data``); the prepared slices and images are cached under
``--cache-dir`` (default in the system temporary folder). About 7-10 minutes on 2 CPU cores at the defaults (200
steps, 2 seeds; most of it the SSL runs and their view augmentation).

Not part of the test suite.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import itertools
import json
import os
import platform
import statistics
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from monai_synpriv.utils import atomic_path, autocast, cpu_bf16_units, resolve_precision, write_json_atomic

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = Path(os.environ.get("SYNPRIV_DATA", REPO.parent / "shared" / "data"))
DEFAULT_CACHE = Path(tempfile.gettempdir()) / "monai_synpriv_precision_cache"
CL_ARM = "bf16+channels_last"

Step = Callable[[], object]


# ----------------------------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------------------------


def _sync(device: str) -> None:
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def _cl(x: torch.Tensor, on: bool) -> torch.Tensor:
    """``x`` in channels_last when ``on`` (4D tensors only)."""
    return x.contiguous(memory_format=torch.channels_last) if on and x.dim() == 4 else x


def _model(net: torch.nn.Module, device: str, channels_last: bool) -> torch.nn.Module:
    net = net.to(device)
    return net.to(memory_format=torch.channels_last) if channels_last else net


def cpu_model() -> str:
    """The ``model name`` of /proc/cpuinfo (else ``platform.processor()``)."""
    info = Path("/proc/cpuinfo")
    if info.is_file():
        for line in info.read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def environment(device: str) -> dict:
    """What the results depend on: date, CPU, bf16 units, torch/MONAI versions, threads, GPU, ``auto``."""
    import monai

    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "device": device,
        "cpu": cpu_model(),
        "cpu_bf16_units": list(cpu_bf16_units()),
        "torch": torch.__version__,
        "monai": monai.__version__,
        "threads": torch.get_num_threads(),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        "auto_precision": resolve_precision("auto", device),
        "gpu": torch.cuda.get_device_name(0) if str(device).startswith("cuda") else None,
        "host": platform.node(),
    }


def env_header(env: dict) -> str:
    units = ", ".join(env["cpu_bf16_units"]) or "none"
    gpu = f", GPU {env['gpu']}" if env["gpu"] else ""
    return (
        f"{env['date']}; device {env['device']}{gpu}; CPU {env['cpu']} (bf16 units: {units}); torch {env['torch']}, "
        f"MONAI {env['monai']}; {env['threads']} threads (OMP_NUM_THREADS={env['OMP_NUM_THREADS']}); "
        f"resolve_precision('auto', '{env['device']}') = {env['auto_precision']}."
    )


# ----------------------------------------------------------------------------------------------------------------
# speed cases: build(device, precision, channels_last) -> a callable running one step
# ----------------------------------------------------------------------------------------------------------------


def build_cyclegan(size: int, ngf: int, blocks: int, batch: int = 4) -> Callable[[str, str, bool], Step]:
    def build(device: str, precision: str, cl: bool) -> Step:
        from monai.networks.nets import PatchDiscriminator

        from monai_synpriv.engines import CycleGANTrainer
        from monai_synpriv.networks import CycleGANResNetGenerator

        torch.manual_seed(0)
        shape = (batch, 1, size, size)
        data = {"A": _cl(torch.rand(shape), cl), "B": _cl(torch.rand(shape), cl)}
        g_ab, g_ba = (
            _model(CycleGANResNetGenerator(2, 1, 1, channels=ngf, num_res_blocks=blocks), device, cl) for _ in range(2)
        )
        d_a, d_b = (
            _model(PatchDiscriminator(2, ngf, 1, num_layers_d=3, norm="INSTANCE"), device, cl) for _ in range(2)
        )
        g_opt = torch.optim.Adam(itertools.chain(g_ab.parameters(), g_ba.parameters()), 2e-4, betas=(0.5, 0.999))
        d_opt = torch.optim.Adam(itertools.chain(d_a.parameters(), d_b.parameters()), 2e-4, betas=(0.5, 0.999))
        trainer = CycleGANTrainer(
            device, 1, [data], g_ab, g_ba, d_a, d_b, g_opt, d_opt, precision=precision, decollate=False
        )
        return lambda: trainer._iteration(trainer, data)

    return build


def build_ssl(size: int = 64, batch: int = 32, depth: int = 18) -> Callable[[str, str, bool], Step]:
    def build(device: str, precision: str, cl: bool) -> Step:
        from monai_synpriv.engines import MultiBranchSSLTrainer
        from monai_synpriv.losses import MultiBranchVICRegLoss
        from monai_synpriv.networks import build_multibranch_resnet

        torch.manual_seed(0)
        keys = ["image", "image_2", "privileged"]
        net = _model(build_multibranch_resnet(2, [0, 0, 1], depth=depth, projector_dims=(512, 512, 512)), device, cl)
        data = {k: _cl(torch.rand(batch, 1, size, size), cl) for k in keys}
        trainer = MultiBranchSSLTrainer(
            device,
            1,
            [data],
            net,
            torch.optim.Adam(net.parameters(), 1e-3, weight_decay=1e-6),
            MultiBranchVICRegLoss(normalization="official"),
            keys,
            grad_clip_norm=1.0,
            precision=precision,
            decollate=False,
        )
        return lambda: trainer._iteration(trainer, data)

    return build


def _diffusion_unet() -> torch.nn.Module:
    """The text_to_image_diffusion bundle's default network (context from all-MiniLM-L6-v2: 384 wide)."""
    from monai.networks.nets import DiffusionModelUNet

    return DiffusionModelUNet(
        spatial_dims=2,
        in_channels=1,
        out_channels=1,
        channels=(64, 128, 256),
        attention_levels=(False, True, True),
        num_res_blocks=2,
        num_head_channels=32,
        norm_num_groups=32,
        with_conditioning=True,
        cross_attention_dim=384,
    )


def _ddpm_kwargs() -> dict:
    return {"num_train_timesteps": 1000, "schedule": "scaled_linear_beta", "beta_start": 0.0015, "beta_end": 0.0195}


def build_diffusion_train(size: int = 64, batch: int = 32) -> Callable[[str, str, bool], Step]:
    def build(device: str, precision: str, cl: bool) -> Step:
        from monai.inferers import DiffusionInferer
        from monai.networks.schedulers import DDPMScheduler

        from monai_synpriv.engines import ConditionDropoutPrepareBatch, MixedPrecisionSupervisedTrainer

        torch.manual_seed(0)
        net = _model(_diffusion_unet(), device, cl)
        data = {
            "image": _cl(torch.rand(batch, 1, size, size) * 2 - 1, cl),
            "context": torch.randn(batch, 1, 384),
        }
        trainer = MixedPrecisionSupervisedTrainer(
            device,
            1,
            [data],
            net,
            torch.optim.AdamW(net.parameters(), 2e-4),
            torch.nn.MSELoss(),
            inferer=DiffusionInferer(DDPMScheduler(**_ddpm_kwargs())),
            prepare_batch=ConditionDropoutPrepareBatch(1000, "context", drop_prob=0.1, fill_value=-1.0),
            precision=precision,
            decollate=False,
        )
        return lambda: trainer._iteration(trainer, data)

    return build


def build_contrastive_ae(size: int = 28, batch: int = 64) -> Callable[[str, str, bool], Step]:
    def build(device: str, precision: str, cl: bool) -> Step:
        from monai_synpriv.engines import ContrastiveAutoEncoderTrainer
        from monai_synpriv.losses import ContrastiveAutoEncoderLoss
        from monai_synpriv.networks import ContrastiveAutoEncoder

        torch.manual_seed(0)
        net = ContrastiveAutoEncoder(
            2,
            [1, size, size],
            latent_size=50,
            channels=(32, 64, 128),
            strides=(2, 2, 1),
            projection_dims=(128, 64),
            variational=False,
        )
        net = _model(net, device, cl)
        data = {k: _cl(torch.rand(batch, 1, size, size), cl) for k in ("image", "image_2")}
        loss = ContrastiveAutoEncoderLoss(
            reconstruction_weight=1.0, contrastive_weight=0.1, kl_weight=0.001, temperature=0.5, reconstruction="mse"
        )
        trainer = ContrastiveAutoEncoderTrainer(
            device,
            1,
            [data],
            net,
            torch.optim.AdamW(net.parameters(), 1e-3, weight_decay=1e-5),
            loss,
            view_keys=["image", "image_2"],
            precision=precision,
            decollate=False,
        )
        return lambda: trainer._iteration(trainer, data)

    return build


def build_mae(size: int = 28, batch: int = 64) -> Callable[[str, str, bool], Step]:
    def build(device: str, precision: str, cl: bool) -> Step:
        from monai_synpriv.engines import MixedPrecisionSupervisedTrainer, image_as_target
        from monai_synpriv.losses import MaskedPatchLoss
        from monai_synpriv.networks import MixedPrecisionMaskedAutoEncoderViT

        torch.manual_seed(0)
        net = MixedPrecisionMaskedAutoEncoderViT(
            in_channels=1,
            img_size=[size, size],
            patch_size=4,
            hidden_size=192,
            mlp_dim=768,
            num_layers=6,
            num_heads=6,
            masking_ratio=0.75,
            decoder_hidden_size=96,
            decoder_mlp_dim=384,
            decoder_num_layers=2,
            decoder_num_heads=6,
            spatial_dims=2,
        ).to(device)
        data = {"image": torch.rand(batch, 1, size, size)}
        trainer = MixedPrecisionSupervisedTrainer(
            device,
            1,
            [data],
            net,
            torch.optim.AdamW(net.parameters(), 5e-4, weight_decay=0.05, betas=(0.9, 0.95)),
            MaskedPatchLoss(patch_size=4, norm_pix_loss=False),
            prepare_batch=image_as_target,
            precision=precision,
            decollate=False,
        )
        return lambda: trainer._iteration(trainer, data)

    return build


def build_imagetext(size: int = 64, batch: int = 32, tokens: int = 128, words: int = 40) -> Callable:
    def build(device: str, precision: str, cl: bool) -> Step:
        from monai_synpriv.engines import ImageTextTrainer
        from monai_synpriv.losses import ConVIRTLoss
        from monai_synpriv.networks import RESNET_FEATURES, BertTextEncoder, DualEncoder, make_resnet_encoder

        torch.manual_seed(0)
        # the vision_language_pretraining bundle's text_encoder_kind="scratch" arm (build_text_encoder's defaults)
        text = BertTextEncoder(vocab_size=4000, hidden_size=256, num_layers=4, num_heads=4, max_position=tokens)
        image = make_resnet_encoder(2, 1, 18)
        if cl:
            image = image.to(memory_format=torch.channels_last)
        net = DualEncoder(image, text, RESNET_FEATURES[18], embed_dim=512, temperature=0.1).to(device)
        ids = torch.zeros(batch, tokens, dtype=torch.long)  # right-padded with pad id 0, as TokenizeTextd does
        ids[:, :words] = torch.randint(5, 4000, (batch, words))
        mask = (ids != 0).long()
        data = {"image": _cl(torch.rand(batch, 1, size, size), cl), "text_ids": ids, "text_mask": mask}
        trainer = ImageTextTrainer(
            device,
            1,
            [data],
            net,
            torch.optim.AdamW([p for p in net.parameters() if p.requires_grad], 1e-4, weight_decay=1e-6),
            ConVIRTLoss(temperature=0.1, image_to_text_weight=0.75),
            precision=precision,
            decollate=False,
        )
        return lambda: trainer._iteration(trainer, data)

    return build


def build_infer_translator(size: int = 128, batch: int = 16, ngf: int = 64, blocks: int = 9) -> Callable:
    def build(device: str, precision: str, cl: bool) -> Step:
        from monai_synpriv.inferers import AutocastInferer
        from monai_synpriv.networks import CycleGANResNetGenerator

        torch.manual_seed(0)
        net = _model(CycleGANResNetGenerator(2, 1, 1, channels=ngf, num_res_blocks=blocks), device, cl).eval()
        x = _cl(torch.rand(batch, 1, size, size, device=device), cl)
        inferer = AutocastInferer(precision=precision)

        @torch.no_grad()
        def step():
            return inferer(x, net)

        return step

    return build


def build_infer_embedding(size: int = 64, batch: int = 64, depth: int = 18) -> Callable:
    def build(device: str, precision: str, cl: bool) -> Step:
        from monai_synpriv.networks import make_resnet_encoder

        torch.manual_seed(0)
        net = _model(make_resnet_encoder(2, 1, depth), device, cl).eval()
        x = _cl(torch.rand(batch, 1, size, size, device=device), cl)

        @torch.no_grad()
        def step():  # the forward pass of monai_synpriv.assessment.embed_items, without its data loading
            with autocast(device, precision):
                return net(x).float()

        return step

    return build


def build_infer_sampling(n: int = 4, steps: int = 10, size: int = 64) -> Callable:
    def build(device: str, precision: str, cl: bool) -> Step:
        from monai.networks.schedulers import DDIMScheduler

        from monai_synpriv.vlp.generation import sample_images

        torch.manual_seed(0)
        net = _model(_diffusion_unet(), device, cl).eval()  # sample_images makes its own (contiguous) noise
        sched = DDIMScheduler(**_ddpm_kwargs(), clip_sample=True)
        context = torch.randn(n, 1, 384)

        def step():
            return sample_images(
                net,
                sched,
                context,
                list(range(n)),
                (1, size, size),
                seed=0,
                guidance_scale=3.0,
                num_inference_steps=steps,
                device=device,
                precision=precision,
            )

        return step

    return build


@dataclass
class Case:
    name: str
    build: Callable[[str, str, bool], Step]
    items: int  # images (or samples) per call
    conv2d: bool  # gets the bf16+channels_last arm
    what: str


CASES = [
    Case("cyclegan 64px ngf64 9blk", build_cyclegan(64, 64, 9), 4, True, "CycleGAN iteration, batch 4"),
    Case("cyclegan 128px ngf64 9blk", build_cyclegan(128, 64, 9), 4, True, "CycleGAN iteration, batch 4"),
    Case("cyclegan quick 64px ngf32 6blk", build_cyclegan(64, 32, 6), 4, True, "CycleGAN iteration, batch 4"),
    Case("ssl tridente resnet18 64px", build_ssl(), 32, True, "TriDeNT VICReg step, batch 32"),
    Case("diffusion train unet 64px", build_diffusion_train(), 32, True, "diffusion UNet 64-128-256 step, batch 32"),
    Case("contrastive ae 28px", build_contrastive_ae(), 64, True, "contrastive autoencoder step, batch 64"),
    Case("mae vit 28px", build_mae(), 64, False, "masked autoencoder step, batch 64"),
    Case("imagetext scratch text 64px", build_imagetext(), 32, True, "ConVIRT step, batch 32"),
    Case("infer translator 128px", build_infer_translator(), 16, True, "generator forward, batch 16"),
    Case("infer ssl embedding 64px", build_infer_embedding(), 64, True, "ResNet-18 forward, batch 64"),
    Case("infer diffusion sampling", build_infer_sampling(), 4, True, "4 images, 10 DDIM steps, guidance 3"),
]


def select_cases(patterns: Sequence[str]) -> list[Case]:
    if not patterns:
        return list(CASES)
    chosen = [c for c in CASES if any(p.lower() in c.name.lower() for p in patterns)]
    if not chosen:
        raise SystemExit(f"--cases {list(patterns)} match no case; cases: {[c.name for c in CASES]}")
    return chosen


def arms_for(case: Case, device: str, fp16: bool, channels_last: bool) -> list[tuple[str, str, bool]]:
    """(arm name, precision, channels_last) of a case."""
    arms = [("fp32", "fp32", False), ("bf16", "bf16", False)]
    if fp16 or str(device).startswith("cuda"):
        arms.append(("fp16", "fp16", False))
    if channels_last and case.conv2d:
        arms.append((CL_ARM, "bf16", True))
    return arms


def warm_up(case: Case, arms: list[tuple[str, str, bool]], device: str) -> tuple[dict[str, Step], dict[str, str]]:
    """Build every arm and call it once (the warm-up); an arm that fails is reported, the others still run."""
    fns: dict[str, Step] = {}
    errors: dict[str, str] = {}
    for name, precision, cl in arms:
        try:
            fn = case.build(device, precision, cl)
            fn()
            _sync(device)
            fns[name] = fn
        except Exception as err:  # one broken arm must not lose the others' numbers
            traceback.print_exc()
            errors[name] = f"{type(err).__name__}: {err}".splitlines()[0][:300]
            print(f"{case.name} [{name}]: FAILED ({errors[name]})", flush=True)
    return fns, errors


def time_alternating(fns: dict[str, Step], repeats: int, device: str) -> tuple[dict, dict]:
    """``repeats`` rounds calling the (warmed-up) arms in turn; seconds per call and (CUDA) the peak memory of each
    arm's calls."""
    cuda = str(device).startswith("cuda")
    peaks = {name: 0.0 for name in fns}
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            if cuda:
                torch.cuda.reset_peak_memory_stats()
            _sync(device)
            t0 = time.perf_counter()
            fn()
            _sync(device)
            times[name].append(time.perf_counter() - t0)
            if cuda:
                peaks[name] = max(peaks[name], torch.cuda.max_memory_allocated() / 2**30)
    return times, (peaks if cuda else {})


def speed_markdown(env: dict, rows: list[dict], repeats: int) -> str:
    lines = [
        "# fp32 vs bf16 speed (benchmarks/precision.py)",
        "",
        env_header(env),
        "",
        f"Arms timed alternately in one process: one warm-up call each, then {repeats} rounds (A B A B ...). "
        "`s / call` is the median; `fp32 / arm` is the median over the rounds of that round's fp32 time over the "
        "arm's (> 1: faster than fp32).",
        "",
        "| case | what | arm | s / call | items / s | fp32 / arm |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['case']} | {r['what']} | {r['arm']} | failed: {r['error']} | | |")
            continue
        ratio = "n/a" if r["fp32_over_arm"] is None else f"{r['fp32_over_arm']:.2f}"
        lines.append(
            f"| {r['case']} | {r['what']} | {r['arm']} | {r['seconds_median']:.4f} | {r['items_per_second']:.2f} | "
            f"{ratio} |"
        )
    return "\n".join(lines) + "\n"


def write_outputs(out: Path, stem: str, payload: dict, md: str) -> None:
    write_json_atomic(out / f"{stem}.json", payload)
    with atomic_path(out / f"{stem}.md") as tmp:
        Path(tmp).write_text(md)


def run_speed(args: argparse.Namespace) -> int:
    env = environment(args.device)
    out = Path(args.out)
    stem = f"precision_{args.device.split(':')[0]}"
    rows: list[dict] = []
    failed = False
    print(env_header(env), flush=True)
    if args.fp16 and not str(args.device).startswith("cuda"):
        print("note: fp16 on a CPU can be far slower than fp32 (no fp16 kernels for some operations)", flush=True)
    t_all = time.perf_counter()
    for case in select_cases(args.cases):
        arms = arms_for(case, args.device, args.fp16, args.channels_last)
        t0 = time.perf_counter()
        fns, errors = warm_up(case, arms, args.device)
        times, peaks = time_alternating(fns, args.repeats, args.device)
        del fns
        failed = failed or bool(errors)
        base = times.get("fp32")
        for name, precision, cl in arms:
            if name in errors:
                rows.append(
                    {
                        "case": case.name,
                        "what": case.what,
                        "arm": name,
                        "precision": precision,
                        "channels_last": cl,
                        "error": errors[name],
                    }
                )
                continue
            ts = times[name]
            med = statistics.median(ts)
            row = {
                "case": case.name,
                "what": case.what,
                "arm": name,
                "precision": precision,
                "channels_last": cl,
                "items": case.items,
                "seconds_median": med,
                "items_per_second": case.items / med,
                "fp32_over_arm": statistics.median(b / t for b, t in zip(base, ts)) if base else None,
                "times": ts,
            }
            if name in peaks:
                row["peak_memory_gib"] = peaks[name]
            rows.append(row)
            ratio = "n/a" if row["fp32_over_arm"] is None else f"{row['fp32_over_arm']:.2f}"
            print(
                f"{case.name} [{name}]: {med:.4f} s/call, {row['items_per_second']:.2f} items/s, fp32/arm {ratio}",
                flush=True,
            )
        print(f"  ({time.perf_counter() - t0:.1f} s for this case)", flush=True)
        payload = {"environment": env, "repeats": args.repeats, "results": rows}
        write_outputs(out, stem, payload, speed_markdown(env, rows, args.repeats))
    md = speed_markdown(env, rows, args.repeats)
    print("\n" + md)
    print(f"speed part: {time.perf_counter() - t_all:.0f} s", flush=True)
    return 1 if failed else 0


# ----------------------------------------------------------------------------------------------------------------
# quality: the same training in fp32 and bf16 on real data
# ----------------------------------------------------------------------------------------------------------------


def _load_stack(items: list[dict], keys: Sequence[str], crop: int, size: int, grayscale_norm: bool = False) -> dict:
    """Load ``keys`` of every item, centre-crop, resize to ``size`` (as the bundles do); one N x 1 x H x W tensor
    per key."""
    from monai.transforms import CenterSpatialCropd, Compose, EnsureTyped, LoadImaged, Resized

    from monai_synpriv.transforms import AsGrayscaled, ForegroundPercentileNormalized

    chain = [LoadImaged(keys, image_only=True, ensure_channel_first=True)]
    if grayscale_norm:  # the SSL bundle's evaluate.json for the brain-tumour probe images
        chain += [AsGrayscaled(keys), ForegroundPercentileNormalized(keys)]
    chain += [EnsureTyped(keys, dtype=torch.float32, track_meta=False)]
    if crop:
        chain += [CenterSpatialCropd(keys, roi_size=(crop, crop))]
    chain += [Resized(keys, spatial_size=(size, size), mode="bilinear", anti_aliasing=True)]
    load = Compose(chain)
    out: dict[str, list[torch.Tensor]] = {k: [] for k in keys}
    for item in items:
        d = load(dict(item))
        for k in keys:
            out[k].append(torch.as_tensor(d[k]).float())
    return {k: torch.stack(v) for k, v in out.items()}


@dataclass
class QualityConfig:
    steps: int
    seeds: list[int]
    device: str
    data_root: Path
    cache_dir: Path
    # translator
    cg_size: int = 32
    cg_ngf: int = 16
    cg_blocks: int = 3
    cg_batch: int = 4
    # SSL
    ssl_size: int = 32
    ssl_depth: int = 10
    ssl_batch: int = 32
    probe_train: int = 1000
    probe_test: int = 600


def translator_data(cfg: QualityConfig) -> dict:
    """T1c (A) and T2w (B) slices of the training subjects at 1.125 x size (random crops are taken per step) and the
    held-out subject's aligned pairs at size, from the bundle's slice preparation."""
    from monai_synpriv.data import load_image_list, prepare_multicontrast_slices

    src = cfg.data_root / "mri_brain_multicontrast"
    datalist = prepare_multicontrast_slices(src, cfg.cache_dir / "slices", contrast_a="t1c", contrast_b="t2w")
    load_size = int(cfg.cg_size * 1.125)
    train_a = load_image_list(datalist, key="A", section="training_a", source_key="A")
    train_b = load_image_list(datalist, key="B", section="training_b", source_key="B")
    val = load_image_list(
        load_image_list(datalist, key="B", section="validation", source_key="B"), key="A", source_key="A"
    )
    return {
        "A": _load_stack(train_a, ["A"], 192, load_size)["A"],
        "B": _load_stack(train_b, ["B"], 192, load_size)["B"],
        "val": _load_stack(val, ["A", "B"], 192, cfg.cg_size),
        "heldout": json.loads(Path(datalist).read_text())["params"]["heldout_subjects"],
    }


def _random_crop_flip(x: torch.Tensor, size: int, g: torch.Generator) -> torch.Tensor:
    """RandSpatialCrop(size) + RandFlip(prob 0.5, first spatial axis) per sample."""
    out = []
    for img in x:
        h0 = int(torch.randint(0, img.shape[-2] - size + 1, (1,), generator=g))
        w0 = int(torch.randint(0, img.shape[-1] - size + 1, (1,), generator=g))
        img = img[:, h0 : h0 + size, w0 : w0 + size]
        if float(torch.rand(1, generator=g)) < 0.5:
            img = img.flip(-2)
        out.append(img)
    return torch.stack(out)


def _random_gamma(x: torch.Tensor, g: torch.Generator, prob: float = 0.5, lo: float = 0.6, hi: float = 1.6):
    """RandAdjustContrast (the translator bundle's input gamma augmentation) per sample."""
    out = []
    for img in x:
        if float(torch.rand(1, generator=g)) < prob:
            gamma = lo + (hi - lo) * float(torch.rand(1, generator=g))
            mn, rng = img.min(), (img.max() - img.min()).clamp_min(1e-7)
            img = ((img - mn) / rng).pow(gamma) * rng + mn
        out.append(img)
    return torch.stack(out)


def translator_batches(data: dict, cfg: QualityConfig, seed: int) -> list[dict]:
    g = torch.Generator().manual_seed(10_000 + seed)
    batches = []
    for _ in range(cfg.steps):
        ia = torch.randint(0, len(data["A"]), (cfg.cg_batch,), generator=g)
        ib = torch.randint(0, len(data["B"]), (cfg.cg_batch,), generator=g)
        a = _random_gamma(_random_crop_flip(data["A"][ia], cfg.cg_size, g), g)
        b = _random_crop_flip(data["B"][ib], cfg.cg_size, g)
        batches.append({"A": a.contiguous(), "B": b.contiguous()})
    return batches


def translator_ssim(g_ab: torch.nn.Module, val: dict, device: str, precision: str) -> float:
    """Mean SSIM of G_AB(A) (masked by A > 0, as the bundle's evaluation) against B on the held-out slices."""
    from monai.metrics import SSIMMetric

    a, b = val["A"].to(device), val["B"].to(device)
    data_range = float(b.max() - b.min())
    g_ab.eval()
    preds = []
    with torch.no_grad():
        for i in range(0, len(a), 32):
            with autocast(device, precision):
                p = g_ab(a[i : i + 32])
            preds.append(p.float())
    pred = torch.cat(preds) * (a > 0)
    g_ab.train()
    return float(SSIMMetric(spatial_dims=2, data_range=data_range)(pred, b).mean())


def run_translator(data: dict, cfg: QualityConfig, seed: int, batches: list[dict]) -> dict:
    from monai.networks.nets import PatchDiscriminator
    from monai.utils import set_determinism

    from monai_synpriv.engines import CycleGANTrainer
    from monai_synpriv.losses import CycleGANGeneratorLoss
    from monai_synpriv.networks import CycleGANResNetGenerator

    set_determinism(seed=seed)
    nets0 = [CycleGANResNetGenerator(2, 1, 1, channels=cfg.cg_ngf, num_res_blocks=cfg.cg_blocks) for _ in range(2)]
    nets0 += [PatchDiscriminator(2, cfg.cg_ngf, 1, num_layers_d=3, norm="INSTANCE") for _ in range(2)]
    untrained = translator_ssim(copy.deepcopy(nets0[0]).to(cfg.device), data["val"], cfg.device, "fp32")
    result = {"untrained_ssim": untrained}
    for precision in ("fp32", "bf16"):
        g_ab, g_ba, d_a, d_b = (copy.deepcopy(n).to(cfg.device) for n in nets0)
        g_opt = torch.optim.Adam(itertools.chain(g_ab.parameters(), g_ba.parameters()), 2e-4, betas=(0.5, 0.999))
        d_opt = torch.optim.Adam(itertools.chain(d_a.parameters(), d_b.parameters()), 2e-4, betas=(0.5, 0.999))
        trainer = CycleGANTrainer(
            cfg.device,
            1,
            batches,
            g_ab,
            g_ba,
            d_a,
            d_b,
            g_opt,
            d_opt,
            g_loss_function=CycleGANGeneratorLoss(lambda_cycle=10.0, lambda_identity=0.5),
            precision=precision,
            decollate=False,
        )
        set_determinism(seed=20_000 + seed)  # the image pools draw from python's random: the same draws per arm
        loss_g, loss_d = [], []
        t0 = time.perf_counter()
        for batch in batches:
            out = trainer._iteration(trainer, batch)
            loss_g.append(float(out["loss_g"]))
            loss_d.append(float(out["loss_d"]))
        seconds = time.perf_counter() - t0
        result[precision] = {
            "loss_g": loss_g,
            "loss_d": loss_d,
            "train_seconds": seconds,
            "ssim_fp32_inference": translator_ssim(g_ab, data["val"], cfg.device, "fp32"),
            "ssim_same_precision_inference": translator_ssim(g_ab, data["val"], cfg.device, precision),
        }
        print(
            f"  translator seed {seed} {precision}: {seconds:.1f} s, final loss_g {np.mean(loss_g[-20:]):.3f}, "
            f"held-out SSIM {result[precision]['ssim_fp32_inference']:.4f} (untrained {untrained:.4f})",
            flush=True,
        )
    set_determinism(seed=None)
    return result


def ssl_data(cfg: QualityConfig) -> dict:
    """The authentic T1c/T2w pairs of the training subjects (the multimodal_ssl bundle's arm) at 1.125 x size, and
    the brain-tumour probe images (grey, foreground-normalised, size) with labels."""
    from monai_synpriv.data import (
        authentic_pairs_datalist,
        load_image_list,
        prepare_brain_tumor_mri,
        prepare_multicontrast_slices,
        probe_items,
    )

    src = cfg.data_root / "mri_brain_multicontrast"
    slices = prepare_multicontrast_slices(src, cfg.cache_dir / "slices", contrast_a="t1c", contrast_b="t2w")
    pairs = authentic_pairs_datalist(slices, cfg.cache_dir / "slices" / "authentic_pairs_t1c_t2w.json")
    items = load_image_list(pairs, key="image", section="training")
    load_size = int(cfg.ssl_size * 1.125)
    train = _load_stack(items, ["image", "privileged"], 192, load_size)
    labelled = prepare_brain_tumor_mri(cfg.data_root / "brain_tumor_mri_4class", cfg.cache_dir / "brain_tumor_mri")
    probe = probe_items(labelled, "training", "test", max_train=cfg.probe_train, max_test=cfg.probe_test, num_classes=4)
    images = _load_stack(probe, ["image"], 0, cfg.ssl_size, grayscale_norm=True)["image"]
    split = np.array([p["split"] for p in probe])
    labels = np.array([p["label"] for p in probe])
    return {"train": train, "probe_x": images, "probe_y": labels, "probe_split": split}


def ssl_batches(data: dict, cfg: QualityConfig, seed: int) -> list[dict]:
    """The bundle's view pipeline (``multiview_transforms``), its random state drawn from the seed."""
    from monai.transforms import Compose

    from monai_synpriv.transforms import multiview_transforms

    views = Compose(multiview_transforms(["image", "image_2", "privileged"], (cfg.ssl_size, cfg.ssl_size)))
    views.set_random_state(seed=30_000 + seed)
    g = torch.Generator().manual_seed(40_000 + seed)
    n = len(data["train"]["image"])
    batches = []
    for _ in range(cfg.steps):
        idx = torch.randint(0, n, (cfg.ssl_batch,), generator=g)
        samples = [
            views({"image": data["train"]["image"][i].clone(), "privileged": data["train"]["privileged"][i].clone()})
            for i in idx.tolist()
        ]
        keys = ("image", "image_2", "privileged")
        batches.append({k: torch.stack([torch.as_tensor(s[k]).float() for s in samples]) for k in keys})
    return batches


def probe_accuracy(encoder: torch.nn.Module, data: dict, device: str, precision: str, seed: int) -> dict:
    from monai_synpriv.evaluation.probes import knn_probe, linear_probe

    encoder.eval()
    feats = []
    with torch.no_grad():
        for i in range(0, len(data["probe_x"]), 128):
            with autocast(device, precision):
                f = encoder(data["probe_x"][i : i + 128].to(device))
            feats.append(f.float().flatten(1).cpu())
    encoder.train()
    x = torch.cat(feats).numpy().astype(np.float64)
    tr, te = data["probe_split"] == "training", data["probe_split"] == "test"
    y = data["probe_y"]
    lin = linear_probe(x[tr], y[tr], x[te], seed=seed)
    knn = knn_probe(x[tr], y[tr], x[te])
    return {"linear": float((lin == y[te]).mean()), "knn": float((knn == y[te]).mean())}


def run_ssl(data: dict, cfg: QualityConfig, seed: int, batches: list[dict]) -> dict:
    from monai.optimizers import WarmupCosineSchedule
    from monai.utils import set_determinism

    from monai_synpriv.engines import MultiBranchSSLTrainer
    from monai_synpriv.losses import MultiBranchVICRegLoss
    from monai_synpriv.networks import build_multibranch_resnet

    set_determinism(seed=seed)
    net0 = build_multibranch_resnet(2, [0, 0, 1], depth=cfg.ssl_depth, projector_dims=(512, 512, 512))
    untrained = probe_accuracy(copy.deepcopy(net0.primary_encoder).to(cfg.device), data, cfg.device, "fp32", seed)
    result = {"untrained_probe": untrained}
    for precision in ("fp32", "bf16"):
        net = copy.deepcopy(net0).to(cfg.device)
        opt = torch.optim.Adam(net.parameters(), 1e-3, weight_decay=1e-6)
        sched = WarmupCosineSchedule(opt, warmup_steps=int(0.1 * cfg.steps), t_total=cfg.steps)
        trainer = MultiBranchSSLTrainer(
            cfg.device,
            1,
            batches,
            net,
            opt,
            MultiBranchVICRegLoss(normalization="official"),
            ["image", "image_2", "privileged"],
            grad_clip_norm=1.0,
            precision=precision,
            decollate=False,
        )
        set_determinism(seed=50_000 + seed)
        losses = []
        t0 = time.perf_counter()
        for batch in batches:
            out = trainer._iteration(trainer, batch)
            sched.step()
            losses.append(float(out["loss"]))
        seconds = time.perf_counter() - t0
        enc = net.primary_encoder
        result[precision] = {
            "loss": losses,
            "train_seconds": seconds,
            "probe_fp32_inference": probe_accuracy(enc, data, cfg.device, "fp32", seed),
            "probe_same_precision_inference": probe_accuracy(enc, data, cfg.device, precision, seed),
        }
        print(
            f"  ssl seed {seed} {precision}: {seconds:.1f} s, final loss {np.mean(losses[-20:]):.3f}, linear probe "
            f"{result[precision]['probe_fp32_inference']['linear']:.4f} (untrained {untrained['linear']:.4f})",
            flush=True,
        )
    set_determinism(seed=None)
    return result


def _smooth(x: Sequence[float], window: int) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    window = max(1, min(window, len(x)))
    return np.convolve(x, np.ones(window) / window, mode="valid")


def _curve_gap(a: Sequence[float], b: Sequence[float], window: int) -> float:
    """Mean absolute difference of two loss curves after a moving average of ``window`` steps."""
    return float(np.mean(np.abs(_smooth(a, window) - _smooth(b, window))))


def quality_summary(res: dict, seeds: list[int], window: int) -> dict:
    """fp32-bf16 differences (per seed, then averaged) against the fp32 seed-to-seed spread (all seed pairs)."""
    metrics = {
        "translator_ssim": lambda s, p: res["translator"][s][p]["ssim_fp32_inference"],
        "translator_ssim_same_precision_inference": lambda s, p: res["translator"][s][p][
            "ssim_same_precision_inference"
        ],
        "ssl_linear_probe": lambda s, p: res["ssl"][s][p]["probe_fp32_inference"]["linear"],
        "ssl_linear_probe_same_precision_inference": lambda s, p: res["ssl"][s][p]["probe_same_precision_inference"][
            "linear"
        ],
        "ssl_knn_probe": lambda s, p: res["ssl"][s][p]["probe_fp32_inference"]["knn"],
    }
    curves = {
        "translator_loss_g": lambda s, p: res["translator"][s][p]["loss_g"],
        "translator_loss_d": lambda s, p: res["translator"][s][p]["loss_d"],
        "ssl_loss": lambda s, p: res["ssl"][s][p]["loss"],
    }
    pairs = list(itertools.combinations(seeds, 2))
    out: dict = {"metrics": {}, "curves": {}}
    for name, get in metrics.items():
        fp32 = {s: get(s, "fp32") for s in seeds}
        bf16 = {s: get(s, "bf16") for s in seeds}
        out["metrics"][name] = {
            "fp32_mean": float(np.mean(list(fp32.values()))),
            "bf16_mean": float(np.mean(list(bf16.values()))),
            "mean_abs_fp32_minus_bf16": float(np.mean([abs(fp32[s] - bf16[s]) for s in seeds])),
            "mean_fp32_minus_bf16": float(np.mean([fp32[s] - bf16[s] for s in seeds])),
            "fp32_seed_spread": float(np.mean([abs(fp32[a] - fp32[b]) for a, b in pairs])) if pairs else None,
        }
    for name, get in curves.items():
        out["curves"][name] = {
            "smoothing_window": window,
            "mean_gap_fp32_bf16": float(np.mean([_curve_gap(get(s, "fp32"), get(s, "bf16"), window) for s in seeds])),
            "mean_gap_fp32_seeds": (
                float(np.mean([_curve_gap(get(a, "fp32"), get(b, "fp32"), window) for a, b in pairs]))
                if pairs
                else None
            ),
            "final_fp32": float(np.mean([np.mean(get(s, "fp32")[-window:]) for s in seeds])),
            "final_bf16": float(np.mean([np.mean(get(s, "bf16")[-window:]) for s in seeds])),
        }
    return out


def plot_curves(res: dict, seeds: list[int], window: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [
        ("translator", "loss_g", "CycleGAN generator loss"),
        ("translator", "loss_d", "CycleGAN discriminator loss"),
        ("ssl", "loss", "TriDeNT VICReg loss"),
    ]
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4))
    colours = {"fp32": "tab:blue", "bf16": "tab:orange"}
    styles = ["-", "--", ":", "-."]
    for ax, (part, key, title) in zip(axes, panels):
        for j, s in enumerate(seeds):
            for p in ("fp32", "bf16"):
                y = np.asarray(res[part][s][p][key])
                ax.plot(np.arange(len(y)), y, color=colours[p], alpha=0.15, linewidth=0.8)
                sm = _smooth(y, window)
                ax.plot(
                    np.arange(len(sm)) + (len(y) - len(sm)),
                    sm,
                    color=colours[p],
                    linestyle=styles[j % len(styles)],
                    label=f"{p} seed {s}",
                )
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.legend(fontsize=8)
    fig.suptitle(f"fp32 vs bf16 loss curves (faint: every step; lines: moving average of {window})")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def quality_markdown(env: dict, cfg: QualityConfig, res: dict, summary: dict, png: str, extra: dict) -> str:
    seeds = cfg.seeds
    lines = [
        "# fp32 vs bf16 training quality (benchmarks/precision.py --quality)",
        "",
        env_header(env),
        "",
        f"{cfg.steps} steps per run, seeds {seeds}; fp32 and bf16 of a seed start from the same weights and see the "
        f"same batches. Translator: CycleGAN T1c -> T2w, ngf = ndf = {cfg.cg_ngf}, {cfg.cg_blocks} residual blocks, "
        f"{cfg.cg_size} px, batch {cfg.cg_batch}, on the multi-contrast MRI training subjects; SSIM of G_AB(T1c) "
        f"against the real T2w on the held-out subject(s) {extra.get('heldout')}. SSL: TriDeNT [0, 0, 1], ResNet-"
        f"{cfg.ssl_depth}, {cfg.ssl_size} px, batch {cfg.ssl_batch}, VICReg; linear-probe accuracy of the primary "
        f"encoder on brain-tumour MRI ({cfg.probe_train} train / {cfg.probe_test} test requested). Metrics with "
        "fp32 inference unless named 'same precision'. Loss curves: "
        f"[{png}]({png}).",
        "",
        "## Final metrics per run",
        "",
        "| seed | precision | held-out SSIM | SSIM (same-precision inference) | linear probe | linear probe "
        "(same-precision inference) | k-NN probe | translator s | SSL s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for s in seeds:
        t, q = res["translator"][s], res["ssl"][s]
        lines.append(
            f"| {s} | untrained | {t['untrained_ssim']:.4f} | | {q['untrained_probe']['linear']:.4f} | | "
            f"{q['untrained_probe']['knn']:.4f} | | |"
        )
        for p in ("fp32", "bf16"):
            lines.append(
                f"| {s} | {p} | {t[p]['ssim_fp32_inference']:.4f} | {t[p]['ssim_same_precision_inference']:.4f} | "
                f"{q[p]['probe_fp32_inference']['linear']:.4f} | "
                f"{q[p]['probe_same_precision_inference']['linear']:.4f} | {q[p]['probe_fp32_inference']['knn']:.4f} | "
                f"{t[p]['train_seconds']:.1f} | {q[p]['train_seconds']:.1f} |"
            )
    fmt = lambda v: "n/a" if v is None else f"{v:.4f}"  # noqa: E731
    lines += [
        "",
        "## bf16 against the fp32 seed spread",
        "",
        "| quantity | fp32 mean | bf16 mean | mean abs(fp32 - bf16), same seed | fp32 seed-to-seed abs difference |",
        "|---|---|---|---|---|",
    ]
    for name, m in summary["metrics"].items():
        lines.append(
            f"| {name} | {m['fp32_mean']:.4f} | {m['bf16_mean']:.4f} | {m['mean_abs_fp32_minus_bf16']:.4f} | "
            f"{fmt(m['fp32_seed_spread'])} |"
        )
    for name, c in summary["curves"].items():
        lines.append(
            f"| {name} (final {c['smoothing_window']}-step mean; gaps: mean abs of smoothed curves) | "
            f"{c['final_fp32']:.4f} | {c['final_bf16']:.4f} | {c['mean_gap_fp32_bf16']:.4f} | "
            f"{fmt(c['mean_gap_fp32_seeds'])} |"
        )
    lines += [
        "",
        "Per-step losses are in the JSON (`translator.<seed>.<precision>.loss_g` / `loss_d`, "
        "`ssl.<seed>.<precision>.loss`).",
    ]
    return "\n".join(lines) + "\n"


def run_quality(args: argparse.Namespace) -> int:
    cfg = QualityConfig(
        steps=args.quality_steps,
        seeds=list(args.seeds),
        device=args.device,
        data_root=Path(args.data_root),
        cache_dir=Path(args.cache_dir),
        ssl_size=args.ssl_size,
        ssl_depth=args.ssl_depth,
        probe_train=args.probe_train,
        probe_test=args.probe_test,
    )
    env = environment(args.device)
    print(env_header(env), flush=True)
    t_all = time.perf_counter()
    t0 = time.perf_counter()
    tdata = translator_data(cfg)
    sdata = ssl_data(cfg)
    print(
        f"data: {len(tdata['A'])} A / {len(tdata['B'])} B training slices, {len(tdata['val']['A'])} held-out pairs, "
        f"{len(sdata['train']['image'])} SSL pairs, {len(sdata['probe_y'])} probe images "
        f"({time.perf_counter() - t0:.1f} s)",
        flush=True,
    )
    res: dict = {"translator": {}, "ssl": {}}
    for seed in cfg.seeds:
        res["translator"][seed] = run_translator(tdata, cfg, seed, translator_batches(tdata, cfg, seed))
        res["ssl"][seed] = run_ssl(sdata, cfg, seed, ssl_batches(sdata, cfg, seed))
    window = max(1, min(20, cfg.steps // 5))
    summary = quality_summary(res, cfg.seeds, window)
    out = Path(args.out)
    stem = f"precision_quality_{args.device.split(':')[0]}"
    png = f"{stem}.png"
    out.mkdir(parents=True, exist_ok=True)
    plot_curves(res, cfg.seeds, window, out / png)
    extra = {
        "heldout": tdata["heldout"],
        "n_train_a": len(tdata["A"]),
        "n_train_b": len(tdata["B"]),
        "n_heldout_pairs": len(tdata["val"]["A"]),
        "n_ssl_pairs": len(sdata["train"]["image"]),
        "n_probe_train": int((sdata["probe_split"] == "training").sum()),
        "n_probe_test": int((sdata["probe_split"] == "test").sum()),
        "wall_seconds": time.perf_counter() - t_all,
    }
    config = {k: (str(v) if isinstance(v, Path) else v) for k, v in cfg.__dict__.items()}
    payload = {"environment": env, "config": config, "data": extra, "summary": summary, **res}
    md = quality_markdown(env, cfg, res, summary, png, extra)
    write_outputs(out, stem, payload, md)
    print("\n" + md)
    print(f"quality part: {extra['wall_seconds']:.0f} s", flush=True)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--cases", nargs="*", default=[], help="case-name substrings to run (default: all)")
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds after one warm-up per arm")
    parser.add_argument("--fp16", action="store_true", help="add an fp16 arm (always on for CUDA)")
    parser.add_argument(
        "--channels-last", action="store_true", help=f"add a '{CL_ARM}' arm to the 2D convolutional cases"
    )
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    parser.add_argument("--quality", action="store_true", help="run the training-quality comparison instead of speed")
    parser.add_argument("--quality-steps", type=int, default=200, help="training steps per quality run")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="seeds of the quality runs")
    parser.add_argument("--data-root", default=str(DEFAULT_DATA), help="the public data folder (../shared/data)")
    parser.add_argument("--cache-dir", default=str(DEFAULT_CACHE), help="prepared slices and probe images")
    parser.add_argument("--ssl-size", type=int, default=32, help="quality SSL image size")
    parser.add_argument("--ssl-depth", type=int, default=10, help="quality SSL ResNet depth")
    parser.add_argument("--probe-train", type=int, default=1000, help="probe training images")
    parser.add_argument("--probe-test", type=int, default=600, help="probe test images")
    args = parser.parse_args()
    if args.repeats < 1 or args.quality_steps < 1:
        parser.error("--repeats and --quality-steps must be >= 1")
    return run_quality(args) if args.quality else run_speed(args)


if __name__ == "__main__":
    raise SystemExit(main())
