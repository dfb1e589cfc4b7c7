"""Translator fidelity against SSL gain: does a better synthetic privileged modality give a better primary encoder?

A finished pipeline run (its report written) trained one translator and kept its epoch checkpoints (profile
``translator_train``: ``"checkpoint_saver#n_saved": null``, as in ``configs/pipeline/long.json``). For each chosen
epoch, :func:`run_fidelity` exports that checkpoint's A -> B generator, and runs the same experiment again in
``<run>/fidelity/epoch<E>/`` with it (:class:`~monai_synpriv.pipeline.SynPrivPipeline` with ``translator_weights``):
held-out translation metrics, synthesis of every downstream image, the synthetic-pairs arm for the chosen seeds and its
probes. Each translator's gain is the arm's error reduction against the run's own single-modality Siamese encoder,
paired by seed (:func:`~monai_synpriv.evaluation.paired_comparison`); the run's final translator is the last point.

Writes ``<run>/fidelity/fidelity_vs_gain.{json,md,png}``: held-out SSIM (whole frame and foreground) against error
reduction with its 95 % interval, per probe and label fraction, and logs them to the run's MLflow parent run.

    python -m monai_synpriv.pipeline.fidelity --run runs/pipeline_long --epochs 4 14 --seeds 0 1 2

A second translator (another method) comes from a run of the same profile that differs only in its translator
sections, trained through ``translator_train`` (``--translator_run``, ``--translator_epochs``; docs/pipeline.md).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from ..data import file_sha256
from ..evaluation.paired_stats import paired_comparison
from ..utils import architecture_path
from ..utils.io import atomic_path, write_json_atomic
from ..visualize import save_figure
from .arms import ARMS
from .layout import STATE_FILE, RunLayout
from .report import ALL_LABELS, SINGLE_MODALITY

__all__ = [
    "GENERATOR_KEYS",
    "TRANSLATOR_SECTIONS",
    "export_generator",
    "fidelity_points",
    "run_fidelity",
    "split_signature",
]


#: The A -> B generator's entry in a translator training checkpoint, per ``translator_method`` (the CUT overlay
#: replaces CycleGAN's ``checkpoint_dict``).
GENERATOR_KEYS = {"cyclegan": "g_ab", "cut": "generator", "fastcut": "generator"}


def _generator_state(checkpoint: str | os.PathLike, key: str) -> dict:
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    if key not in state:
        raise KeyError(f"{checkpoint} holds no {key!r} (keys: {sorted(state)}): is it a translator checkpoint?")
    return state[key]


def export_generator(checkpoint: str | os.PathLike, out: str | os.PathLike, key: str = "g_ab") -> Path:
    """Save the generator ``key`` of a translator training checkpoint (``checkpoint_epoch=<E>.pt``, which also holds
    the discriminators, optimisers and trainer state; ``g_ab`` for CycleGAN, ``generator`` for CUT/FastCUT) as a plain
    state dict, the format of ``models/model.pt``. The bytes depend only on the tensors, and an identical existing file
    is left alone, so that exporting again does not look like a new translator to the pipeline's fingerprints."""
    buf = io.BytesIO()
    torch.save(_generator_state(checkpoint, key), buf)
    data, out = buf.getvalue(), Path(out)
    if out.is_file() and out.read_bytes() == data:
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        Path(tmp).write_bytes(data)
    return out


def split_signature(datalist: str | os.PathLike) -> str:
    """A digest of a downstream datalist that ignores where its images are stored: per section, the sorted
    (content SHA-256, label) of every entry. Two runs with the same signature probed the same images and labels."""
    d = json.loads(Path(datalist).read_text())
    h = hashlib.sha256()
    for section in ("training", "validation", "test"):
        rows = sorted(f"{file_sha256(e['image'])}:{e.get('label')}" for e in d.get(section, []))
        h.update(f"{section}\0{len(rows)}\0{'|'.join(rows)}\n".encode())
    return h.hexdigest()


def _generator_key(profile: dict[str, Any]) -> str:
    return GENERATOR_KEYS[profile.get("translator_method", "cyclegan")]


