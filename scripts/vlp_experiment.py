"""Synthetic images for vision-language pre-training (Liu et al. 2023), on MedPix 2.0 CT/MR image-caption pairs.

1. train the caption-conditioned diffusion bundle (``bundles/text_to_image_diffusion``) on the real training pairs
   (MedPix train + dev, split by case), unless ``--diffusion_ckpt`` names a trained one;
2. generate one synthetic image per caption of every split (the test captions only serve the generator's evaluation);
3. pre-train the ConVIRT dual encoder (``bundles/vision_language_pretraining``) under one budget (same iterations,
   batch size and settings) on three arms: real pairs, synthetic pairs (synthetic image, real caption), real +
   synthetic; with the pretrained all-MiniLM-L6-v2 text encoder and with a small one trained from scratch;
4. evaluate each: retrieval on the real test split, linear probes (CT/MR, region, plane; 10 % and 100 % labels) and
   transfer to the brain-tumour MRI set; the same probes on a randomly initialised image encoder (floor);
5. judge the generator with the real arm's model: Frechet distance, precision/recall, image-text agreement.

Writes ``<out>/results.json`` and ``<out>/results.md``; every stage is an MLflow run in ``<out>/mlruns.db``. Finished
stages are kept (a re-run skips checkpoints and metrics that exist).

Usage::

    python scripts/vlp_experiment.py --out runs/vlp_quick              # CPU quick profile (32 px)
    python scripts/vlp_experiment.py --out runs/vlp_full --profile full  # GPU profile (64 px, longer)
    python scripts/vlp_experiment.py --out runs/vlp_latent --profile latent  # CPU, latent diffusion (~2.5 h generator)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DIFF = REPO / "bundles" / "text_to_image_diffusion"
VLP = REPO / "bundles" / "vision_language_pretraining"

PROFILES = {
    "quick": {
        "diffusion": {
            "image_size": 32,
            "channels": [32, 64, 128],
            "attention_levels": [False, True, True],
            "num_res_blocks": 1,
            "norm_num_groups": 16,
            "num_head_channels": 32,
            "batch_size": 32,
            "max_epochs": 100,
            "lr": 0.0005,
        },
        "generate": {"num_inference_steps": 25, "guidance_scale": 3.0, "generate_batch_size": 128},
        "vlp": {"image_size": 32, "embed_dim": 128, "batch_size": 32, "max_epochs": 10, "epoch_length": 20},
        "eval": {"transfer_max_train": 1000, "transfer_max_test": 400},
        "judge": {"epochs": 20, "image_size": 64},
    },
    "smoke": {  # the script's own check: every stage, tiny (minutes on CPU); numbers meaningless
        "diffusion": {
            "image_size": 32,
            "channels": [16, 32],
            "attention_levels": [False, True],
            "num_res_blocks": 1,
            "norm_num_groups": 8,
            "num_head_channels": 16,
            "batch_size": 8,
            "max_epochs": 1,
            "max_items": 16,
        },
        "generate": {"num_inference_steps": 2, "guidance_scale": 3.0, "generate_batch_size": 256, "max_items": None},
        "vlp": {
            "image_size": 32,
            "embed_dim": 32,
            "batch_size": 8,
            "max_epochs": 1,
            "epoch_length": 2,
            "max_items": 32,
        },
        "eval": {"transfer_max_train": 40, "transfer_max_test": 20},
        "judge": {"epochs": 1, "image_size": 32},
    },
    # issue 20's CPU design (benchmarks/generator_design.py): latent diffusion on MONAI's AutoencoderKL at 64 px,
    # sized for ~2.5 h of generator training on 2 cores, from the first run's own epoch times (autoencoder 190 epochs
    # of 16 steps at ~8.6 s: 27 min; UNet 650 epochs of 16 steps at ~10.5 s with the latents cached, EMA and trainer
    # included: ~1.9 h)
    "latent": {
        "autoencoder": {"max_epochs": 190, "lr": 0.0002, "save_interval": 10},
        "diffusion": {
            "image_size": 64,
            "ae_channels": [32, 64, 64],
            "latent_channels": 3,
            "channels": [64, 128, 256],
            "attention_levels": [False, True, True],
            "num_res_blocks": 2,
            "norm_num_groups": 32,
            "num_head_channels": 32,
            "batch_size": 32,
            "max_epochs": 650,
            "lr": 0.0002,
            "ema_decay": 0.999,
            "save_interval": 25,
        },
        "generate": {"num_inference_steps": 50, "guidance_scale": 3.0, "generate_batch_size": 128},
        "vlp": {"image_size": 64, "embed_dim": 128, "batch_size": 32, "max_epochs": 10, "epoch_length": 20},
        "eval": {"transfer_max_train": 1000, "transfer_max_test": 400},
        "judge": {"epochs": 20, "image_size": 64},
    },
    "full": {
        "diffusion": {"image_size": 64, "batch_size": 64, "max_epochs": 400, "lr": 0.0002},
        "generate": {"num_inference_steps": 50, "guidance_scale": 3.0, "generate_batch_size": 128},
        "vlp": {"image_size": 64, "embed_dim": 512, "batch_size": 64, "max_epochs": 60, "epoch_length": 40},
        "eval": {"transfer_max_train": 5000, "transfer_max_test": 1300},
        "judge": {"epochs": 20, "image_size": 64},
    },
}
# the latent path's own check: the smoke profile with a first-stage autoencoder (tiny; numbers meaningless)
PROFILES["smoke_latent"] = {
    **PROFILES["smoke"],
    "autoencoder": {"max_epochs": 1},
    "diffusion": {**PROFILES["smoke"]["diffusion"], "ae_channels": [32, 32], "ema_decay": 0.9},
}
ARMS = ("real", "synthetic", "real+synthetic")
TEXT_ENCODERS = ("pretrained", "scratch")


def _run(bundle: Path, configs: list[str], overrides: dict, out: Path, run_name: str | None, track: bool) -> None:
    from monai.bundle import run as bundle_run

    kwargs = {}
    if track:
        kwargs = dict(
            tracking=str(bundle / "configs" / "mlflow_tracking.json"),
            tracking_uri=f"sqlite:///{out / 'mlruns.db'}",
            experiment_name="vlp",
            run_name=run_name,
        )
    bundle_run(
        config_file=[str(bundle / "configs" / c) for c in configs],
        logging_file=str(bundle / "configs" / "logging.conf"),
        bundle_root=str(bundle),
        **kwargs,
        **{k: ("$None" if v is None else v) for k, v in overrides.items()},
    )


def _finished(ckpt_dir: Path, weights: str = "model.pt") -> bool:
    """The stage's marker and its final weights (the VLP bundle's dual encoder is ``dual_encoder.pt``)."""
    return (ckpt_dir / "FINISHED.json").is_file() and (ckpt_dir / weights).is_file()


def _mark_finished(ckpt_dir: Path, settings: dict) -> None:
    from monai_synpriv.utils.io import write_json_atomic

    write_json_atomic(ckpt_dir / "FINISHED.json", {"settings": settings, "time": time.time()})


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="runs/vlp_quick")
    ap.add_argument("--profile", choices=sorted(PROFILES), default="quick")
    ap.add_argument("--data_root", default=str(REPO.parent / "shared" / "data"))
    ap.add_argument("--diffusion_ckpt", default=None, help="a trained generator (skips step 1)")
    ap.add_argument("--text_encoders", nargs="+", default=list(TEXT_ENCODERS), choices=TEXT_ENCODERS)
    ap.add_argument("--arms", nargs="+", default=list(ARMS), choices=ARMS)
    ap.add_argument("--device", default=None, help="e.g. cuda:0 (default: the bundles' choice)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the generator, its judge and the first ConVIRT run")
    ap.add_argument(
        "--seeds", type=int, nargs="+", default=None, help="ConVIRT seeds (>= 3 for intervals; default: --seed)"
    )
    args = ap.parse_args(argv)
    seeds = list(dict.fromkeys(args.seeds or [args.seed]))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    prof = PROFILES[args.profile]
    common = {"data_root": args.data_root, "cache_dir": str(out / "cache"), "seed": args.seed}
    if args.device:
        common["device"] = f"$torch.device({args.device!r})"
    timings: dict[str, float] = {}

    # 1. the generator (a profile with an "autoencoder" section: latent diffusion, its first stage trained before)
    diff_dir = out / "diffusion"
    diff_over = {**common, **prof["diffusion"], "ckpt_dir": str(diff_dir / "models"), "output_dir": str(diff_dir)}
    ckpt = Path(args.diffusion_ckpt) if args.diffusion_ckpt else diff_dir / "models" / "model.pt"
    latent = ["train_latent.json"] if "autoencoder" in prof else []
    ae_dir = diff_dir / "models" / "autoencoder"
    if latent and not args.diffusion_ckpt and not _finished(ae_dir, "autoencoder.pt"):
        t0 = time.time()
        # resume: an interrupted stage continues from its last checkpoint (none yet: starts afresh)
        ae_out = f"${str(diff_dir / 'autoencoder')!r}"
        ae_over = {**diff_over, **prof["autoencoder"], "output_dir": ae_out, "resume": True}
        _run(DIFF, ["train.json", "train_autoencoder.json"], ae_over, out, "autoencoder_train", True)
        _mark_finished(ae_dir, {**prof["diffusion"], **prof["autoencoder"]})
        timings["autoencoder_train_s"] = time.time() - t0
    # MONAI's CheckpointSaver also writes model.pt when training fails: only a marker says a stage finished
    if not args.diffusion_ckpt and not _finished(diff_dir / "models"):
        t0 = time.time()
        over = {**diff_over, "output_dir": f"${str(diff_dir)!r}", "resume": True}
        _run(DIFF, ["train.json", *latent], over, out, "diffusion_train", True)
        _mark_finished(diff_dir / "models", prof["diffusion"])
        timings["diffusion_train_s"] = time.time() - t0
    # 2. synthetic pairs (resumable)
    syn_list = diff_dir / "synthetic" / "synthetic_datalist.json"
    t0 = time.time()
    _run(
        DIFF,
        ["train.json", *latent, "generate.json"],
        {**diff_over, **prof["generate"], "ckpt_path": str(ckpt)},
        out,
        None,
        False,
    )
    timings["generate_s"] = time.time() - t0
    # 2b. the generator's own judge (monai_synpriv.vlp.judge: trained on real training + validation images only) on
    # the images generated from the test captions; judged again whenever those images change
    from monai_synpriv.utils.io import sha256_file

    judge_dir = out / "judge"
    judge_path = judge_dir / "judge_metrics.json"
    if not judge_path.is_file() or json.loads(judge_path.read_text()).get("synthetic_sha256") != sha256_file(syn_list):
        from monai_synpriv.utils import log_mlflow_run
        from monai_synpriv.vlp.judge import main as judge_main

        t0 = time.time()
        reuse = ["--judge_ckpt", str(judge_dir / "judge.pt")] if (judge_dir / "judge.pt").is_file() else []
        judge_main(
            ["--data_root", args.data_root, "--synthetic_datalist", str(syn_list), "--output", str(judge_dir)]
            + ["--epochs", str(prof["judge"]["epochs"]), "--image_size", str(prof["judge"]["image_size"])]
            + ["--seed", str(args.seed), *reuse]
        )
        timings["judge_s"] = time.time() - t0
        log_mlflow_run(
            f"sqlite:///{out / 'mlruns.db'}",
            "vlp",
            "generator_judge",
            params={"synthetic_datalist": str(syn_list), **prof["judge"]},
            metrics=json.loads(judge_path.read_text())["metrics"],
            files=[judge_path],
            artifact_path="judge",
            artifact_root=out,
            tags={"stage": "generator_judge"},
        )

    # 3-4. dual encoders under one budget
    medpix = str(out / "cache" / "medpix_datalist.json")
    real_src = f"[{medpix!r}, ['training', 'validation']]"
    syn_src = f"[{str(syn_list)!r}, ['training', 'validation']]"  # the test captions' images stay out of training
    sources = {"real": f"$[{real_src}]", "synthetic": f"$[{syn_src}]", "real+synthetic": f"$[{real_src}, {syn_src}]"}
    tracking_uri = f"sqlite:///{out / 'mlruns.db'}"
    results: dict = {"profile": args.profile, "settings": prof, "arms": {}, "timings": timings}
    results["judge"] = json.loads(judge_path.read_text())["metrics"]

    def evaluate(tag: str, configs: list[str], over: dict, run_dir: Path, metrics_name: str) -> dict:
        metrics_path = run_dir / metrics_name
        if not metrics_path.is_file():
            t0 = time.time()
            _run(
                VLP,
                configs,
                {**over, **prof["eval"], "output_dir": str(run_dir), "tracking_uri": tracking_uri},
                out,
                None,
                False,
            )
            timings[f"evaluate_{tag}_s"] = time.time() - t0
        return json.loads(metrics_path.read_text())

    per_seed: dict[int, dict] = {}
    for seed in seeds:  # every arm under one budget, once per seed (seed<k>/ of vlp/)
        sub, seeded = out / "vlp" / f"seed{seed}", {**common, "seed": seed}
        per_seed[seed] = {}
        # the floor: a randomly initialised image encoder under the same probes (retrieval at chance)
        base_dir = sub / "random_init"
        base_over = {
            **seeded,
            **prof["vlp"],
            "arm": "random_init",
            "text_encoder_kind": "pretrained",
            "ckpt_dir": str(base_dir / "models"),
            "tokenizer_path": "$str(monai_synpriv.networks.default_pretrained_text_dir() / 'tokenizer.json')",
            "initialize": "$[monai.utils.set_determinism(seed=@seed)]",
        }
        per_seed[seed]["random_init"] = evaluate(
            f"random_init_seed{seed}", ["train.json", "evaluate.json"], base_over, base_dir, "metrics.json"
        )
        for text in args.text_encoders:
            for arm in args.arms:
                tag = f"{arm}__{text}"
                run_dir = sub / tag
                over = {
                    **seeded,
                    **prof["vlp"],
                    "arm": arm,
                    "text_encoder_kind": text,
                    "train_sources": sources[arm],
                    "ckpt_dir": str(run_dir / "models"),
                }
                if not _finished(run_dir / "models", "dual_encoder.pt"):
                    t0 = time.time()
                    run_name = f"vlp_train_{tag}_seed{seed}"
                    _run(VLP, ["train.json"], {**over, "output_dir": f"${str(run_dir)!r}"}, out, run_name, True)
                    _mark_finished(run_dir / "models", prof["vlp"])
                    timings[f"train_{tag}_seed{seed}_s"] = time.time() - t0
                per_seed[seed][tag] = evaluate(
                    f"{tag}_seed{seed}", ["train.json", "evaluate.json"], over, run_dir, "metrics.json"
                )
                print(f"[vlp] seed {seed} {tag}: {json.dumps(per_seed[seed][tag])}", flush=True)
                if arm == "real" and seed == seeds[0]:  # 5. the real-data model judges the generator
                    results.setdefault("generator", {})[text] = evaluate(
                        f"generator_{text}",
                        ["train.json", "evaluate.json", "evaluate_generator.json"],
                        {**over, "synthetic_datalist": str(syn_list),
                         "generator_output_dir": str(run_dir / "generator")},  # fmt: skip
                        run_dir / "generator",
                        "generator_metrics.json",
                    )
    results["seeds"] = seeds
    results["per_seed"] = {str(k): v for k, v in per_seed.items()}
    results["arms"], results["arms_sd"] = aggregate_seeds(per_seed)
    results["comparisons"] = compare_with_real(per_seed, args.text_encoders)
    from monai_synpriv.utils.io import write_json_atomic

    write_json_atomic(out / "results.json", results)
    (out / "results.md").write_text(results_table(results))
    print(results_table(results))
    return 0


def aggregate_seeds(per_seed: dict[int, dict[str, dict[str, float]]]) -> tuple[dict, dict]:
    """Mean and sample standard deviation over seeds of every arm's metrics (s.d. 0 for one seed)."""
    import numpy as np

    tags = list(dict.fromkeys(t for runs in per_seed.values() for t in runs))
    mean, sd = {}, {}
    for tag in tags:
        rows = [runs[tag] for runs in per_seed.values() if tag in runs]
        keys = [k for k in rows[0] if all(isinstance(r.get(k), (int, float)) for r in rows)]
        mean[tag] = {k: float(np.mean([r[k] for r in rows])) for k in keys}
        sd[tag] = {k: float(np.std([r[k] for r in rows], ddof=1)) if len(rows) > 1 else 0.0 for k in keys}
    return mean, sd


