"""The pipeline's report: per-seed probe results -> mean and spread per arm, error reductions, plots, MLflow."""

from __future__ import annotations

import glob
import json
import math
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..evaluation.paired_stats import paired_comparison
from ..evaluation.probes import error_reduction
from ..evaluation.translation_table import translation_report
from ..utils.io import atomic_path, write_json_atomic
from ..visualize import save_figure
from .arms import ARMS, RANDOM_INIT
from .layout import RunLayout

__all__ = [
    "AUTHENTIC_OF",
    "COMPARISONS",
    "SINGLE_MODALITY",
    "compare_arms",
    "comparison_table",
    "markdown_table",
    "plot_accuracy",
    "plot_label_fractions",
    "pretraining_check",
    "pretraining_check_section",
    "summarize",
    "write_report",
]

#: The single-modality baseline of every error reduction "vs single modality".
SINGLE_MODALITY = "siamese"
#: Each synthetic-pairs arm against the same variant trained on authentic pairs.
AUTHENTIC_OF = {
    "privileged_siamese_synthetic": "privileged_siamese_authentic",
    "tridente_synthetic": "tridente_authentic",
}
METRICS = ("accuracy", "balanced_accuracy", "error")
#: The questions of the experiment: (arm, baseline, what the comparison asks), each answered paired by seed.
COMPARISONS = (
    ("siamese", RANDOM_INIT, "pre-training vs random init"),
    ("privileged_siamese_synthetic", "siamese", "synthetic pairs vs single modality"),
    ("tridente_synthetic", "siamese", "synthetic pairs vs single modality"),
    ("privileged_siamese_synthetic", "privileged_siamese_authentic", "synthetic vs authentic pairs"),
    ("tridente_synthetic", "tridente_authentic", "synthetic vs authentic pairs"),
    ("tridente_synthetic", "privileged_siamese_synthetic", "TriDeNT vs privileged Siamese"),
    ("tridente_authentic", "privileged_siamese_authentic", "TriDeNT vs privileged Siamese"),
)
#: the label-fraction tag of the probes trained on every labelled training image
ALL_LABELS = "all"


def _label(arm: str) -> str:
    return ARMS[arm].label if arm in ARMS else "Random init (no pre-training)"


def summarize(rows: Sequence[Mapping[str, Any]], arms: Sequence[str], probes: Sequence[str]) -> dict[str, Any]:
    """
    Aggregate per-seed rows ``{arm, seed, probe, accuracy, balanced_accuracy, error}`` into, per arm and probe:
    ``<metric>_mean``, ``<metric>_sd`` (sample s.d. over seeds, NaN for one seed), ``n_seeds``, and the error
    reductions ``(1 - acc_baseline) / (1 - acc_arm)`` computed on the mean accuracies:
    ``er_vs_single_modality`` (baseline: the Siamese arm) and, for synthetic-pairs arms, ``er_vs_authentic`` (the same
    variant on authentic pairs). ``*_per_seed`` lists the same ratio seed by seed (paired by seed).
    """
    out: dict[str, Any] = {}
    by = {(r["arm"], r["probe"], r["seed"]): r for r in rows}
    for arm in arms:  # first pass: mean and spread of every arm
        out[arm] = {}
        for probe in probes:
            seeds = sorted(s for (a, p, s) in by if a == arm and p == probe)
            if not seeds:
                continue
            entry: dict[str, Any] = {"n_seeds": len(seeds), "seeds": seeds}
            for m in METRICS:
                vals = np.asarray([by[(arm, probe, s)][m] for s in seeds], dtype=float)
                entry[f"{m}_mean"] = float(vals.mean())
                entry[f"{m}_sd"] = float(vals.std(ddof=1)) if len(vals) > 1 else float("nan")
            out[arm][probe] = entry
    for arm in arms:  # second pass: error reductions against the baselines, wherever they are in the arm list
        for probe, entry in out[arm].items():
            for name, base in (("single_modality", SINGLE_MODALITY), ("authentic", AUTHENTIC_OF.get(arm))):
                if base is None or base == arm or probe not in out.get(base, {}):
                    continue
                entry[f"er_vs_{name}"] = error_reduction(out[base][probe]["accuracy_mean"], entry["accuracy_mean"])
                entry[f"er_vs_{name}_per_seed"] = [
                    error_reduction(by[(base, probe, s)]["accuracy"], by[(arm, probe, s)]["accuracy"])
                    for s in entry["seeds"]
                    if (base, probe, s) in by
                ]
    return out


