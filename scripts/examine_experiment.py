"""The EXAMINE label-efficiency experiment (Huang, Lei and Li 2022) on the real sets in ../shared/data.

For each dataset (brain-tumour MRI, BreastMNIST):

1. pre-train the MAE bundle (``bundles/mae_pretraining``) on the training split, without labels;
2. embed the training pool and the test split with it (the bundle's ``inference.json``);
3. for budgets of 1, 2, 5, 10 and 20 % of the pool, pick the images to label with
   - EXAMINE, both ends of the ranking (``examine_top`` / ``examine_bottom``), on the raw embeddings and on centred
     embeddings (``examine_centred_*``), and sampling by EXAMINE score (``examine_sampled``: without replacement,
     probability proportional to the exponential score at temperature 1, ``--random_repeats`` seeds),
   - random picks (``--random_repeats`` seeds, at least 5),
   - k-center greedy (the diversity baseline, Sener & Savarese 2018; ``--kcenter_repeats`` random starts);
4. train a linear probe (logistic regression on standardised embeddings) on the picked images only and score it on
   the test split; the probe on the whole pool is the ceiling.

Writes ``<out>/results.json``, ``<out>/results.md``, two plots per dataset
(``label_efficiency_<dataset>_<metric>.png``, accuracy and balanced accuracy) and an MLflow run per dataset in
``<out>/mlruns.db`` (the MAE training runs are logged there too). Finished steps are kept: a re-run skips the MAE
training and the embedding when their files exist. EXAMINE picks are made on the MSV (the scores can tie at 0).

Usage::

    python scripts/examine_experiment.py --out runs/examine_quick [--datasets brain_tumor] [--device cuda]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
MAE = REPO / "bundles" / "mae_pretraining"

#: per dataset: the MAE dataset overlay (None: the bundle's default, BreastMNIST) and the pre-training budget
DATASETS = {
    "brain_tumor": {"overlay": "dataset_brain_tumor.json", "train": {"max_epochs": 8, "epoch_length": 40}},
    "breastmnist": {"overlay": None, "train": {"max_epochs": 40, "epoch_length": 8}},
}
FRACTIONS = (0.01, 0.02, 0.05, 0.10, 0.20)


def _bundle(configs: list[str], overrides: dict, out: Path, experiment: str, run_name: str | None, track: bool):
    from monai.bundle import run as bundle_run

    kwargs = {}
    if track:
        kwargs = dict(
            tracking=str(MAE / "configs" / "mlflow_tracking.json"),
            tracking_uri=f"sqlite:///{out / 'mlruns.db'}",
            experiment_name=experiment,
            run_name=run_name,
        )
    bundle_run(
        config_file=[str(MAE / "configs" / c) for c in configs],
        logging_file=str(MAE / "configs" / "logging.conf"),
        bundle_root=str(MAE),
        **kwargs,
        **{k: ("$None" if v is None else v) for k, v in overrides.items()},
    )


def prepare_embeddings(out: Path, dataset: str, data_root: str, device: str | None, seed: int) -> dict:
    """Train the MAE (unless done) and embed the training pool and the test split; returns the file paths."""
    spec = DATASETS[dataset]
    overlay = [spec["overlay"]] if spec["overlay"] else []
    ddir = out / dataset
    common = {"data_root": data_root, "cache_dir": str(out / "cache")}
    if device:
        common["device"] = f"$torch.device({device!r})"
    ckpt = ddir / "mae" / "models" / "model.pt"
    timings = {}
    if not ckpt.is_file():
        t0 = time.time()
        _bundle(
            ["train.json", *overlay],
            {
                **common,
                **spec["train"],
                "seed": seed,
                "ckpt_dir": str(ckpt.parent),
                "output_dir": str(ddir / "mae" / "eval"),
                "persistent_cache_dir": str(out / "cache" / "persistent"),
            },
            out,
            dataset,
            "mae_pretraining",
            track=True,
        )
        timings["mae_train_seconds"] = time.time() - t0
    files = {}
    for section in ("training", "test"):
        emb_dir = ddir / f"embeddings_{section}"
        if not (emb_dir / "embeddings.npy").is_file():
            t0 = time.time()
            _bundle(
                ["inference.json", *overlay],
                {**common, "section": section, "ckpt_path": str(ckpt), "output_dir": str(emb_dir)},
                out,
                dataset,
                None,
                track=False,
            )
            timings[f"embed_{section}_seconds"] = time.time() - t0
        files[section] = emb_dir
    return {"files": files, "timings": timings}


def _labels(index_csv: Path) -> np.ndarray:
    import csv

    with open(index_csv) as f:
        return np.array([int(row["label"]) for row in csv.DictReader(f)])


def run_dataset(out: Path, dataset: str, args) -> dict:
    prep = prepare_embeddings(out, dataset, args.data_root, args.device, args.seed)
    from monai_synpriv.assessment import ExamineScorer
    from monai_synpriv.assessment.selection import k_center_greedy, select_random, select_top, select_weighted
    from monai_synpriv.evaluation.label_efficiency import (
        label_efficiency,
        plot_label_efficiency,
        summarize_label_efficiency,
    )
    from monai_synpriv.evaluation.probes import classification_metrics, linear_probe

    tr, te = prep["files"]["training"], prep["files"]["test"]
    train_x, test_x = np.load(tr / "embeddings.npy"), np.load(te / "embeddings.npy")
    train_y, test_y = _labels(tr / "embeddings.csv"), _labels(te / "embeddings.csv")

    t0 = time.time()
    raw = ExamineScorer(center=False).score(train_x)
    centred = ExamineScorer(center=True).score(train_x)
    examine_seconds = time.time() - t0
    strategies = {
        "examine_top": (lambda k, r: select_top(raw.msv, k, end="top"), 1),
        "examine_bottom": (lambda k, r: select_top(raw.msv, k, end="bottom"), 1),
        "examine_centred_top": (lambda k, r: select_top(centred.msv, k, end="top"), 1),
        "examine_centred_bottom": (lambda k, r: select_top(centred.msv, k, end="bottom"), 1),
        "examine_sampled": (lambda k, r: select_weighted(raw.log_scores, k, seed=r, log=True), args.random_repeats),
        "random": (lambda k, r: select_random(len(train_x), k, seed=r), args.random_repeats),
        "k_center_greedy": (lambda k, r: k_center_greedy(train_x, k, seed=r), args.kcenter_repeats),
    }
    t0 = time.time()
    rows = label_efficiency(train_x, train_y, test_x, test_y, FRACTIONS, strategies)
    probe_seconds = time.time() - t0
    full = classification_metrics(test_y, linear_probe(train_x, train_y, test_x))
    summaries = {m: summarize_label_efficiency(rows, m) for m in ("accuracy", "balanced_accuracy")}
    plots = {
        m: plot_label_efficiency(
            summaries[m],
            out / f"label_efficiency_{dataset}_{m}.png",
            metric=m,
            title=f"{dataset}: linear probe on MAE embeddings, pool {len(train_x)}",
            full_pool=full[m],
        )
        for m in summaries
    }
    result = {
        "pool": len(train_x),
        "test": len(test_x),
        "embedding_dim": int(train_x.shape[1]),
        "majority_rate": full["majority_rate"],
        "full_pool": {"accuracy": full["accuracy"], "balanced_accuracy": full["balanced_accuracy"]},
        "summary": summaries,
        "rows": rows,
        "examine_seconds": examine_seconds,
        "probe_seconds": probe_seconds,
        "timings": prep["timings"],
        "plots": plots,
        "mae_budget": DATASETS[dataset]["train"],
    }
    _log_mlflow(out, dataset, result)
    return result


def _log_mlflow(out: Path, dataset: str, result: dict) -> None:
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{out / 'mlruns.db'}")
    exp = client.get_experiment_by_name(dataset)
    exp_id = exp.experiment_id if exp else client.create_experiment(dataset, (out / "mlartifacts").as_uri())
    run_id = client.create_run(exp_id, run_name="label_efficiency").info.run_id
    client.log_param(run_id, "pool", result["pool"])
    client.log_param(run_id, "mae_budget", json.dumps(result["mae_budget"]))
    for metric, per_strategy in result["summary"].items():
        for strategy, per_f in per_strategy.items():
            for f, cell in per_f.items():
                client.log_metric(run_id, f"{strategy}_{metric}", cell["mean"], step=int(cell["k"]))
    for path in result["plots"].values():
        client.log_artifact(run_id, path)
    client.set_terminated(run_id)


def to_markdown(results: dict) -> str:
    lines = []
    for dataset, res in results.items():
        for metric in ("accuracy", "balanced_accuracy"):
            summ = res["summary"][metric]
            fractions = sorted(next(iter(summ.values())))
            ks = [next(iter(summ.values()))[f]["k"] for f in fractions]
            lines += [
                f"\n### {dataset}: test {metric.replace('_', ' ')} (pool {res['pool']}, test {res['test']}, "
                f"majority rate {res['majority_rate']:.3f}; all {res['pool']} labels: "
                f"{res['full_pool'][metric]:.3f})\n",
                "| strategy | " + " | ".join(f"{f:.0%} (k={k})" for f, k in zip(fractions, ks)) + " |",
                "|---|" + "---|" * len(fractions),
            ]
            for name, per_f in summ.items():
                cells = [
                    f"{per_f[f]['mean']:.3f}" + (f" ± {per_f[f]['std']:.3f}" if per_f[f]["n"] > 1 else "")
                    for f in fractions
                ]
                lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(REPO / "runs" / "examine_quick"))
    parser.add_argument("--data_root", default=str(REPO.parent / "shared" / "data"))
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--random_repeats", type=int, default=10)
    parser.add_argument("--kcenter_repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0, help="MAE pre-training seed")
    parser.add_argument("--device", default=None, help="e.g. cuda (default: the bundle's choice)")
    args = parser.parse_args(argv)
    if args.random_repeats < 5:
        parser.error("--random_repeats must be at least 5 (random picks vary a lot at small budgets).")
    if not Path(args.data_root).is_dir():
        parser.error(f"--data_root {args.data_root} is not a folder (see docs/data.md).")
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    results = {d: run_dataset(out, d, args) for d in args.datasets}
    header = (
        "# EXAMINE label efficiency: measured results\n\n"
        f"MAE pre-training budgets: {json.dumps({d: DATASETS[d]['train'] for d in args.datasets})}; random: "
        f"{args.random_repeats} seeds, k-center greedy: {args.kcenter_repeats} random starts (mean ± s.d.).\n"
    )
    md = header + to_markdown(results)
    (out / "results.md").write_text(md)
    (out / "results.json").write_text(json.dumps(results, indent=2, default=float))
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