RETRIEVAL_KEYS = ("i2t_R@10", "t2i_R@10")


def compare_with_real(per_seed: dict[int, dict[str, dict[str, float]]], text_encoders) -> list[dict]:
    """Each arm against the real-pairs arm of the same text encoder, paired by seed, on R@10 both ways: the mean
    difference with its 95 % interval, the verdict, and the ratio of the means (issue 20's target: >= 0.90)."""
    from monai_synpriv.evaluation.paired_stats import paired_comparison

    rows = []
    for text in text_encoders:
        real = f"real__{text}"
        for arm in ("synthetic", "real+synthetic"):
            tag = f"{arm}__{text}"
            seeds = [s for s, runs in per_seed.items() if tag in runs and real in runs]
            for key in RETRIEVAL_KEYS if seeds else ():
                a = [per_seed[s][tag][key] for s in seeds]
                b = [per_seed[s][real][key] for s in seeds]
                stats = paired_comparison(a, b)
                rows.append({
                    "arm": tag, "baseline": real, "metric": key, "seeds": seeds, "arm_mean": sum(a) / len(a),
                    "real_mean": sum(b) / len(b), "ratio": (sum(a) / sum(b)) if sum(b) else float("nan"),
                    **{k: stats[k] for k in ("diff_mean", "diff_ci_low", "diff_ci_high", "verdict")},
                })  # fmt: skip
    return rows


