r"""Training-step time of the multi-branch SSL trainer: TriDeNT ([0, 0, 1]) against Siamese ([0, 0]) and privileged
Siamese ([0, 1]) on the same batch, and images/s (primary images per second).

Usage::

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/ssl_step_time.py [--device cuda] [--size 64] [--batch 32] \
        [--depth 18] [--precision fp32|bf16|fp16|auto] [--repeats 5] [--out benchmarks/results]

TriDeNT runs one more branch than Siamese; sharing the primary encoder lets its two primary views go through one
batched forward pass, which the target (TriDeNT <= 1.6x Siamese) relies on. Writes ``ssl_step_time_<device>.json``
and ``.md`` under ``--out``. ``--precision`` (default fp32) is the trainer's ``precision=`` (autocast on CPU or
CUDA, see ``monai_synpriv.utils.precision``); ``benchmarks/precision.py`` compares the precisions in one process.
Not part of the test suite.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from monai_synpriv.engines import MultiBranchSSLTrainer
from monai_synpriv.losses import MultiBranchVICRegLoss
from monai_synpriv.networks import build_multibranch_resnet
from monai_synpriv.utils import atomic_path, resolve_precision, write_json_atomic

VARIANTS = {"Siamese [0,0]": [0, 0], "privileged Siamese [0,1]": [0, 1], "TriDeNT [0,0,1]": [0, 0, 1]}


def step_time(indices, size, batch, depth, dims, device, repeats, precision) -> float:
    torch.manual_seed(0)
    net = build_multibranch_resnet(2, indices, depth=depth, projector_dims=dims).to(device)
    keys = [f"view{k}" for k in range(len(indices))]
    data = {k: torch.rand(batch, 1, size, size) for k in keys}
    trainer = MultiBranchSSLTrainer(
        device,
        1,
        [data],
        net,
        torch.optim.Adam(net.parameters(), 1e-4),
        MultiBranchVICRegLoss(),
        keys,
        precision=precision,
        decollate=False,
    )

    def run() -> None:
        trainer._iteration(trainer, data)
        if str(device).startswith("cuda"):
            torch.cuda.synchronize()

    run()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--depth", type=int, default=18)
    parser.add_argument("--projector", default="512,512,512", help="projector layer sizes")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--precision", default="fp32", choices=["fp32", "bf16", "fp16", "auto"], help="the trainer's precision"
    )
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = parser.parse_args()
    dims = tuple(int(v) for v in args.projector.split(","))
    precision = resolve_precision(args.precision, args.device)
    rows = []
    for name, idx in VARIANTS.items():
        t = step_time(idx, args.size, args.batch, args.depth, dims, args.device, args.repeats, precision)
        rows.append({"variant": name, "seconds_per_step": t, "primary_images_per_second": args.batch / t})
        print(f"{name}: {t:.3f} s/step", flush=True)
    base = rows[0]["seconds_per_step"]
    for r in rows:
        r["relative_to_siamese"] = r["seconds_per_step"] / base
    setting = (
        f"ResNet-{args.depth} 2D, {args.size} px, batch {args.batch}, projector {args.projector}, VICReg, "
        f"{args.device}, torch {torch.__version__}, {torch.get_num_threads()} threads, precision {precision}; "
        f"medians of {args.repeats} steps after a warm-up"
    )
    table = ["| variant | s / step | x Siamese | primary images / s |", "|---|---|---|---|"]
    table += [
        f"| {r['variant']} | {r['seconds_per_step']:.3f} | {r['relative_to_siamese']:.2f} | "
        f"{r['primary_images_per_second']:.1f} |"
        for r in rows
    ]
    md = setting + "\n\n" + "\n".join(table) + "\n"
    print("\n" + md)
    out = Path(args.out)
    tag = args.device.split(":")[0]
    write_json_atomic(out / f"ssl_step_time_{tag}.json", {"setting": setting, "results": rows})
    with atomic_path(out / f"ssl_step_time_{tag}.md") as tmp:
        Path(tmp).write_text(md)


if __name__ == "__main__":
    main()
