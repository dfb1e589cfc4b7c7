"""The contrastive-autoencoder clustering experiment (Ferrante et al. 2022) on the real sets in ../shared/data.

For every dataset (BreastMNIST, brain-tumour MRI, AdrenalMNIST3D) and seed, under one training budget per dataset
(the same number of optimiser steps and batch size for every trained arm):

- ``contrastive_ae``: autoencoder + NT-Xent (the method); ``contrastive_vae``: the VAE variant (+ KL);
- ``autoencoder``: the same autoencoder without the contrastive term;
- ``supervised``: the same encoder trained with labels (cross-entropy), the upper reference;
- ``raw_pixels``: k-means on the raw pixels of the same preprocessed images (scored by every evaluation; the first
  arm's is reported).

Each arm runs the bundle's train.json then evaluate.json in this process, logging to one MLflow store
(``<out>/mlruns.db``, an experiment per dataset). A finished arm (its ``clustering_metrics.json`` exists) is skipped
on a re-run. Writes ``<out>/results.json`` and ``<out>/results.md`` (mean and s.d. over seeds).

Usage::

    python scripts/clustering_experiment.py --out runs/clustering_quick [--datasets breastmnist adrenal3d]
        [--arms contrastive_ae autoencoder] [--seeds 0 1 2] [--device cuda]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
BUNDLE = REPO / "bundles" / "contrastive_ae_clustering"

#: per dataset: the dataset overlay (None: train.json's default) and the training budget shared by every arm
DATASETS = {
    "breastmnist": {"overlay": None, "overrides": {"max_epochs": 30, "epoch_length": 8, "batch_size": 64}},
    "brain_tumor": {
        "overlay": "dataset_brain_tumor.json",
        "overrides": {"max_epochs": 6, "epoch_length": 20, "batch_size": 64, "channels": [16, 32, 64]},
    },
    "adrenal3d": {"overlay": "dataset_adrenal3d.json", "overrides": {"max_epochs": 6, "epoch_length": 20}},
}
ARMS = {
    "contrastive_ae": {"train": {}, "overlay": None},
    "contrastive_vae": {"train": {"variational": True}, "overlay": None},
    "autoencoder": {"train": {"contrastive_weight": 0.0}, "overlay": None},
    "supervised": {"train": {}, "overlay": "train_supervised.json"},
}
METRICS = ("accuracy", "balanced_accuracy", "nmi", "ari", "silhouette")


def _run(configs: list[str], overrides: dict, out: Path, experiment: str, run_name: str) -> None:
    from monai.bundle import run as bundle_run

    files = [str(BUNDLE / "configs" / c) for c in configs]
    bundle_run(
        config_file=files,
        meta_file=str(BUNDLE / "configs" / "metadata.json"),
        logging_file=str(BUNDLE / "configs" / "logging.conf"),
        tracking=str(BUNDLE / "configs" / "mlflow_tracking.json"),
        tracking_uri=f"sqlite:///{out / 'mlruns.db'}",
        experiment_name=experiment,
        run_name=run_name,
        bundle_root=str(BUNDLE),
        **{k: ("$None" if v is None else v) for k, v in overrides.items()},
    )


def run_arm(out: Path, dataset: str, arm: str, seed: int, data_root: str, device: str | None) -> dict:
    """Train and evaluate one arm; returns its clustering metrics (read from disk when already done)."""
    arm_dir = out / dataset / f"{arm}_seed{seed}"
    metrics_file = arm_dir / "eval" / "clustering" / "clustering_metrics.json"
    if metrics_file.is_file():
        return json.loads(metrics_file.read_text())
    ds, spec = DATASETS[dataset], ARMS[arm]
    overlay = [ds["overlay"]] if ds["overlay"] else []
    common = {
        "data_root": data_root,
        "cache_dir": str(out / "cache"),
        "ckpt_dir": str(arm_dir / "models"),
        "output_dir": str(arm_dir / "eval"),
        "seed": seed,
    }
    if device:
        common["device"] = f"$torch.device({device!r})"
    shape = {k: v for k, v in ds["overrides"].items() if k == "channels"}
    variational = spec["train"].get("variational", False)
    t0 = time.time()
    train_cfg = ["train.json", *overlay] + ([spec["overlay"]] if spec["overlay"] else [])
    _run(
        train_cfg,
        {**common, **ds["overrides"], **spec["train"], "persistent_cache_dir": str(out / "cache" / "persistent")},
        out,
        dataset,
        f"{arm}_train_seed{seed}",
    )
    t1 = time.time()
    _run(
        ["evaluate.json", *overlay],
        {**common, **shape, "variational": variational},
        out,
        dataset,
        f"{arm}_evaluate_seed{seed}",
    )
    result = json.loads(metrics_file.read_text())
    result["train_seconds"], result["evaluate_seconds"] = t1 - t0, time.time() - t1
    metrics_file.write_text(json.dumps(result, indent=2))
    return result


def summarize(results: dict) -> tuple[dict, str]:
    """Mean and s.d. over seeds of every test metric, per dataset and arm (raw pixels from the first arm)."""
    table: dict = {}
    lines = []
    for dataset, arms in results.items():
        table[dataset] = {}
        raw_rows = next(iter(arms.values()))
        entries = {"raw_pixels": [r["raw_pixels"]["test"] for r in raw_rows]}
        entries.update({arm: [r["latent"]["test"] for r in rows] for arm, rows in arms.items()})
        first = raw_rows[0]
        lines += [
            f"\n### {dataset} (fit on {first['num_fit']} training images, scored on {first['num_test']} test images, "
            f"{first['n_clusters']} clusters, majority rate {first['latent']['test']['majority_rate']:.3f})\n",
            "| arm | " + " | ".join(METRICS) + " |",
            "|---|" + "---|" * len(METRICS),
        ]
        for arm, rows in entries.items():
            stats = {}
            for m in METRICS:
                vals = np.array([np.nan if r[m] is None else r[m] for r in rows], dtype=float)
                stats[m] = {"mean": float(np.nanmean(vals)), "std": float(np.nanstd(vals)), "values": vals.tolist()}
            table[dataset][arm] = stats
            cells = [f"{stats[m]['mean']:.3f}" + (f"±{stats[m]['std']:.3f}" if len(rows) > 1 else "") for m in METRICS]
            lines.append(f"| {arm} | " + " | ".join(cells) + " |")
    return table, "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(REPO / "runs" / "clustering_quick"))
    parser.add_argument("--data_root", default=str(REPO.parent / "shared" / "data"))
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--device", default=None, help="e.g. cuda (default: the bundle's choice)")
    args = parser.parse_args(argv)
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    if not Path(args.data_root).is_dir():
        parser.error(f"--data_root {args.data_root} is not a folder (see docs/data.md).")
    results: dict = {}
    for dataset in args.datasets:
        results[dataset] = {}
        for arm in args.arms:
            results[dataset][arm] = [run_arm(out, dataset, arm, s, args.data_root, args.device) for s in args.seeds]
    table, md = summarize(results)
    budget = {d: DATASETS[d]["overrides"] for d in args.datasets}
    header = (
        "# Contrastive autoencoder clustering: measured results\n\n"
        f"Seeds {args.seeds}; training budget per dataset (every trained arm): {json.dumps(budget)}.\n"
        "Test-split metrics; clusters fitted on the training split's latents (labels unused), number of clusters = "
        "number of classes, Hungarian matching for accuracy.\n"
    )
    (out / "results.md").write_text(header + md)
    (out / "results.json").write_text(json.dumps({"budget": budget, "seeds": args.seeds, "table": table}, indent=2))
    print(header + md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