def results_table(results: dict) -> str:
    """Markdown tables: retrieval and probes per arm, and the generator's quality."""
    cols = [
        ("i2t R@1", "i2t_R@1"),
        ("i2t R@5", "i2t_R@5"),
        ("i2t R@10", "i2t_R@10"),
        ("t2i R@1", "t2i_R@1"),
        ("t2i R@5", "t2i_R@5"),
        ("t2i R@10", "t2i_R@10"),
        ("CT/MR 10%", "probe_modality_acc_10pct"),
        ("CT/MR 100%", "probe_modality_acc_100pct"),
        ("region 10%", "probe_region_bacc_10pct"),
        ("region 100%", "probe_region_bacc_100pct"),
        ("plane 100%", "probe_plane_bacc_100pct"),
        ("brain tumour 10%", "transfer_brain_tumor_acc_10pct"),
        ("brain tumour 100%", "transfer_brain_tumor_acc_100pct"),
    ]
    lines = []
    judge = results.get("judge", {})
    if judge:
        lines += [
            "| generator's judge (real images only) | real test images | synthetic (test captions) | chance |",
            "|---|---|---|---|",
        ]
        for k in ("modality", "region"):
            cells = [judge.get(f"judge_real_{k}_accuracy"), judge.get(f"judge_synthetic_{k}_agreement")]
            cells.append(judge.get(f"judge_chance_{k}"))
            lines.append(f"| {k} | " + " | ".join(f"{v:.3f}" if v is not None else "-" for v in cells) + " |")
        lines.append("")
    sds = results.get("arms_sd", {})
    n = len(results.get("seeds", [0]))
    if n > 1:
        lines += [f"Mean ± s.d. over seeds {results['seeds']}.", ""]
    lines += ["| arm | " + " | ".join(c for c, _ in cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for tag, m in results["arms"].items():
        cells = [
            f"{m.get(k, float('nan')):.3f}" + (f" ± {sds[tag][k]:.3f}" if n > 1 and k in sds.get(tag, {}) else "")
            for _, k in cols
        ]
        lines.append(f"| {tag} | " + " | ".join(cells) + " |")
    comps = results.get("comparisons", [])
    if comps:
        lines += [
            "",
            "| arm vs real pairs (paired by seed) | metric | arm | real | ratio | difference [95 % CI] | verdict |",
            "|---|---|---|---|---|---|---|",
        ]
        for c in comps:
            lines.append(
                f"| {c['arm']} | {c['metric']} | {c['arm_mean']:.3f} | {c['real_mean']:.3f} | {c['ratio']:.2f} | "
                f"{c['diff_mean']:+.3f} [{c['diff_ci_low']:+.3f}, {c['diff_ci_high']:+.3f}] | {c['verdict']} |"
            )
    gen = results.get("generator", {})
    if gen:
        gcols = [
            "frechet_distance",
            "precision",
            "recall",
            "density",
            "coverage",
            "synthetic_pair_cosine",
            "real_pair_cosine",
            "synthetic_i2t_auc",
            "real_i2t_auc",
            "synthetic_i2t_R@10",
            "real_i2t_R@10",
        ]
        lines += ["", "| judge (real-arm model) | " + " | ".join(gcols) + " |", "|---" * (len(gcols) + 1) + "|"]
        for text, m in gen.items():
            lines.append(f"| {text} | " + " | ".join(f"{m.get(k, float('nan')):.3f}" for k in gcols) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
