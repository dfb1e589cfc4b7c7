r"""Training throughput of the CycleGAN translator (images/s of domain A per full iteration: both generators, both
discriminators, forward + backward + steps), 2D at 64 and 128 px and 3D at 32^3 and 64^3, optionally against the
reference implementation (junyanz/pytorch-CycleGAN-and-pix2pix) in the same process.

Usage::

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/translator_speed.py [--device cuda] [--repeats 5] \
        [--precision fp32 bf16] [--only "2D 128"] [--reference /path/to/pytorch-CycleGAN-and-pix2pix] \
        [--out benchmarks/results]

Prints a markdown table and writes ``translator_speed_<device>.json`` / ``.md`` under ``--out``. Inputs are random
tensors of the given shape (speed does not depend on content); widths are the bundle's quick-profile defaults (2D:
ngf=ndf=32, 6 residual blocks; 3D: ngf=ndf=16, 4 residual blocks) and, for 2D, the reference widths (ngf=ndf=64,
9 blocks). Not part of the test suite.

``--precision`` takes one or more of ``fp32``, ``bf16``, ``fp16``, ``auto`` (the trainer's ``precision=``); the
precisions of one case are timed alternately (A B A B ...) after one warm-up each, so that drifts of the machine's
speed hit them alike.

``--reference PATH``: a checkout of junyanz/pytorch-CycleGAN-and-pix2pix (not part of this repository; fetch it
yourself). For each 2D case whose block count the reference has (6 or 9), the reference networks are built with
``networks.define_G(1, 1, ngf, 'resnet_<n>blocks', norm='instance', use_dropout=False)`` and
``networks.define_D(1, ndf, 'basic', 3, norm='instance')`` from ``PATH/models/networks.py`` and one full iteration
of their ``CycleGANModel.optimize_parameters`` (forward both directions, identity, cycle and LSGAN losses, backward
G and step, backward D on real and fake and step; the image pool skipped) is timed in fp32 (their code has no
autocast), alternating with ours. The table then gives reference seconds / our seconds for each of our precisions
(> 1: ours is faster).
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import torch
from monai.networks.nets import PatchDiscriminator

from monai_synpriv.engines import CycleGANTrainer
from monai_synpriv.networks import CycleGANResNetGenerator
from monai_synpriv.utils import atomic_path, resolve_precision, write_json_atomic

CASES = [
    # name, spatial_dims, size, batch, ngf, blocks
    ("2D 64 px, quick (ngf 32, 6 blocks)", 2, 64, 4, 32, 6),
    ("2D 128 px, quick (ngf 32, 6 blocks)", 2, 128, 4, 32, 6),
    ("2D 64 px, reference (ngf 64, 9 blocks)", 2, 64, 4, 64, 9),
    ("2D 128 px, reference (ngf 64, 9 blocks)", 2, 128, 4, 64, 9),
    ("3D 32^3, quick (ngf 16, 4 blocks)", 3, 32, 2, 16, 4),
    ("3D 64^3, quick (ngf 16, 4 blocks)", 3, 64, 2, 16, 4),
]

REFERENCE_ARM = "reference fp32"


def _sync(device: str) -> None:
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def our_step(
    spatial_dims: int, size: int, batch: int, ngf: int, blocks: int, device: str, precision: str,
    upsample: str = "transpose",
) -> Callable[[], None]:
    """One full iteration of our ``CycleGANTrainer`` at ``precision`` on random tensors, as a callable."""
    torch.manual_seed(0)
    shape = (batch, 1, *([size] * spatial_dims))
    data = [{"A": torch.rand(shape), "B": torch.rand(shape)}]
    g_ab, g_ba = (
        CycleGANResNetGenerator(spatial_dims, 1, 1, channels=ngf, num_res_blocks=blocks, upsample=upsample).to(device)
        for _ in range(2)
    )
    d_a, d_b = (PatchDiscriminator(spatial_dims, ngf, 1, num_layers_d=3, norm="INSTANCE").to(device) for _ in range(2))
    g_opt = torch.optim.Adam(itertools.chain(g_ab.parameters(), g_ba.parameters()), 2e-4, betas=(0.5, 0.999))
    d_opt = torch.optim.Adam(itertools.chain(d_a.parameters(), d_b.parameters()), 2e-4, betas=(0.5, 0.999))
    trainer = CycleGANTrainer(
        device, 1, data, g_ab, g_ba, d_a, d_b, g_opt, d_opt, precision=precision, decollate=False
    )
    batch_data = data[0]
    return lambda: trainer._iteration(trainer, batch_data)


def load_reference(path: str | Path) -> ModuleType:
    """``models/networks.py`` of a junyanz/pytorch-CycleGAN-and-pix2pix checkout, imported on its own (its
    ``models`` package ``__init__`` pulls in the whole training framework, which timing does not need)."""
    file = Path(path) / "models" / "networks.py"
    if not file.is_file():
        raise FileNotFoundError(
            f"--reference {path}: {file} not found; pass the root of a junyanz/pytorch-CycleGAN-and-pix2pix checkout."
        )
    sys.path.insert(0, str(file.parent))  # their networks.py imports nothing of their own today; keep it resolvable
    spec = importlib.util.spec_from_file_location("cyclegan_reference_networks", file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def reference_step(ref: ModuleType, size: int, batch: int, ngf: int, blocks: int, device: str) -> Callable[[], None]:
    """One iteration of the reference ``CycleGANModel.optimize_parameters`` (fp32; image pool skipped): lambda_A =
    lambda_B = 10, lambda_identity = 0.5, LSGAN, Adam(2e-4, betas 0.5/0.999), as their default options."""
    torch.manual_seed(0)
    net_g = f"resnet_{blocks}blocks"
    g_a, g_b = (ref.define_G(1, 1, ngf, net_g, norm="instance", use_dropout=False).to(device) for _ in range(2))
    d_a, d_b = (ref.define_D(1, ngf, "basic", 3, norm="instance").to(device) for _ in range(2))
    for net in (g_a, g_b, d_a, d_b):
        net.train()
    # GANLoss("lsgan") in today's code; older versions take use_lsgan (a truthy value means LSGAN there too)
    criterion_gan = ref.GANLoss("lsgan").to(device)
    criterion_cycle, criterion_idt = torch.nn.L1Loss(), torch.nn.L1Loss()
    opt_g = torch.optim.Adam(itertools.chain(g_a.parameters(), g_b.parameters()), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(itertools.chain(d_a.parameters(), d_b.parameters()), lr=2e-4, betas=(0.5, 0.999))
    real_a = torch.rand(batch, 1, size, size, device=device) * 2 - 1
    real_b = torch.rand(batch, 1, size, size, device=device) * 2 - 1
    lambda_a = lambda_b = 10.0
    lambda_idt = 0.5

    def set_requires_grad(nets, flag: bool) -> None:
        for net in nets:
            for p in net.parameters():
                p.requires_grad = flag

    def backward_d_basic(net_d, real, fake):
        loss_real = criterion_gan(net_d(real), True)
        loss_fake = criterion_gan(net_d(fake.detach()), False)
        loss = (loss_real + loss_fake) * 0.5
        loss.backward()
        return loss

    def step() -> None:
        # forward()
        fake_b = g_a(real_a)
        rec_a = g_b(fake_b)
        fake_a = g_b(real_b)
        rec_b = g_a(fake_a)
        # G_A and G_B
        set_requires_grad([d_a, d_b], False)
        opt_g.zero_grad()
        idt_a = g_a(real_b)
        loss_idt_a = criterion_idt(idt_a, real_b) * lambda_b * lambda_idt
        idt_b = g_b(real_a)
        loss_idt_b = criterion_idt(idt_b, real_a) * lambda_a * lambda_idt
        loss_g_a = criterion_gan(d_a(fake_b), True)
        loss_g_b = criterion_gan(d_b(fake_a), True)
        loss_cycle_a = criterion_cycle(rec_a, real_a) * lambda_a
        loss_cycle_b = criterion_cycle(rec_b, real_b) * lambda_b
        loss_g = loss_g_a + loss_g_b + loss_cycle_a + loss_cycle_b + loss_idt_a + loss_idt_b
        loss_g.backward()
        opt_g.step()
        # D_A and D_B (fake_B_pool.query / fake_A_pool.query skipped: the fakes of this iteration)
        set_requires_grad([d_a, d_b], True)
        opt_d.zero_grad()
        backward_d_basic(d_a, real_b, fake_b)
        backward_d_basic(d_b, real_a, fake_a)
        opt_d.step()

    return step


def time_alternating(arms: dict[str, Callable[[], None]], repeats: int, device: str) -> dict[str, list[float]]:
    """Seconds per call of each arm: one warm-up call each, then ``repeats`` rounds calling the arms in turn."""
    for fn in arms.values():
        fn()
        _sync(device)
    times: dict[str, list[float]] = {name: [] for name in arms}
    for _ in range(repeats):
        for name, fn in arms.items():
            _sync(device)
            t0 = time.perf_counter()
            fn()
            _sync(device)
            times[name].append(time.perf_counter() - t0)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--precision",
        nargs="+",
        default=["fp32"],
        choices=["fp32", "bf16", "fp16", "auto"],
        help="our trainer's precision(s), timed alternately (default fp32)",
    )
    parser.add_argument(
        "--reference",
        default=None,
        metavar="PATH",
        help="a junyanz/pytorch-CycleGAN-and-pix2pix checkout: also time its CycleGAN iteration (2D, fp32)",
    )
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    parser.add_argument("--only", default="", help="run the cases whose name contains this text")
    args = parser.parse_args()
    precisions = list(dict.fromkeys(resolve_precision(p, args.device) for p in args.precision))
    ref = load_reference(args.reference) if args.reference else None
    rows = []
    for name, dims, size, batch, ngf, blocks in CASES:
        if args.only and args.only not in name:
            continue
        arms = {p: our_step(dims, size, batch, ngf, blocks, args.device, p) for p in precisions}
        with_ref = ref is not None and dims == 2 and blocks in (6, 9)
        if with_ref:
            arms[REFERENCE_ARM] = reference_step(ref, size, batch, ngf, blocks, args.device)
        if args.device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        times = time_alternating(arms, args.repeats, args.device)
        ref_times = times.pop(REFERENCE_ARM, None)
        for p, ts in times.items():
            med = statistics.median(ts)
            row = {
                "case": name,
                "precision": p,
                "seconds_per_iteration": med,
                "images_per_second": batch / med,
                "batch": batch,
                "repeats": args.repeats,
                "times": ts,
            }
            if ref_times is not None:
                row["reference_seconds_per_iteration"] = statistics.median(ref_times)
                row["reference_times"] = ref_times
                # pairwise ratios of the same round, then their median
                row["reference_over_ours"] = statistics.median(r / o for r, o in zip(ref_times, ts))
            if args.device.startswith("cuda"):
                row["peak_memory_gib_all_arms"] = torch.cuda.max_memory_allocated() / 2**30
            rows.append(row)
            extra = (
                f", reference {row['reference_seconds_per_iteration']:.3f} s (reference / ours "
                f"{row['reference_over_ours']:.2f})"
                if ref_times is not None
                else ""
            )
            print(
                f"{name} [{p}]: {row['images_per_second']:.2f} images/s ({med:.3f} s/iteration){extra}", flush=True
            )
        del arms
    env = {
        "device": args.device,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "precision": precisions,
        "reference": str(Path(args.reference).resolve()) if args.reference else None,
        "gpu": torch.cuda.get_device_name(0) if args.device.startswith("cuda") else None,
    }
    with_ref = any("reference_over_ours" in r for r in rows)
    head = "| case | precision | batch | s / iteration | images / s |"
    sep = "|---|---|---|---|---|"
    if with_ref:
        head += " reference fp32 s / iteration | reference / ours |"
        sep += "---|---|"
    table = [head, sep]
    for r in rows:
        line = (
            f"| {r['case']} | {r['precision']} | {r['batch']} | {r['seconds_per_iteration']:.3f} | "
            f"{r['images_per_second']:.2f} |"
        )
        if with_ref:
            line += (
                f" {r['reference_seconds_per_iteration']:.3f} | {r['reference_over_ours']:.2f} |"
                if "reference_over_ours" in r
                else " - | - |"
            )
        table.append(line)
    md = (
        f"CycleGAN training throughput on {env['device']} ({env['gpu'] or env['cpu']}, torch {env['torch']}, "
        f"{env['threads']} threads, precision {', '.join(precisions)}); medians of {args.repeats} iterations after "
        "one warm-up, precisions"
        + (" and the reference (junyanz/pytorch-CycleGAN-and-pix2pix, fp32, image pool skipped)" if with_ref else "")
        + " timed alternately; reference / ours is the median of the per-round ratios.\n\n"
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