def _accuracies(results: dict[str, Any], arm: str) -> dict[tuple[str, str, int], float]:
    rows = results["per_seed"] + results.get("per_seed_label_fractions", [])
    return {(r["probe"], r.get("labels", ALL_LABELS), r["seed"]): r["accuracy"] for r in rows if r["arm"] == arm}


def fidelity_points(
    translators: Sequence[tuple[str, dict[str, float], dict[tuple[str, str, int], float]]],
    single_modality: dict[tuple[str, str, int], float],
) -> list[dict[str, Any]]:
    """One row per (translator, probe, label fraction): its held-out metrics and the synthetic-pairs arm's paired
    comparison with the single-modality encoder over the seeds both have.

    Args:
        translators: ``(name, translation metrics, {(probe, labels, seed): accuracy})`` per translator.
        single_modality: the Siamese arm's ``{(probe, labels, seed): accuracy}``.
    """
    rows = []
    for name, metrics, acc in translators:
        for probe, labels in sorted({(p, t) for p, t, _ in acc}):
            seeds = sorted(s for p, t, s in acc if (p, t) == (probe, labels) and (probe, labels, s) in single_modality)
            if not seeds:
                continue
            stats = paired_comparison(
                [acc[(probe, labels, s)] for s in seeds], [single_modality[(probe, labels, s)] for s in seeds]
            )
            rows.append({
                "translator": name, "probe": probe, "labels": labels, "seeds": seeds,
                **{k: metrics.get(k) for k in ("ssim", "fg_ssim", "psnr", "mae")}, **stats,
            })  # fmt: skip
    return rows


def _plot(rows: Sequence[dict[str, Any]], probe: str, path: Path, arm_label: str) -> str:
    import matplotlib.pyplot as plt

    def percent(tag: str) -> float:  # "labels10pct" -> 10, "all" -> 100
        return 100.0 if tag == ALL_LABELS else float(tag[len("labels") : -len("pct")])

    tags = sorted({r["labels"] for r in rows if r["probe"] == probe}, key=percent)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for ax, metric, name in zip(axes, ("ssim", "fg_ssim"), ("held-out SSIM (whole frame)", "held-out SSIM (foreground)")):
        for tag in tags:
            pts = [r for r in rows if r["probe"] == probe and r["labels"] == tag and r[metric] is not None]
            if not pts:
                continue
            x = [r[metric] for r in pts]
            y = [r["er"] for r in pts]
            lo = [max(0.0, r["er"] - r["er_ci_low"]) if math.isfinite(r["er_ci_low"]) else 0.0 for r in pts]
            hi = [max(0.0, r["er_ci_high"] - r["er"]) if math.isfinite(r["er_ci_high"]) else 0.0 for r in pts]
            # points, not a line: translators are separate models (several trainings may be plotted)
            ax.errorbar(x, y, yerr=[lo, hi], marker="o", ls="none", capsize=3, label=f"{percent(tag):g} % labels")
            if tag == tags[-1]:  # name each translator once
                for r in pts:
                    ax.annotate(r["translator"], (r[metric], r["er"]), textcoords="offset points", xytext=(4, 6), fontsize=8)
        ax.axhline(1.0, color="grey", lw=0.8, ls="--")
        ax.set_xlabel(name)
    axes[0].set_ylabel(f"error reduction vs single modality ({probe} probe)")
    axes[0].legend(fontsize=8)
    fig.suptitle(f"Translator fidelity against SSL gain: {arm_label}, one point per translator (95 % CI over seeds)")
    return save_figure(fig, path)


#: The profile sections that make a translator (taken from ``translator_run`` for its points).
TRANSLATOR_SECTIONS = ("translator_method", "translator_net", "translator_train", "translator_evaluate", "synthesis")


def _checkpoints(run: Path) -> tuple[Path, list[int]]:
    """A run's translator checkpoint folder and the epochs it kept."""
    ckpt_dir = RunLayout(run).translator_model.parent
    return ckpt_dir, sorted(int(p.stem.split("=")[1]) for p in ckpt_dir.glob("checkpoint_epoch=*.pt"))


