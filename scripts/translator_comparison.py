"""Compare the translators on the held-out multi-contrast subject at 128 px (issue 17's evaluation).

Each model is trained with the translator bundle exactly as a user would run it (``python -m monai.bundle run``),
on the training subjects of ``mri_brain_multicontrast`` (unpaired for CycleGAN/CUT/FastCUT, aligned pairs for the
pix2pix ceiling), then scored on every aligned slice of the held-out subject with ``inference.json`` +
``evaluate.json`` (whole-frame and foreground SSIM, PSNR, MAE, the intensity-matched input baselines). Training wall
time is recorded per model. Runs that finished are not repeated (``--resume`` semantics), so the script can be
stopped and restarted.

    OMP_NUM_THREADS=2 .venv/bin/python scripts/translator_comparison.py --out runs/translator_comparison \
        --targets t2w t2f --models cut cyclegan fastcut pix2pix cut_mind --stage all

Writes ``<out>/comparison.json`` and ``<out>/comparison.md`` (the table of docs/translator.md), and each model's
grids under ``<out>/<target>/<model>/``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BUNDLE = REPO / "bundles" / "unpaired_translator"
CFG = BUNDLE / "configs"

#: the 128-px CPU profile: the whole 240 x 240 slice resized (no crop), ngf 32, 6 residual blocks
NET = {"image_size": "[128,128]", "crop_size": "$None", "ngf": "32", "num_res_blocks": "6", "upsample": "resize"}
#: keys that training and inference must agree on (the profile's plus pix2pix's U-Net depth)
NET_KEYS = set(NET) | {"num_downs"}

#: name -> (train configs, train overrides, inference overlay or None). Epochs of 72 iterations (291 slices, batch 4)
#: chosen so that every model gets about the same CPU time (CycleGAN runs four generator passes per image, CUT two,
#: FastCUT one).
MODELS: dict[str, tuple[list[str], dict[str, str], str | None]] = {
    "cyclegan": (["train.json"], {"epochs_constant": "4", "epochs_decay": "4"}, None),
    "cyclegan_transpose": (["train.json"], {"epochs_constant": "4", "epochs_decay": "4", "upsample": "transpose"}, None),
    "cyclegan_mind": (["train.json"], {"epochs_constant": "4", "epochs_decay": "4", "lambda_structure": "1.0"}, None),
    "cut": (["train.json", "train_cut.json"], {"epochs_constant": "7", "epochs_decay": "7"}, None),
    "cut_mind": (["train.json", "train_cut.json"], {"epochs_constant": "7", "epochs_decay": "7", "lambda_structure": "1.0"}, None),
    # the 45-min CPU profile of scripts/run_translator_demo.sh (PROFILE=cpu128 METHOD=cut): 14 + 14 epochs of the
    # 85-93 s measured on a quiet 2-core machine (27 + 27, the first guess, would take ~80 min)
    "cut_cpu128": (["train.json", "train_cut.json"], {"epochs_constant": "14", "epochs_decay": "14"}, None),
    "fastcut": (["train.json", "train_cut.json", "train_fastcut.json"], {"epochs_constant": "12", "epochs_decay": "12"}, None),
    "fastcut_mind": (
        ["train.json", "train_cut.json", "train_fastcut.json"],
        {"epochs_constant": "12", "epochs_decay": "12", "lambda_structure": "1.0"},
        None,
    ),
    # the reference's unet_128 at 128 px: 7 down-samplings
    "pix2pix": (
        ["train.json", "train_pix2pix.json"],
        {"epochs_constant": "10", "epochs_decay": "10", "num_downs": "7"},
        "inference_pix2pix.json",
    ),
}


#: ``--set key=value`` overrides applied to every model (network keys to inference as well)
SETTINGS: dict[str, str] = {}


def _config_list(names: list[str]) -> str:
    return "[" + ",".join(f"'{CFG / n}'" for n in names) + "]"


def _run(args: list[str], log: Path) -> None:
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a") as fh:
        proc = subprocess.run([sys.executable, "-m", "monai.bundle", "run", *args], stdout=fh, stderr=subprocess.STDOUT)
    if proc.returncode:
        raise RuntimeError(f"bundle run failed ({proc.returncode}); see {log}")


def _common(target: str, data: Path, cache: Path, overrides: dict[str, str]) -> list[str]:
    """Data, cache, target contrast and the network keys (the profile's, updated by the model's ``overrides``)."""
    args = ["--bundle_root", str(BUNDLE), "--dataset_dir", str(data), "--cache_dir", str(cache), "--contrast_b", target]
    for k, v in {**NET, **{k: v for k, v in overrides.items() if k in NET_KEYS}}.items():
        args += [f"--{k}", v]
    return args


def train(model: str, target: str, out: Path, data: Path, cache: Path) -> dict:
    configs, overrides, _ = MODELS[model]
    overrides = {**overrides, **SETTINGS}
    run_dir = out / target / model
    done = run_dir / "train_time.json"
    if done.is_file():
        return json.loads(done.read_text())
    args = ["--config_file", _config_list(configs), *_common(target, data, cache, overrides)]
    args += ["--ckpt_dir", str(run_dir / "models"), "--output_dir", f"$'{run_dir / 'train'}'", "--resume", "True"]
    for k, v in overrides.items():
        if k not in NET_KEYS:
            args += [f"--{k}", v]
    start = time.time()
    _run(args, run_dir / "train.log")
    record = {"model": model, "target": target, "train_seconds": round(time.time() - start, 1), "overrides": overrides}
    done.write_text(json.dumps(record, indent=2))
    return record


def evaluate(model: str, target: str, out: Path, data: Path, cache: Path) -> dict:
    configs, overrides, inference = MODELS[model]
    overrides = {**overrides, **{k: v for k, v in SETTINGS.items() if k in NET_KEYS}}
    run_dir = out / target / model
    metrics = run_dir / "evaluate" / "metrics" / "translation_metrics.json"
    if not metrics.is_file():
        cfgs = ["inference.json", *([inference] if inference else []), "evaluate.json"]
        args = ["--config_file", _config_list(cfgs), *_common(target, data, cache, overrides)]
        args += ["--ckpt_dir", str(run_dir / "models"), "--output_dir", f"$'{run_dir / 'evaluate'}'"]
        _run(args, run_dir / "evaluate.log")
    return json.loads(metrics.read_text())


def downstream_subset(out: Path, data_root: Path, n: int, seed: int = 0) -> Path:
    """A seeded random subset of the brain-tumour training images (the method's downstream set, no aligned target),
    as a datalist JSON with absolute paths."""
    import random

    from monai_synpriv.data import load_image_list, prepare_brain_tumor_mri

    path = out / f"downstream_{n}_seed{seed}.json"
    if not path.is_file():
        dl = prepare_brain_tumor_mri(data_root / "brain_tumor_mri_4class", out / "cache" / "brain_tumor")
        items = load_image_list(dl, key="image", section="training", source_key="image")
        items = random.Random(seed).sample(items, min(n, len(items)))
        path.write_text(json.dumps({"training": [{"image": i["image"], "label": i["label"]} for i in items]}, indent=1))
    return path


def frechet(model: str, target: str, out: Path, data: Path, cache: Path, subset: Path) -> dict:
    """Translate the downstream subset with the model, then the Frechet distance of the synthetic images to the
    real ``target`` slices of all multi-contrast subjects, with the real-vs-real floor and the untranslated input."""
    from monai_synpriv.data import load_image_list
    from monai_synpriv.evaluation import translation_frechet_report

    _, overrides, inference = MODELS[model]
    overrides = {**overrides, **{k: v for k, v in SETTINGS.items() if k in NET_KEYS}}
    run_dir = out / target / model
    report_path = run_dir / "downstream" / "frechet.json"
    if report_path.is_file():
        return json.loads(report_path.read_text())
    syn_dir = run_dir / "downstream"
    cfgs = ["inference.json", *([inference] if inference else [])]
    args = ["--config_file", _config_list(cfgs), *_common(target, data, cache, overrides)]
    args += ["--ckpt_dir", str(run_dir / "models"), "--output_dir", f"$'{syn_dir}'", "--input_datalist", str(subset),
             "--input_section", "training", "--input_key", "image", "--to_grayscale", "True",
             "--normalize_inputs", "True"]  # fmt: skip
    _run(args, run_dir / "downstream.log")
    pairs = json.loads((syn_dir / "synthetic" / "paired_datalist.json").read_text())
    section = next(k for k, v in pairs.items() if isinstance(v, list))
    synthetic = [str((syn_dir / "synthetic" / i["privileged"]).resolve()) if not os.path.isabs(i["privileged"])
                 else i["privileged"] for i in pairs[section]]  # fmt: skip
    untranslated = [i["image"] for i in json.loads(subset.read_text())["training"]]
    prepared = next(cache.glob(f"translation_t1c_to_{target}_axis2.json"))
    real_items = [i for s in ("training_b", "validation") for i in load_image_list(prepared, key="B", section=s, source_key="B")]
    report = translation_frechet_report(
        synthetic, [i["B"] for i in real_items], untranslated=untranslated, real_groups=[i["subject"] for i in real_items]
    )
    report_path.write_text(json.dumps(report, indent=2))
    return report


def epoch_seconds(log: Path) -> tuple[float, float]:
    """(sum, median) of the per-epoch times ignite logged in ``log`` ("Epoch[N] Complete. Time taken: HH:MM:SS.f"),
    counting each epoch once (its last record): the training time without start-up, also across a resume."""
    import re
    import statistics

    times: dict[int, float] = {}
    for m in re.finditer(r"Epoch\[(\d+)\] Complete\. Time taken: (\d+):(\d+):([\d.]+)", log.read_text()):
        times[int(m[1])] = int(m[2]) * 3600 + int(m[3]) * 60 + float(m[4])
    if not times:
        return float("nan"), float("nan")
    return sum(times.values()), statistics.median(times.values())


def _fd(report: dict | None) -> str:
    if not report:
        return "-"
    return f"{report['fd_synthetic']:.2f} ({report['fd_floor']:.2f}, {report.get('fd_untranslated', float('nan')):.2f})"


def _table(results: list[dict]) -> str:
    head = (
        "| target | model | SSIM | foreground SSIM | PSNR dB | MAE | train min (median s/epoch) | FD downstream (floor, input) |\n"
        "|---|---|---|---|---|---|---|---|\n"
    )
    rows, baselines = [], {}
    for r in results:
        m = r["metrics"]
        rows.append(
            f"| {r['target']} | {r['model']} | {m['ssim']:.3f} | {m.get('fg_ssim', float('nan')):.3f} | "
            f"{m['psnr']:.2f} | {m['mae']:.4f} | {r['train_seconds'] / 60:.1f} ({r.get('median_epoch_seconds', float('nan')):.0f}) | "
            f"{_fd(r.get('frechet'))} |"
        )
        baselines[r["target"]] = m
    for target, m in baselines.items():
        for b in ("linear", "hist"):
            rows.append(
                f"| {target} | input, {b}-matched | {m[f'baseline_{b}_ssim']:.3f} | "
                f"{m.get(f'baseline_{b}_fg_ssim', float('nan')):.3f} | {m[f'baseline_{b}_psnr']:.2f} | "
                f"{m[f'baseline_{b}_mae']:.4f} | - | - |"
            )
    return head + "\n".join(rows) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=REPO / "runs" / "translator_comparison")
    p.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "mri_brain_multicontrast")
    p.add_argument("--targets", nargs="+", default=["t2w", "t2f"])
    p.add_argument("--models", nargs="+", default=["cut", "cyclegan", "fastcut", "pix2pix", "cut_mind"])
    p.add_argument("--stage", choices=["train", "evaluate", "all"], default="all")
    p.add_argument("--frechet", type=int, default=0, metavar="N",
                   help="also translate N random downstream brain-tumour images and report the Frechet distance")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="bundle overrides for every model")
    a = p.parse_args(argv)
    for item in a.set:
        key, sep, value = item.partition("=")
        if not sep or not key:
            p.error(f"--set takes KEY=VALUE, got {item!r}")
        if key in NET:
            NET[key] = value
        else:
            SETTINGS[key] = value
    unknown = sorted(set(a.models) - set(MODELS))
    if unknown:
        p.error(f"unknown model(s) {unknown}; known: {sorted(MODELS)}")
    if not a.data.is_dir():
        p.error(f"multi-contrast MRI not found at {a.data} (see docs/data.md)")
    out = a.out.resolve()
    results = []
    for target in a.targets:
        cache = out / "cache"
        for model in a.models:
            if a.stage in ("train", "all"):
                rec = train(model, target, out, a.data, cache)
                print(f"[comparison] trained {target}/{model} in {rec['train_seconds']:.0f} s", flush=True)
            if a.stage in ("evaluate", "all"):
                timing = out / target / model / "train_time.json"
                if not timing.is_file():
                    print(f"[comparison] {target}/{model} not trained yet: skipped", flush=True)
                    continue
                metrics = evaluate(model, target, out, a.data, cache)
                row = {**json.loads(timing.read_text()), "metrics": metrics["metrics"]}
                total, median = epoch_seconds(out / target / model / "train.log")
                row.update(train_seconds=round(total, 1), median_epoch_seconds=round(median, 1))
                if a.frechet:
                    subset = downstream_subset(out, a.data.parent, a.frechet)
                    row["frechet"] = frechet(model, target, out, a.data, cache, subset)
                results.append(row)
                print(f"[comparison] {target}/{model}: {metrics['metrics']}", flush=True)
    if results:
        (out / "comparison.json").write_text(json.dumps(results, indent=2))
        (out / "comparison.md").write_text(_table(results))
        print(_table(results))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())
