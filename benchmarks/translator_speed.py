"""Training throughput of the CycleGAN translator (images/s of domain A per full iteration: both generators, both
discriminators, forward + backward + steps), 2D at 64 and 128 px and 3D at 32^3 and 64^3.

    .venv/bin/python benchmarks/translator_speed.py [--device cuda] [--repeats 5] [--out benchmarks/results]

Prints a markdown table and writes ``translator_speed_<device>.json`` / ``.md`` under ``--out``. Inputs are random
tensors of the given shape (speed does not depend on content); widths are the bundle's quick-profile defaults (2D:
ngf=ndf=32, 6 residual blocks; 3D: ngf=ndf=16, 4 residual blocks) and, for 2D, the reference widths (ngf=ndf=64,
9 blocks). Not part of the test suite.
"""

from __future__ import annotations

import argparse
import itertools
import platform
import statistics
import time
from pathlib import Path

import torch
from monai.networks.nets import PatchDiscriminator

from monai_synpriv.engines import CycleGANTrainer
from monai_synpriv.networks import CycleGANResNetGenerator
from monai_synpriv.utils import atomic_path, write_json_atomic

CASES = [
    # name, spatial_dims, size, batch, ngf, blocks
    ("2D 64 px, quick (ngf 32, 6 blocks)", 2, 64, 4, 32, 6),
    ("2D 128 px, quick (ngf 32, 6 blocks)", 2, 128, 4, 32, 6),
    ("2D 64 px, reference (ngf 64, 9 blocks)", 2, 64, 4, 64, 9),
    ("2D 128 px, reference (ngf 64, 9 blocks)", 2, 128, 4, 64, 9),
    ("3D 32^3, quick (ngf 16, 4 blocks)", 3, 32, 2, 16, 4),
    ("3D 64^3, quick (ngf 16, 4 blocks)", 3, 64, 2, 16, 4),
]


def measure(
    spatial_dims: int, size: int, batch: int, ngf: int, blocks: int, device: str, repeats: int, amp: bool
) -> dict:
    torch.manual_seed(0)
    shape = (batch, 1, *([size] * spatial_dims))
    data = [{"A": torch.rand(shape), "B": torch.rand(shape)}]
    g_ab, g_ba = (
        CycleGANResNetGenerator(spatial_dims, 1, 1, channels=ngf, num_res_blocks=blocks).to(device) for _ in range(2)
    )
    d_a, d_b = (PatchDiscriminator(spatial_dims, ngf, 1, num_layers_d=3, norm="INSTANCE").to(device) for _ in range(2))
    g_opt = torch.optim.Adam(itertools.chain(g_ab.parameters(), g_ba.parameters()), 2e-4, betas=(0.5, 0.999))
    d_opt = torch.optim.Adam(itertools.chain(d_a.parameters(), d_b.parameters()), 2e-4, betas=(0.5, 0.999))
    trainer = CycleGANTrainer(device, 1, data, g_ab, g_ba, d_a, d_b, g_opt, d_opt, amp=amp, decollate=False)
    batch_data = data[0]

    def step() -> None:
        trainer._iteration(trainer, batch_data)
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    step()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    out = {"seconds_per_iteration": med, "images_per_second": batch / med, "batch": batch, "repeats": repeats}
    if device.startswith("cuda"):
        out["peak_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
        torch.cuda.reset_peak_memory_stats()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--amp", action="store_true", help="mixed precision (CUDA only)")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    parser.add_argument("--only", default="", help="run the cases whose name contains this text")
    args = parser.parse_args()
    rows = []
    for name, dims, size, batch, ngf, blocks in CASES:
        if args.only and args.only not in name:
            continue
        r = measure(dims, size, batch, ngf, blocks, args.device, args.repeats, args.amp)
        rows.append({"case": name, **r})
        print(
            f"{name}: {r['images_per_second']:.2f} images/s ({r['seconds_per_iteration']:.3f} s/iteration)", flush=True
        )
    env = {
        "device": args.device,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "amp": args.amp,
        "gpu": torch.cuda.get_device_name(0) if args.device.startswith("cuda") else None,
    }
    table = ["| case | batch | s / iteration | images / s |", "|---|---|---|---|"]
    table += [
        f"| {r['case']} | {r['batch']} | {r['seconds_per_iteration']:.3f} | {r['images_per_second']:.2f} |"
        for r in rows
    ]
    md = (
        f"CycleGAN training throughput on {env['device']} ({env['gpu'] or env['cpu']}, torch {env['torch']}, "
        f"{env['threads']} threads, AMP {env['amp']}); medians of {args.repeats} iterations after one warm-up.\n\n"
        + "\n".join(table)
        + "\n"
    )
    print("\n" + md)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tag = args.device.split(":")[0]
    write_json_atomic(out / f"translator_speed_{tag}.json", {"environment": env, "results": rows})
    with atomic_path(out / f"translator_speed_{tag}.md") as tmp:
        Path(tmp).write_text(md)


if __name__ == "__main__":
    main()