def _check_epochs(run: Path, epochs: Sequence[int], allow_final: bool) -> None:
    ckpt_dir, available = _checkpoints(run)
    absent = [e for e in epochs if e not in available]
    if absent:
        raise FileNotFoundError(
            f"no translator checkpoint for epoch(s) {absent} in {ckpt_dir} (available: {available}); keep them with "
            "the profile's translator_train override \"checkpoint_saver#n_saved\": null."
        )
    if not allow_final and available and available[-1] in epochs:
        raise ValueError(
            f"epoch {available[-1]} is the run's final translator, already the last point: choose earlier epochs."
        )


def _translator_run_state(translator_run: Path, profile: dict[str, Any], reference: str) -> dict[str, Any]:
    """The state of a run that trained another translator for the same experiment, checked against ``profile``."""
    file = translator_run / STATE_FILE
    if not file.is_file():
        raise FileNotFoundError(
            f"{translator_run} holds no pipeline run ({STATE_FILE}); train the other translator with e.g. "
            "`python -m monai_synpriv.pipeline --profile <the run's profile> --set translator_method=cyclegan "
            f"--until translator_evaluate --output {translator_run}`."
        )
    other = json.loads(file.read_text())
    if other.get("stages", {}).get("translator_train", {}).get("status") != "done":
        raise ValueError(f"{translator_run} has not finished its translator_train stage; run it to the end first.")
    differ = sorted(
        k for k in set(profile) | set(other["profile"])
        if k not in (*TRANSLATOR_SECTIONS, "name", "description", "embedding_plot_seeds")
        and profile.get(k) != other["profile"].get(k)
    )  # fmt: skip
    if differ:
        raise ValueError(
            f"{translator_run} differs from the run in {differ}: only the translator ({list(TRANSLATOR_SECTIONS)}) may "
            "differ, or its synthetic arm would not be comparable with the run's Siamese arm."
        )
    if split_signature(other["datalists"]["downstream"]) != reference:
        raise ValueError(f"{translator_run} used other downstream images or labels than the run.")
    return other