def _pm(entry: Mapping[str, Any], m: str) -> str:
    sd = entry[f"{m}_sd"]
    return f"{entry[f'{m}_mean']:.3f} ± " + ("n/a" if math.isnan(sd) else f"{sd:.3f}")


def _er(entry: Mapping[str, Any], name: str) -> str:
    v = entry.get(f"er_vs_{name}")
    if v is None:
        return "–"
    seeds = entry.get(f"er_vs_{name}_per_seed") or []
    span = f" ({min(seeds):.2f}–{max(seeds):.2f})" if len(seeds) > 1 else ""
    return ("∞" if math.isinf(v) else f"{v:.2f}") + span


def markdown_table(summary: Mapping[str, Any], probe: str) -> str:
    """One probe's table: a row per arm, mean ± s.d. over seeds, error reductions on the mean accuracy (per-seed
    range in brackets)."""
    lines = [
        "| arm | seeds | accuracy | balanced accuracy | error | error reduction vs single modality | "
        "error reduction vs authentic pairs |",
        "|---|---|---|---|---|---|---|",
    ]
    for arm, probes in summary.items():
        if probe not in probes:
            continue
        e = probes[probe]
        lines.append(
            f"| {_label(arm)} | {e['n_seeds']} | {_pm(e, 'accuracy')} | {_pm(e, 'balanced_accuracy')} | "
            f"{_pm(e, 'error')} | {_er(e, 'single_modality')} | {_er(e, 'authentic')} |"
        )
    return "\n".join(lines) + "\n"


