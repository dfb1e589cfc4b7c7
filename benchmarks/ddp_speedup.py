"""Speed-up of distributed data parallel: the multi-modal SSL bundle (TriDeNT) with 1 process against ``torchrun``
with N processes (gloo on CPU, NCCL on GPUs), same per-process batch, images per second of training.

    .venv/bin/python benchmarks/ddp_speedup.py [--nproc 2] [--size 64] [--batch 16] [--depth 18] [--steps 10]

Each configuration trains 3 epochs of ``--steps`` steps on the real authentic T1c/T2w pairs; the time of the last
epoch (steady state: caching, start-up and the first epoch excluded) gives the throughput
``processes x batch x steps / epoch time``. On a CPU the processes share the same cores (1 thread each under
torchrun, all threads for the single process), so little or no speed-up is expected there; on GPUs each process gets
its own device. Writes ``ddp_speedup_<device>.json`` and ``.md`` under ``--out``. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from monai_synpriv.utils import atomic_path, write_json_atomic

REPO = Path(__file__).resolve().parents[1]
BUNDLE = REPO / "bundles" / "multimodal_ssl"
_EPOCH = re.compile(r"Epoch\[(\d+)\] Complete\. Time taken: (\d+):(\d+):([\d.]+)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(nproc: int, args: argparse.Namespace, work: Path) -> dict:
    out = work / f"n{nproc}"
    bundle = ["-m", "monai.bundle", "run", "--bundle_root", ".", "--dataset_dir", str(args.data)]
    bundle += ["--cache_dir", str(work / "cache"), "--ckpt_dir", str(out / "models"), "--output_dir", str(out)]
    bundle += ["--depth", str(args.depth), "--image_size", f"[{args.size},{args.size}]"]
    bundle += ["--load_size", f"[{int(args.size * 1.125)},{int(args.size * 1.125)}]", "--batch_size", str(args.batch)]
    bundle += ["--max_epochs", "3", "--epoch_length", str(args.steps)]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.pop("MLFLOW_TRACKING_URI", None)
    if nproc == 1:
        cmd = [sys.executable, *bundle, "--config_file", "configs/train.json"]
    else:
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // nproc))
        cmd = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            f"--nproc_per_node={nproc}",
            f"--master_port={_free_port()}",
        ]
        cmd += [*bundle, "--config_file", "['configs/train.json','configs/multi_gpu_train.json']"]
    t0 = time.time()
    proc = subprocess.run(cmd, cwd=BUNDLE, env=env, capture_output=True, text=True, timeout=3600)
    wall = time.time() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{nproc} process(es) failed:\n{proc.stderr[-4000:]}")
    epochs = {}
    for m in _EPOCH.finditer(proc.stdout + proc.stderr):
        epochs[int(m.group(1))] = int(m.group(2)) * 3600 + int(m.group(3)) * 60 + float(m.group(4))
    last = epochs[max(epochs)]
    return {
        "processes": nproc,
        "last_epoch_s": round(last, 2),
        "images_per_s": round(nproc * args.batch * args.steps / last, 2),
        "wall_s": round(wall, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nproc", type=int, default=2)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=16, help="per process")
    parser.add_argument("--depth", type=int, default=18)
    parser.add_argument("--steps", type=int, default=10, help="steps per epoch")
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "mri_brain_multicontrast"))
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results"))
    args = parser.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    with tempfile.TemporaryDirectory() as tmp:
        rows = [run(1, args, Path(tmp)), run(args.nproc, args, Path(tmp))]
    speedup = rows[1]["images_per_s"] / rows[0]["images_per_s"]
    lines = [
        f"TriDeNT (ResNet-{args.depth}, {args.size} px, batch {args.batch} per process), {device}, "
        f"{os.cpu_count()} CPU cores",
        "",
        "| processes | last epoch (s) | images/s | whole run incl. start-up (s) |",
        "|---|---|---|---|",
    ]
    lines += [f"| {r['processes']} | {r['last_epoch_s']} | {r['images_per_s']} | {r['wall_s']} |" for r in rows]
    lines += ["", f"speed-up of {args.nproc} processes over 1: **{speedup:.2f}x**", ""]
    print("\n".join(lines))
    out = Path(args.out)
    write_json_atomic(out / f"ddp_speedup_{device}.json", {"settings": vars(args), "rows": rows, "speedup": speedup})
    with atomic_path(out / f"ddp_speedup_{device}.md") as tmp:
        Path(tmp).write_text("\n".join(lines))


if __name__ == "__main__":
    main()