def run_fidelity(
    run_dir: str | os.PathLike,
    epochs: Sequence[int],
    seeds: Sequence[int] | None = None,
    arm: str = "tridente_synthetic",
    data_root: str | os.PathLike | None = None,
    bundles_dir: str | os.PathLike | None = None,
    device: str | None = None,
    progress: bool = True,
    tracking_uri: str | None = None,
    experiment_name: str = "synpriv_pipeline",
    translator_run: str | os.PathLike | None = None,
    translator_epochs: Sequence[int] = (),
) -> Path:
    """Re-run ``arm`` of a finished pipeline run with its translator taken at ``epochs`` (see the module docstring).
    Everything is checked before any training: the run's report, the arm and the Siamese arm in its profile, every
    checkpoint. Returns the markdown summary; a re-run continues where an interrupted one stopped.

    ``translator_run`` adds a second translator: a run of the same profile but for its translator sections
    (:data:`TRANSLATOR_SECTIONS`, e.g. ``--set translator_method=cyclegan``), trained at least through
    ``translator_train`` with its epoch checkpoints kept. The arm is re-run with its generator at
    ``translator_epochs`` (its final epoch allowed), in ``<run>/fidelity/<translator run name>_epoch<E>/``, and paired
    with the run's own Siamese arm like the other points.

    ``tracking_uri`` is the run's MLflow store (default: its ``mlruns.db``) and ``experiment_name`` its experiment; the
    re-runs log there, in the experiment ``<experiment_name>_fidelity``, and the summary goes to the run's parent run.
    ``data_root`` defaults to the one the run recorded; each re-run must find the very images and labels of the run
    (checked after its ``prepare`` stage, before any training), or the pairing by seed would compare other data.

    Raises:
        FileNotFoundError: no finished run, or a missing epoch checkpoint (the available epochs are listed).
        ValueError: an arm the run did not train, seeds it has no Siamese result for, no epoch at all, or a
            translator run that differs from the run in more than its translator.
    """
    from .runner import SynPrivPipeline

    run = Path(run_dir).absolute()
    layout = RunLayout(run)
    state_file, results_file = run / STATE_FILE, layout.report / "results.json"
    if not state_file.is_file() or not results_file.is_file():
        raise FileNotFoundError(f"{run} holds no finished pipeline run ({STATE_FILE} and report/results.json).")
    state, results = json.loads(state_file.read_text()), json.loads(results_file.read_text())
    profile = state["profile"]
    if arm not in profile["arms"] or ARMS[arm].pairs != "synthetic" or SINGLE_MODALITY not in profile["arms"]:
        raise ValueError(
            f"arm {arm!r} must be a synthetic-pairs arm the run trained, beside {SINGLE_MODALITY!r}; the run's arms: "
            f"{profile['arms']}."
        )
    seeds = list(seeds) if seeds is not None else list(profile["seeds"])
    missing_seeds = sorted(set(seeds) - set(profile["seeds"]))
    if missing_seeds:
        raise ValueError(f"seeds {missing_seeds} were not run by {run} (its seeds: {profile['seeds']}).")
    if not epochs and not translator_epochs:
        raise ValueError("no translator to re-run with: give epochs of the run's translator or translator_epochs.")
    if translator_epochs and translator_run is None:
        raise ValueError("translator_epochs needs the translator_run that trained them.")
    reference = split_signature(state["datalists"]["downstream"])
    # (label, sub-folder, translator run, epoch, its profile sections): every checkpoint checked before any re-run
    jobs = [(f"epoch {e}", f"epoch{e}", run, e, profile) for e in epochs]
    _check_epochs(run, epochs, allow_final=False)
    if translator_run is not None:
        other_run = Path(translator_run).absolute()
        other = _translator_run_state(other_run, profile, reference)
        _check_epochs(other_run, translator_epochs, allow_final=True)
        jobs += [(f"{other_run.name} epoch {e}", f"{other_run.name}_epoch{e}", other_run, e, other["profile"])
                 for e in translator_epochs]  # fmt: skip
    for _, _, source, e, prof in jobs:
        _generator_state(_checkpoints(source)[0] / f"checkpoint_epoch={e}.pt", _generator_key(prof))
    data_root = data_root if data_root is not None else state.get("data_root")
    base = run / "fidelity"
    uri = tracking_uri or f"sqlite:///{run / 'mlruns.db'}"
    translators = []
    for label, folder, source, epoch, prof in jobs:
        sub = base / folder
        weights = export_generator(
            _checkpoints(source)[0] / f"checkpoint_epoch={epoch}.pt",
            sub / "translator_weights" / "model.pt",
            key=_generator_key(prof),
        )
        record = architecture_path(RunLayout(source).translator_model)
        if record.is_file():
            with atomic_path(architecture_path(weights)) as tmp:
                Path(tmp).write_text(record.read_text())
        derived = {
            **profile, **{k: prof[k] for k in TRANSLATOR_SECTIONS if k in prof},
            "name": f"{profile.get('name', 'run')}_fidelity_{folder}", "arms": [arm], "seeds": seeds,
            "random_init_baseline": False, "embedding_plot_seeds": [],
        }  # fmt: skip
        kwargs = dict(
            data_root=data_root, bundles_dir=bundles_dir, tracking_uri=uri, experiment_name=f"{experiment_name}_fidelity",
            device=device, progress=progress, translator_weights=weights,
        )  # fmt: skip
        SynPrivPipeline(derived, sub, until="prepare", **kwargs).run()
        own = json.loads((sub / STATE_FILE).read_text())["datalists"]["downstream"]
        if split_signature(own) != reference:
            raise ValueError(
                f"the re-run in {sub} found other downstream images or labels than {run} ({own} vs "
                f"{state['datalists']['downstream']}): pass the run's --data_root."
            )
        SynPrivPipeline(derived, sub, **kwargs).run()
        sub_layout = RunLayout(sub)
        held_out = sub_layout.translation_metrics
        metrics = json.loads(held_out.read_text())["metrics"] if held_out.is_file() else {}
        sub_results = json.loads((sub_layout.report / "results.json").read_text())
        translators.append((label, metrics, _accuracies(sub_results, arm)))
    final_metrics = (results.get("translation") or {}).get("metrics", {})
    final = {k: v for k, v in _accuracies(results, arm).items() if k[2] in seeds}
    translators.append(("final", final_metrics, final))
    rows = fidelity_points(translators, {k: v for k, v in _accuracies(results, SINGLE_MODALITY).items() if k[2] in seeds})

    probes = list(dict.fromkeys(r["probe"] for r in rows))
    pictures = {p: _plot(rows, p, base / f"fidelity_vs_gain_{p}.png", ARMS[arm].label) for p in probes}
    write_json_atomic(base / "fidelity_vs_gain.json", {
        "run": str(run), "arm": arm, "seeds": seeds, "epochs": list(epochs), "pictures": pictures, "rows": rows,
        "translator_run": str(Path(translator_run).absolute()) if translator_run else None,
        "translator_epochs": list(translator_epochs),
    })  # fmt: skip
    lines = [
        f"# Translator fidelity against SSL gain ({ARMS[arm].label}, run `{run.name}`)",
        "",
        f"Translators from one training (epochs {list(epochs)} and the final one)"
        + (f", and from `{Path(translator_run).name}` (epochs {list(translator_epochs)})" if translator_run else "")
        + f", seeds {seeds}. Error reduction of the "
        "arm against the run's single-modality Siamese encoder, geometric mean over seeds paired by seed, with its 95 % "
        "interval; held-out metrics on the run's paired evaluation subject.",
        "",
        "| translator | SSIM | fg SSIM | PSNR | probe | labels | error reduction [95 % CI] | accuracy difference [95 % CI] | verdict |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        fmt = lambda v, d=3: "n/a" if v is None else f"{v:.{d}f}"  # noqa: E731
        lines.append(
            f"| {r['translator']} | {fmt(r['ssim'])} | {fmt(r['fg_ssim'])} | {fmt(r['psnr'], 2)} | {r['probe']} | "
            f"{r['labels']} | {r['er']:.2f} [{r['er_ci_low']:.2f}, {r['er_ci_high']:.2f}] | {r['diff_mean']:+.3f} "
            f"[{r['diff_ci_low']:+.3f}, {r['diff_ci_high']:+.3f}] | {r['verdict']} |"
        )
    md = base / "fidelity_vs_gain.md"
    with atomic_path(md) as tmp:
        Path(tmp).write_text("\n".join(lines) + "\n")

    from .tracking import PipelineTracker

    tracker = PipelineTracker(uri, experiment_name)
    parent = state.get("parent_run_id")
    if parent:
        tracker.log_metrics(parent, {
            f"fidelity/{r['translator'].replace(' ', '')}/{r['probe']}_{r['labels']}/{k}": float(r[k])
            for r in rows for k in ("er", "er_ci_low", "er_ci_high", "diff_mean")
            if r[k] is not None and math.isfinite(float(r[k]))
        })  # fmt: skip
        for path in [base / "fidelity_vs_gain.json", md, *map(Path, pictures.values())]:
            tracker.log_artifact(parent, path, "fidelity")  # the summary only, not the re-runs' data
    return md


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m monai_synpriv.pipeline.fidelity", description=__doc__.split("\n\n")[0])
    p.add_argument("--run", required=True, help="a finished pipeline run folder (its translator checkpoints kept)")
    p.add_argument("--epochs", type=int, nargs="*", default=[], help="the run's translator epochs to re-run with")
    p.add_argument(
        "--translator_run",
        default=None,
        help="a run of the same profile with another translator (e.g. --set translator_method=cyclegan --until "
        "translator_evaluate), its epoch checkpoints kept",
    )
    p.add_argument("--translator_epochs", type=int, nargs="*", default=[], help="epochs of --translator_run's translator")
    p.add_argument("--seeds", type=int, nargs="+", default=None, help="default: the run's seeds")
    p.add_argument("--arm", default="tridente_synthetic")
    p.add_argument("--data_root", default=None)
    p.add_argument("--device", default=None)
    p.add_argument("--tracking_uri", default=None, help="the run's MLflow store (default sqlite:///<run>/mlruns.db)")
    p.add_argument("--experiment_name", default="synpriv_pipeline", help="the run's MLflow experiment")
    p.add_argument("--no_progress", action="store_true")
    a = p.parse_args(argv)
    md = run_fidelity(
        a.run, a.epochs, a.seeds, a.arm, a.data_root, device=a.device, progress=not a.no_progress,
        tracking_uri=a.tracking_uri, experiment_name=a.experiment_name, translator_run=a.translator_run,
        translator_epochs=a.translator_epochs,
    )
    print(f"[fidelity] {md}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