def plot_accuracy(
    rows: Sequence[Mapping[str, Any]],
    summary: Mapping[str, Any],
    probes: Sequence[str],
    path: str | Path,
    majority: float | None = None,
) -> str:
    """Grouped bars (one group per arm, one bar per probe): mean accuracy, s.d. error bars, every seed as a dot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    arms = [a for a in summary if summary[a]]
    width = 0.8 / max(len(probes), 1)
    fig, ax = plt.subplots(figsize=(1.6 * len(arms) + 2, 4.2))
    for j, probe in enumerate(probes):
        xs = [i + (j - (len(probes) - 1) / 2) * width for i in range(len(arms))]
        means = [summary[a][probe]["accuracy_mean"] if probe in summary[a] else np.nan for a in arms]
        sds = [summary[a][probe]["accuracy_sd"] if probe in summary[a] else 0.0 for a in arms]
        sds = [0.0 if math.isnan(v) else v for v in sds]
        ax.bar(xs, means, width, yerr=sds, capsize=3, label=probe, alpha=0.8)
        for x, a in zip(xs, arms):
            pts = [r["accuracy"] for r in rows if r["arm"] == a and r["probe"] == probe]
            ax.scatter([x] * len(pts), pts, s=8, color="black", zorder=3)
    if majority is not None:
        ax.axhline(majority, color="grey", linestyle=":", label="majority class")
    finite = [r["accuracy"] for r in rows]
    lo = max(0.0, min(finite + ([majority] if majority else [])) - 0.05) if finite else 0.0
    ax.set_ylim(lo, 1.0)
    ax.set_xticks(range(len(arms)), [_label(a).replace(", ", ",\n") for a in arms], fontsize=7)
    ax.set_ylabel("test accuracy (frozen primary encoder)")
    ax.set_title("Probe accuracy per arm: mean ± s.d. over seeds, dots = seeds")
    ax.legend(fontsize=7, ncol=len(probes) + 1)
    return save_figure(fig, path)


def _montage(images: Sequence[tuple[str, str]], path: str | Path, title: str) -> str | None:
    """Put existing PNGs side by side (embedding plots of every arm)."""
    images = [(t, p) for t, p in images if Path(p).is_file()]
    if not images:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = min(3, len(images))
    rows = math.ceil(len(images) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.9 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (t, p) in zip(axes.flat, images):
        ax.imshow(plt.imread(p))
        ax.set_title(t, fontsize=9)
    fig.suptitle(title, fontsize=10)
    return save_figure(fig, path)


def data_section(data: Mapping[str, Any], counts: Mapping[str, int], paths: Mapping[str, Any]) -> list[str]:
    """The report's "Data" section: where the data came from, the split and its level, the duplicates removed, and
    what did not run for lack of data."""
    if not data:
        return []
    where = ", ".join(f"`{k}` = `{v}`" for k, v in paths.items())
    level = (
        f"by subject (`{data['subject_key']}`): no subject has images in two splits"
        if data.get("split_level") == "subject"
        else "by image (no subject key given: images of one patient may sit in two splits)"
    )
    sizes = ", ".join(f"{counts.get(f'downstream_{s}', 0)} {s}" for s in ("training", "validation", "test"))
    dropped = data.get("dropped_identical") or {}
    lines = [
        "## Data",
        "",
        f"- Source: {'the user data of the profile' if data.get('source') == 'user' else 'the public sets'} ({where}).",
        f"- Downstream images: {sizes}; classes {data.get('classes')}; split {level}"
        + (", the datalist's own training/test sections kept." if data.get("split") == "given" else "."),
        "- Files identical in content to a file of an earlier split, removed: "
        + (", ".join(f"{n} from {s}" for s, n in dropped.items()) if dropped else "none")
        + f" ({sum(dropped.values())} in all).",
    ]
    if data.get("arms_not_run"):
        lines.append(f"- No authentic pairs in the data: arms {', '.join(data['arms_not_run'])} not run.")
    if not data.get("translator_scored", True):
        lines.append("- No paired_evaluation data: the translator is not scored on aligned pairs.")
    return lines + [""]


def compare_arms(rows: Sequence[Mapping[str, Any]], arms: Sequence[str], probes: Sequence[str]) -> list[dict[str, Any]]:
    """Every comparison of :data:`COMPARISONS` whose two arms ran, per probe and label fraction, paired by seed
    (:func:`monai_synpriv.evaluation.paired_comparison` over the seeds both arms have)."""
    by = {(r["arm"], r["probe"], r.get("labels", ALL_LABELS), r["seed"]): r["accuracy"] for r in rows}
    tags = list(dict.fromkeys(r.get("labels", ALL_LABELS) for r in rows))
    out = []
    for arm, base, question in COMPARISONS:
        if arm not in arms or base not in arms:
            continue
        for tag in tags:
            for probe in probes:
                seeds = sorted(s for (a, p, t, s) in by if a == arm and p == probe and t == tag and (base, p, t, s) in by)
                if not seeds:
                    continue
                stats = paired_comparison([by[(arm, probe, tag, s)] for s in seeds], [by[(base, probe, tag, s)] for s in seeds])
                out.append({"arm": arm, "baseline": base, "question": question, "labels": tag, "probe": probe,
                            "seeds": seeds, **stats})  # fmt: skip
    return out


def pretraining_check(
    summaries: Mapping[str, Mapping[str, Any]], probes: Sequence[str], min_sds: float = 2.0
) -> list[dict[str, Any]]:
    """
    Does pre-training work at all? Per label fraction (``summaries``: tag -> :func:`summarize` output) and probe, the
    single-modality Siamese encoder against the random-init encoder of the same seeds. It *passes* when the mean
    accuracy difference exceeds ``min_sds`` times the larger seed standard deviation of the two; with one seed there
    is no spread and the check is ``None`` (undecided). Comparisons between arms only mean something where it passes:
    otherwise they measure noise around an untrained encoder.
    """
    out = []
    for tag, summary in summaries.items():
        for probe in probes:
            ssl, rnd = summary.get(SINGLE_MODALITY, {}).get(probe), summary.get(RANDOM_INIT, {}).get(probe)
            if ssl is None or rnd is None:
                continue
            diff = ssl["accuracy_mean"] - rnd["accuracy_mean"]
            spread = max(ssl["accuracy_sd"], rnd["accuracy_sd"])
            passed = None if math.isnan(spread) else bool(diff > min_sds * spread)
            out.append({
                "labels": tag, "probe": probe, "siamese": ssl["accuracy_mean"], "random_init": rnd["accuracy_mean"],
                "diff": diff, "threshold": min_sds * spread, "passed": passed,
                "er": error_reduction(rnd["accuracy_mean"], ssl["accuracy_mean"]),
            })  # fmt: skip
    return out


def pretraining_check_section(checks: Sequence[Mapping[str, Any]], label_names: Mapping[str, str]) -> list[str]:
    """The report's first section: one verdict sentence (linear probe, all labels) and the table of every check."""
    if not checks:
        return []
    head = next(
        (c for c in checks if c["labels"] == ALL_LABELS and c["probe"] == "linear"),
        next((c for c in checks if c["labels"] == ALL_LABELS), checks[0]),
    )
    word = {True: "**passed**", False: "**failed**", None: "**undecided** (one seed: no spread)"}[head["passed"]]
    advice = {
        True: "Pre-training learns something the untrained encoder lacks, so the comparisons between arms below are "
        "meaningful.",
        False: "Until it passes, the comparisons between arms measure noise around an untrained encoder: give the SSL "
        "stage more steps (`ssl_train.max_epochs` x `epoch_length`).",
        None: "Run at least 2 seeds to decide it; until then, read the comparisons between arms with that in mind.",
    }[head["passed"]]
    lines = [
        "## Pre-training check",
        "",
        f"Siamese {head['siamese']:.3f} vs random init {head['random_init']:.3f} ({head['probe']} probe, "
        f"{label_names[head['labels']]}): difference {head['diff']:+.3f} against 2 seed s.d. = {head['threshold']:.3f}, "
        f"error reduction {head['er']:.2f}x: {word}. {advice}",
        "",
        "| labels | probe | Siamese | random init | difference | 2 seed s.d. | error reduction | passed |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for c in checks:
        lines.append(
            f"| {label_names[c['labels']]} | {c['probe']} | {c['siamese']:.3f} | {c['random_init']:.3f} | "
            f"{c['diff']:+.3f} | {c['threshold']:.3f} | {c['er']:.2f} | {'n/a' if c['passed'] is None else ('yes' if c['passed'] else 'no')} |"
        )
    return lines + [""]


def _ci(low: float, high: float, digits: int) -> str:
    return "n/a" if math.isnan(low) or math.isnan(high) else f"[{low:.{digits}f}, {high:.{digits}f}]"


def comparison_table(comparisons: Sequence[Mapping[str, Any]], labels: str) -> str:
    """One label fraction's comparisons: a row per (comparison, probe), difference and error reduction with their
    95 % intervals over seeds, and the verdict (an effect only when the difference's interval excludes zero)."""
    lines = [
        "| comparison | arm vs baseline | probe | seeds | accuracy difference [95 % CI] | error reduction [95 % CI] | "
        "verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in comparisons:
        if c["labels"] != labels:
            continue
        er = "∞" if math.isinf(c["er"]) else f"{c['er']:.2f}"
        lines.append(
            f"| {c['question']} | {_label(c['arm'])} vs {_label(c['baseline'])} | {c['probe']} | {c['n_seeds']} | "
            f"{c['diff_mean']:+.3f} {_ci(c['diff_ci_low'], c['diff_ci_high'], 3)} | "
            f"{er} {_ci(c['er_ci_low'], c['er_ci_high'], 2)} | {c['verdict']} |"
        )
    return "\n".join(lines) + "\n"


def plot_label_fractions(
    summaries: Mapping[str, Mapping[str, Any]], fractions: Mapping[str, float], probe: str, path: str | Path
) -> str:
    """Label-efficiency curves: mean test accuracy (± s.d. over seeds) of each arm's ``probe`` against the fraction
    of labelled training images (log axis)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tags = sorted(fractions, key=fractions.get)
    arms = list(dict.fromkeys(a for t in tags for a in summaries[t]))
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for arm in arms:
        pts = [(fractions[t], summaries[t][arm][probe]) for t in tags if probe in summaries[t].get(arm, {})]
        if not pts:
            continue
        xs = [100 * f for f, _ in pts]
        ys = [e["accuracy_mean"] for _, e in pts]
        sds = [0.0 if math.isnan(e["accuracy_sd"]) else e["accuracy_sd"] for _, e in pts]
        ax.errorbar(xs, ys, yerr=sds, marker="o", capsize=3, label=_label(arm))
    ax.set_xscale("log")
    ax.set_xlabel("labelled training images (%)")
    ax.set_ylabel(f"test accuracy, {probe} probe")
    ax.set_title("Label efficiency per frozen primary encoder\n(mean ± s.d. over seeds, same labelled subsets)", fontsize=9)
    ax.legend(fontsize=7)
    return save_figure(fig, path)


def write_report(
    layout: RunLayout,
    state: Mapping[str, Any],
    profile: Mapping[str, Any],
    arm_names: Sequence[str],
    tracker: Any,
    data_paths: Mapping[str, Any] | None = None,
) -> Path:
    """Collect every evaluation of a run, write ``report/results.{json,md}`` and the plots, log all of it (aggregates
    as metrics, files as artifacts) to the parent MLflow run.

    Args:
        layout: the run's paths (what the runner wrote where).
        state: the pipeline state (``pipeline_state.json``: stages, run ids, counts, data summary).
        profile: the loaded profile (seeds, ``random_init_baseline``, ``embedding_plot_seeds``, name, description).
        arm_names: the arms that ran (the random-init reference is added when the profile asks for it).
        tracker: a :class:`~monai_synpriv.pipeline.tracking.PipelineTracker` holding the parent run.
        data_paths: the profile's data paths, resolved (named in the report's Data section).

    Returns:
        the path of ``results.md``.
    """
    if not state.get("parent_run_id"):
        raise RuntimeError("write_report needs the state of a started run (no parent_run_id).")
    out = layout.report
    out.mkdir(parents=True, exist_ok=True)
    seeds = list(profile["seeds"])
    arms = list(arm_names) + ([RANDOM_INIT] if profile["random_init_baseline"] else [])
    rows: list[dict[str, Any]] = []
    fraction_rows: list[dict[str, Any]] = []
    fractions: dict[str, float] = {}
    subsets: dict[str, set[str]] = {}
    num_labelled: dict[str, int] = {}
    probes: list[str] = []
    majority = None
    num_test = num_train = 0
    for seed in seeds:
        for arm in arms:
            res = json.loads(layout.probe_metrics(arm, seed).read_text())
            majority = res.get("majority_rate", majority)
            num_test, num_train = int(res["num_test"]), int(res["num_train"])
            run_id = state["stages"].get(f"ssl_evaluate/{arm}/seed{seed}", {}).get("run_id")
            for probe, m in res["probes"].items():
                probes = probes if probe in probes else probes + [probe]
                rows.append({"arm": arm, "seed": seed, "probe": probe, "run_id": run_id, **{k: m[k] for k in METRICS}})
            for tag, entry in (res.get("label_fractions") or {}).items():
                fractions[tag] = float(entry["fraction"])
                num_labelled[tag] = int(entry["num_labelled"])
                subsets.setdefault(tag, set()).add(entry["subset_sha1"])
                for probe, m in entry["probes"].items():
                    fraction_rows.append({"arm": arm, "seed": seed, "probe": probe, "labels": tag, "run_id": run_id,
                                          **{k: m[k] for k in METRICS}})  # fmt: skip
    mixed = sorted(t for t, h in subsets.items() if len(h) > 1)
    if mixed:
        raise RuntimeError(
            f"the label-scarce probes of {mixed} used different labelled subsets across arms or seeds; every arm and "
            "seed must be probed on the same subsets (the same probe datalist and label_subset_seed)."
        )
    summary = summarize(rows, arms, probes)
    fractions = dict(sorted(fractions.items(), key=lambda kv: kv[1]))
    summary_by_labels = {
        tag: summarize([r for r in fraction_rows if r["labels"] == tag], arms, probes) for tag in fractions
    }
    comparisons = compare_arms(rows + fraction_rows, arms, probes)
    checks = pretraining_check({ALL_LABELS: summary, **summary_by_labels}, probes)
    label_names = {ALL_LABELS: "all labels", **{t: f"{100 * f:g} % labels" for t, f in fractions.items()}}
    tmetrics_path = layout.translation_metrics
    tmetrics = json.loads(tmetrics_path.read_text()) if tmetrics_path.is_file() else None

    pictures = {"accuracy_per_arm": plot_accuracy(rows, summary, probes, out / "accuracy_per_arm.png", majority)}
    if fractions:
        curves = {**summary_by_labels, ALL_LABELS: summary}
        pictures["label_efficiency"] = plot_label_fractions(
            curves, {**fractions, ALL_LABELS: 1.0}, probes[0], out / "label_efficiency.png"
        )
    grids = sorted(glob.glob(str(layout.translation_grids / "*.png")))
    if grids:
        shutil.copyfile(grids[-1], out / "translation_heldout_subject.png")
        pictures["translation_heldout_subject"] = str(out / "translation_heldout_subject.png")
    synth = layout.synthesis_grid
    if synth.is_file():
        shutil.copyfile(synth, out / "synthesis_grid.png")
        pictures["synthesis_grid"] = str(out / "synthesis_grid.png")
    emb = [
        (_label(a), str(layout.embedding_plot(a, s)))
        for s in profile["embedding_plot_seeds"]
        for a in arms
    ]
    m = _montage(emb, out / "embeddings.png", "t-SNE of test-set features of each frozen primary encoder")
    if m:
        pictures["embeddings"] = m

    stage_seconds = {k: v.get("seconds") for k, v in state["stages"].items() if v.get("seconds") is not None}
    results = {
        "profile": profile["name"],
        "profile_digest": state.get("profile_digest"),
        "parent_run_id": state["parent_run_id"],
        "seeds": seeds,
        "arms": arms,
        "probes": probes,
        "majority_rate": majority,
        "per_seed": rows,
        "summary": summary,
        "label_fractions": {t: {"fraction": f, "num_labelled": num_labelled[t]} for t, f in fractions.items()},
        "per_seed_label_fractions": fraction_rows,
        "summary_by_labels": summary_by_labels,
        "comparisons": comparisons,
        "pretraining_check": checks,
        "translation": tmetrics,
        "counts": state.get("counts"),
        "data": state.get("data"),
        "stage_seconds": stage_seconds,
        "pictures": pictures,
    }
    write_json_atomic(out / "results.json", results)

    lines = [
        f"# Synthetic privileged information: results ({profile['name']} profile)",
        "",
        profile.get("description", ""),
        "",
        f"Seeds: {seeds}. Test split: {num_test} images, majority-class "
        f"rate {majority:.3f}. Values: mean ± sample s.d. over seeds. Error reduction = (1 - acc_baseline) / "
        "(1 - acc_arm) on the mean accuracies (> 1: fewer errors than the baseline), per-seed range in brackets. "
        f"MLflow parent run `{state['parent_run_id']}`.",
        "",
    ]
    lines += pretraining_check_section(checks, label_names)
    lines += data_section(state.get("data") or {}, state.get("counts") or {}, data_paths or {})
    for probe in probes:
        lines += [f"## {probe} probe", "", markdown_table(summary, probe)]
    for tag, f in fractions.items():
        lines += [f"## Label-scarce probes: {100 * f:g} % of the labelled training images ({num_labelled[tag]} of "
                  f"{num_train}, the same stratified subset for every arm and seed)", ""]  # fmt: skip
        for probe in probes:
            lines += [f"### {probe} probe, {100 * f:g} % labels", "", markdown_table(summary_by_labels[tag], probe)]
    if comparisons:
        lines += [
            "## Comparisons, paired by seed",
            "",
            "Accuracy difference = arm - baseline, mean over seeds with its 95 % Student-t interval over the per-seed "
            "differences; error reduction = geometric mean over seeds of (1 - acc_baseline) / (1 - acc_arm), with the "
            "interval of the per-seed log ratios. Verdict: *better*/*worse* only when the difference's interval "
            "excludes zero, else *no effect shown*.",
            "",
        ]
        for tag in [ALL_LABELS, *fractions]:
            name = "all labelled training images" if tag == ALL_LABELS else f"{100 * fractions[tag]:g} % of the labels"
            lines += [f"### {name}", "", comparison_table(comparisons, tag)]
    if tmetrics:
        lines += [translation_report(tmetrics_path, title="Translator quality on the held-out multi-contrast subject")]
    lines += ["## Pictures", ""] + [f"- {k}: `{Path(v).name}`" for k, v in pictures.items()] + [""]
    total = sum(v for v in stage_seconds.values() if v)
    lines += ["## Time per stage (s)", "", "| stage | seconds |", "|---|---|"]
    lines += [f"| {k} | {v:.0f} |" for k, v in stage_seconds.items()] + [f"| **sum** | {total:.0f} |", ""]
    with atomic_path(out / "results.md") as tmp:
        Path(tmp).write_text("\n".join(lines))

    parent = state["parent_run_id"]
    flat = {
        f"{arm}/{probe}/{k}": v
        for arm, ps in summary.items()
        for probe, e in ps.items()
        for k, v in e.items()
        if isinstance(v, float) and math.isfinite(v)
    }
    flat.update({
        f"{arm}/{probe}_{tag}/{k}": v
        for tag, sm in summary_by_labels.items()
        for arm, ps in sm.items()
        for probe, e in ps.items()
        for k, v in e.items()
        if isinstance(v, float) and math.isfinite(v)
    })  # fmt: skip
    flat.update({
        f"compare/{c['arm']}_vs_{c['baseline']}/{c['probe']}_{c['labels']}/{k}": float(c[k])
        for c in comparisons
        for k in ("diff_mean", "diff_ci_low", "diff_ci_high", "er", "er_ci_low", "er_ci_high")
        if math.isfinite(float(c[k]))
    })  # fmt: skip
    flat.update({
        f"pretraining_check/{c['probe']}_{c['labels']}/{k}": float(c[k])
        for c in checks
        for k in ("diff", "threshold", "er", "passed")
        if c[k] is not None and math.isfinite(float(c[k]))
    })  # fmt: skip
    if tmetrics:
        flat.update({f"translator/{k}": float(v) for k, v in tmetrics["metrics"].items()})
    tracker.log_metrics(parent, flat)
    tracker.log_artifact(parent, out, "report")
    return layout.results_md
