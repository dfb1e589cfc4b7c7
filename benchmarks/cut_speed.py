r"""Iteration time of CUT and FastCUT against CycleGAN at equal generator (issue 17): one full training iteration
of each trainer (every generator, discriminator and, for CUT, the PatchNCE head: forward, backward, steps) on random
tensors, the trainers timed alternately (A B C A B C ...) after a warm-up each.

Usage::

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/cut_speed.py [--device cuda] [--repeats 5] [--precision bf16] \
        [--size 128] [--out benchmarks/results]

Prints a markdown table and writes ``cut_speed_<device>.json`` / ``.md`` under ``--out``. Not part of the tests.
Cases: the bundle's CPU profile generator (ngf 32, 6 residual blocks) and the reference widths
(ngf 64, 9 blocks), both with resize up-sampling in every trainer, batch 4, 256 patches per PatchNCE layer, the reference's default layers.
"""

from __future__ import annotations

import argparse
import itertools
import platform
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

import torch
from monai.networks.nets import PatchDiscriminator

sys.path.insert(0, str(Path(__file__).resolve().parent))
from translator_speed import our_step, time_alternating  # noqa: E402

from monai_synpriv.engines import CUTTrainer  # noqa: E402
from monai_synpriv.losses import CUTGeneratorLoss  # noqa: E402
from monai_synpriv.networks import CycleGANResNetGenerator, PatchSampleMLP  # noqa: E402
from monai_synpriv.utils import atomic_path, resolve_precision, write_json_atomic  # noqa: E402

CASES = [("CPU profile (ngf 32, 6 blocks)", 32, 6), ("reference widths (ngf 64, 9 blocks)", 64, 9)]


def cut_step(size: int, batch: int, ngf: int, blocks: int, device: str, precision: str, fast: bool) -> Callable:
    """One full iteration of ``CUTTrainer`` (FastCUT settings with ``fast``) as a callable."""
    torch.manual_seed(0)
    shape = (batch, 1, size, size)
    data = {"A": torch.rand(shape), "B": torch.rand(shape)}
    g = CycleGANResNetGenerator(2, 1, 1, channels=ngf, num_res_blocks=blocks, upsample="resize").to(device)
    d = PatchDiscriminator(2, ngf, 1, num_layers_d=3, norm="INSTANCE").to(device)
    head = PatchSampleMLP(g.feature_channels(g.default_nce_layers())).to(device)
    g_opt = torch.optim.Adam(itertools.chain(g.parameters(), head.parameters()), 2e-4, betas=(0.5, 0.999))
    d_opt = torch.optim.Adam(d.parameters(), 2e-4, betas=(0.5, 0.999))
    loss = CUTGeneratorLoss(lambda_nce=10.0 if fast else 1.0, nce_idt=not fast)
    trainer = CUTTrainer(device, 1, [data], g, d, head, g_opt, d_opt, g_loss_function=loss, flip_equivariance=fast,
                         precision=precision, decollate=False)  # fmt: skip
    return lambda: trainer._iteration(trainer, data)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--precision", default="auto")
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    a = p.parse_args()
    precision = resolve_precision(a.precision, a.device)
    rows = []
    for name, ngf, blocks in CASES:
        arms = {
            "CycleGAN": our_step(2, a.size, a.batch, ngf, blocks, a.device, precision, upsample="resize"),
            "CUT": cut_step(a.size, a.batch, ngf, blocks, a.device, precision, fast=False),
            "FastCUT": cut_step(a.size, a.batch, ngf, blocks, a.device, precision, fast=True),
        }
        times = time_alternating(arms, a.repeats, a.device)
        med = {k: statistics.median(v) for k, v in times.items()}
        rows.append({"case": name, "size": a.size, "batch": a.batch, "precision": precision, "seconds": med,
                     "all_seconds": times})  # fmt: skip
        print(f"{name}: " + ", ".join(f"{k} {v:.3f} s" for k, v in med.items()), flush=True)
    lines = [
        f"CycleGAN vs CUT vs FastCUT iteration, {a.size} px, batch {a.batch}, {precision}, {a.device} "
        f"({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads), median of {a.repeats}",
        "",
        "| generator | CycleGAN s | CUT s | FastCUT s | CycleGAN / CUT | CycleGAN / FastCUT |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        s = r["seconds"]
        lines.append(f"| {r['case']} | {s['CycleGAN']:.3f} | {s['CUT']:.3f} | {s['FastCUT']:.3f} | "
                     f"{s['CycleGAN'] / s['CUT']:.2f}x | {s['CycleGAN'] / s['FastCUT']:.2f}x |")  # fmt: skip
    table = "\n".join(lines) + "\n"
    print(table)
    a.out.mkdir(parents=True, exist_ok=True)
    dev = "cuda" if a.device.startswith("cuda") else "cpu"
    write_json_atomic(a.out / f"cut_speed_{dev}.json", {"rows": rows, "threads": torch.get_num_threads()})
    with atomic_path(a.out / f"cut_speed_{dev}.md") as tmp:
        Path(tmp).write_text(table)


if __name__ == "__main__":
    main()
