"""The main job end to end: the tiny profile on the real data, its artifacts, its report and its MLflow lineage."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import DATA, REPO, require

from monai_synpriv.pipeline import ARMS, PipelineError, SynPrivPipeline, load_profile, markdown_table, summarize
from monai_synpriv.pipeline.__main__ import main as pipeline_main
from monai_synpriv.pipeline.profile import parse_override

ALL_ARMS = list(ARMS)


def _run_cli(out: Path, *extra: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.pop("MLFLOW_TRACKING_URI", None)
    proc = subprocess.run(
        [sys.executable, "-m", "monai_synpriv.pipeline", "--profile", "tiny", "--output", str(out)]
        + ["--data_root", str(DATA), "--no_progress", *extra],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if proc.returncode != 0:
        raise AssertionError(f"pipeline failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}")
    return proc


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    require(DATA / "brain_tumor_mri_4class" / "brain_tumor_mri_224.tar")
    require(DATA / "mri_brain_multicontrast")
    out = tmp_path_factory.mktemp("pipeline") / "tiny"
    # stage by stage: stop after the synthesis, then continue to the end
    first = _run_cli(out, "--until", "synthesis")
    assert "stopped after stage 'synthesis'" in first.stdout
    state = json.loads((out / "pipeline_state.json").read_text())
    assert [k for k, v in state["stages"].items() if v["status"] == "done"] == [
        "prepare",
        "translator_train",
        "translator_evaluate",
        "synthesis",
    ]
    assert not (out / "ssl").exists() and not (out / "report").exists()
    second = _run_cli(out)
    assert second.stdout.count("skipped (outputs exist)") == 3  # prepare re-reads the data every time:
    assert "prepare: up to date (datalists unchanged)" in second.stdout
    return out


def _client(out: Path):
    import mlflow

    return mlflow.MlflowClient(tracking_uri=f"sqlite:///{out / 'mlruns.db'}")


def test_every_stage_writes_its_artifacts(tiny_run):
    out = tiny_run
    prof = load_profile("tiny")
    assert (out / "translator" / "models" / "model.pt").is_file()
    tm = json.loads((out / "translator" / "evaluate" / "metrics" / "translation_metrics.json").read_text())
    assert {"ssim", "psnr", "mae", "baseline_hist_ssim"} <= set(tm["metrics"])
    paired = json.loads((out / "synthesis" / "privileged" / "paired_datalist.json").read_text())
    assert len(paired["training"]) == prof["data"]["max_downstream"]
    assert all(Path(it["privileged"]).is_file() and Path(it["image"]).is_file() for it in paired["training"])
    assert all("label" in it for it in paired["training"])  # labels travel with the pairs (probe-ready)
    for seed in prof["seeds"]:
        for arm in ALL_ARMS + ["random_init"]:
            d = out / "ssl" / arm / f"seed{seed}"
            assert (d / "models" / "model.pt").is_file(), d
            assert (d / "evaluate" / "probes" / "probe_metrics.json").is_file(), d
    for name in ("results.md", "results.json", "accuracy_per_arm.png", "synthesis_grid.png", "embeddings.png"):
        assert (out / "report" / name).stat().st_size > 0, name


def test_report_numbers_are_the_logged_ones(tiny_run):
    out = tiny_run
    client = _client(out)
    results = json.loads((out / "report" / "results.json").read_text())
    state = json.loads((out / "pipeline_state.json").read_text())
    parent = client.get_run(results["parent_run_id"])
    assert parent.info.status == "FINISHED"
    assert parent.data.params["profile"] == "tiny"
    # per seed: the evaluation run's logged metrics are the report's numbers, exactly
    assert (
        len(results["per_seed"]) == len(results["seeds"]) * len(results["arms"]) * len(results["probes"]) == 2 * 6 * 3
    )
    for row in results["per_seed"]:
        logged = client.get_run(row["run_id"]).data.metrics
        for k in ("accuracy", "balanced_accuracy", "error"):
            assert logged[f"{row['probe']}_{k}"] == row[k], (row, k)
    # aggregates: the parent run holds every mean/s.d./error reduction of the summary
    pm = parent.data.metrics
    for arm, probes in results["summary"].items():
        for probe, e in probes.items():
            for k, v in e.items():
                if isinstance(v, float) and math.isfinite(v):
                    assert pm[f"{arm}/{probe}/{k}"] == v
    # label-scarce probes (1 %, 10 %): each per-seed row is its evaluation run's logged metric, every arm and seed
    # was probed on the same subset, and the parent run holds the tables' aggregates
    assert set(results["label_fractions"]) == {"labels1pct", "labels10pct"}
    assert len(results["per_seed_label_fractions"]) == 2 * len(results["per_seed"])
    for row in results["per_seed_label_fractions"]:
        logged = client.get_run(row["run_id"]).data.metrics
        assert logged[f"{row['probe']}_accuracy_{row['labels']}"] == row["accuracy"], row
    for tag, by_arm in results["summary_by_labels"].items():
        for arm, probes in by_arm.items():
            for probe, e in probes.items():
                assert pm[f"{arm}/{probe}_{tag}/accuracy_mean"] == pytest.approx(e["accuracy_mean"], rel=1e-12)
    # paired-by-seed comparisons with their intervals, logged to the parent run
    comps = results["comparisons"]
    asked = {(c["arm"], c["baseline"]) for c in comps}
    assert {("siamese", "random_init"), ("tridente_synthetic", "siamese"), ("tridente_synthetic", "tridente_authentic"),
            ("tridente_synthetic", "privileged_siamese_synthetic")} <= asked  # fmt: skip
    assert {c["labels"] for c in comps} == {"all", "labels1pct", "labels10pct"}
    for c in comps:
        assert c["n_seeds"] == 2 and c["diff_ci_low"] <= c["diff_mean"] <= c["diff_ci_high"], c
        key = f"compare/{c['arm']}_vs_{c['baseline']}/{c['probe']}_{c['labels']}"
        for k in ("diff_mean", "diff_ci_low", "diff_ci_high"):
            assert pm[f"{key}/{k}"] == pytest.approx(c[k], rel=1e-12, abs=1e-15), (key, k)
        assert c["verdict"] == ("no effect shown" if c["diff_ci_low"] <= 0 <= c["diff_ci_high"] else
                                "better" if c["diff_ci_low"] > 0 else "worse")  # fmt: skip
    # the pre-training check (Siamese vs random init, beyond 2 seed s.d.) for every label fraction and probe, logged
    checks = results["pretraining_check"]
    assert {(c["labels"], c["probe"]) for c in checks} == {
        (t, p) for t in ("all", "labels1pct", "labels10pct") for p in results["probes"]
    }
    for c in checks:
        key = f"pretraining_check/{c['probe']}_{c['labels']}"
        assert pm[f"{key}/diff"] == pytest.approx(c["siamese"] - c["random_init"], rel=1e-12, abs=1e-15)
        assert pm[f"{key}/passed"] == float(c["passed"]) and c["passed"] == (c["diff"] > c["threshold"])
    # the markdown shows the same numbers
    md = (out / "report" / "results.md").read_text()
    assert md.index("## Pre-training check") < md.index("## linear probe")
    assert "## Label-scarce probes: 1 % of the labelled training images" in md and "## Comparisons, paired by seed" in md
    assert (out / "report" / "label_efficiency.png").is_file()
    e = results["summary"]["tridente_synthetic"]["linear"]
    assert f"{e['accuracy_mean']:.3f} ± {e['accuracy_sd']:.3f}" in md
    assert f"{e['er_vs_single_modality']:.2f}" in md and f"{e['er_vs_authentic']:.2f}" in md
    # the parent run carries the report as artifacts
    names = {a.path for a in client.list_artifacts(parent.info.run_id, "report")}
    assert "report/results.md" in names and "report/accuracy_per_arm.png" in names
    assert state["stages"]["report"]["status"] == "done"
    # the public sets go through the user-data code: the content-hash leak removal finds exactly the 216 official
    # test images the set's index marks identical to a training image, and 41 duplicates inside Training
    assert results["data"]["source"] == "public" and results["data"]["dropped_identical"] == {"validation": 41, "test": 216}
    assert "- Files identical in content to a file of an earlier split, removed: 41 from validation, 216 from test" in md
    assert results["counts"]["downstream_test"] == 1311 - 216


def test_mlflow_lineage(tiny_run):
    out = tiny_run
    client = _client(out)
    state = json.loads((out / "pipeline_state.json").read_text())
    parent_id = state["parent_run_id"]
    exp = client.get_experiment_by_name("synpriv_pipeline")
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent_id]
    stage_keys = [k for k in state["stages"] if k != "report"]
    assert sorted(r.data.tags["synpriv.stage"] for r in children) == sorted(stage_keys)
    assert all(r.info.status == "FINISHED" for r in children)
    assert len(runs) == len(children) + 1  # no stray run outside the parent's tree (every bundle logged in place)
    for r in children:  # and each bundle's own handler logged into its nested run
        if r.data.tags["synpriv.stage"] != "synthesis":
            assert r.data.metrics, r.data.tags["synpriv.stage"]
    synthesis = client.get_run(state["stages"]["synthesis"]["run_id"])
    assert {a.path for a in client.list_artifacts(synthesis.info.run_id, "datalist")} == {
        "datalist/paired_datalist.json"
    }
    translator_id = state["stages"]["translator_train"]["run_id"]
    assert client.get_run(translator_id).data.metrics  # the bundle's own handler logged the training into it
    paired = json.loads((out / "synthesis" / "privileged" / "paired_datalist.json").read_text())
    assert paired["translator"]["mlflow_run_id"] == translator_id
    for r in children:
        stage = r.data.tags["synpriv.stage"]
        if stage.startswith("ssl_") and r.data.tags.get("synpriv.pairs") == "synthetic":
            assert r.data.tags["synpriv.translator_run_id"] == translator_id, stage
            assert r.data.tags["synpriv.synthesis_run_id"] == state["stages"]["synthesis"]["run_id"]
        if stage.startswith("ssl_evaluate/") and "random_init" not in stage:
            arm, seed = stage.split("/")[1:]
            assert r.data.tags["synpriv.ssl_run_id"] == state["stages"][f"ssl_train/{arm}/{seed}"]["run_id"]
        if stage.startswith("ssl_train/"):
            assert client.get_run(r.info.run_id).data.params["variant"] == ARMS[stage.split("/")[1]].variant


def test_every_arm_gets_the_same_budget_and_the_overrides_arrive(tiny_run):
    out = tiny_run
    client = _client(out)
    state = json.loads((out / "pipeline_state.json").read_text())
    prof = load_profile("tiny")
    steps = prof["ssl_train"]["max_epochs"] * prof["ssl_train"]["epoch_length"]
    for key, st in state["stages"].items():
        if key.startswith("ssl_train/"):
            history = client.get_metric_history(st["run_id"], "train_loss")
            assert len(history) == steps, key  # one loss per optimisation step, the same count for every arm
            params = client.get_run(st["run_id"]).data.params
            assert params["override.batch_size"] == str(prof["ssl_train"]["batch_size"])
    # None-valued overrides reach the bundles too (monai.bundle.run drops plain None): no crop of the downstream set
    siamese_cfg = sorted((out / "ssl" / "siamese" / "seed0" / "train").glob("config_*.json"))[-1]
    assert json.loads(siamese_cfg.read_text())["crop_size"] == "$None"
    auth_cfg = sorted((out / "ssl" / "tridente_authentic" / "seed0" / "train").glob("config_*.json"))[-1]
    assert json.loads(auth_cfg.read_text())["crop_size"] == [192, 192]
    probe = json.loads((out / "ssl" / "siamese" / "seed0" / "evaluate" / "probes" / "probe_metrics.json").read_text())
    assert probe["num_train"] == prof["ssl_evaluate"]["max_train"]
    # synthetic images keep the downstream image's full grid (224 x 224, no crop-and-pad frame)
    from PIL import Image

    item = json.loads((out / "synthesis" / "privileged" / "paired_datalist.json").read_text())["training"][0]
    syn = Image.open(item["privileged"])
    assert syn.size == Image.open(item["image"]).size


def test_rerun_skips_finished_stages(tiny_run):
    out = tiny_run
    before = json.loads((out / "pipeline_state.json").read_text())
    results_before = json.loads((out / "report" / "results.json").read_text())
    proc = _run_cli(out)
    skipped = [ln for ln in proc.stdout.splitlines() if "skipped (outputs exist)" in ln]
    assert len(skipped) == len(before["stages"]) - 2  # all but prepare (re-checked) and the report (rebuilt)
    assert "prepare: up to date (datalists unchanged)" in proc.stdout
    after = json.loads((out / "pipeline_state.json").read_text())
    assert after["parent_run_id"] == before["parent_run_id"]
    for k, v in before["stages"].items():
        if k != "report":
            assert after["stages"][k]["run_id"] == v["run_id"], k
    assert json.loads((out / "report" / "results.json").read_text())["summary"] == results_before["summary"]


def test_changed_input_reruns_only_what_depends_on_it(tiny_run):
    import torch

    out = tiny_run
    model = out / "ssl" / "privileged_siamese_synthetic" / "seed1" / "models" / "model.pt"
    state = torch.load(model, weights_only=True)
    torch.save({k: (v * 0.5 if v.is_floating_point() else v) for k, v in state.items()}, model)
    before = json.loads((out / "pipeline_state.json").read_text())
    proc = _run_cli(out)
    rerun = [
        ln.split("] ")[1].split(":")[0] for ln in proc.stdout.splitlines() if "[pipeline]" in ln and "done in" in ln
    ]
    assert rerun == ["ssl_evaluate/privileged_siamese_synthetic/seed1", "report"], proc.stdout[-3000:]
    after = json.loads((out / "pipeline_state.json").read_text())
    key = "ssl_evaluate/privileged_siamese_synthetic/seed1"
    assert after["stages"][key]["run_id"] != before["stages"][key]["run_id"]  # a new MLflow run for the new result


def test_output_folder_of_another_profile_is_refused(tiny_run):
    prof = load_profile("tiny")
    prof["seeds"] = [0]
    with pytest.raises(PipelineError, match="another profile"):
        SynPrivPipeline(prof, tiny_run, data_root=DATA)


def test_profile_errors_name_the_key(tmp_path):
    with pytest.raises(FileNotFoundError, match="available"):
        load_profile("no_such_profile")
    base = load_profile("tiny")
    for change, msg in (
        ({"seedz": [0]}, "unknown key"),
        ({"arms": ["siamese", "tridente_imaginary"]}, "tridente_imaginary"),
        ({"seeds": []}, "seeds"),
        ({"seeds": [1, 1]}, "repeats"),
        ({"ssl_train": [1]}, "ssl_train"),
        ({"data": {"max_downstreem": 3}}, "max_downstreem"),
    ):
        with pytest.raises(ValueError, match=msg):
            load_profile({**base, **change})
    with pytest.raises(FileNotFoundError, match="multi-contrast"):
        SynPrivPipeline("tiny", tmp_path / "out", data_root=tmp_path)
    assert not (tmp_path / "out").exists()  # nothing written before the inputs are checked


def test_profile_overrides_reach_the_data_and_the_digest(tmp_path):
    assert parse_override("data.contrast_b=t2f") == ("data.contrast_b", "t2f")
    assert parse_override("seeds=[0, 1]") == ("seeds", [0, 1])
    assert parse_override("translator_train.checkpoint_saver#n_saved=null") == (
        "translator_train.checkpoint_saver#n_saved",
        None,
    )
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_override("data.contrast_b")
    for bad, msg in (({"seedz": [0]}, "seedz"), ({"seeds.first": 0}, "not a section")):
        with pytest.raises(ValueError, match=msg):
            load_profile("tiny", bad)
    flair = load_profile("tiny", {"data.contrast_b": "t2f", "seeds": [0]})
    assert flair["data"]["contrast_b"] == "t2f" and flair["seeds"] == [0]
    assert load_profile("tiny")["data"]["contrast_b"] == "t2w"  # the shipped profile is untouched
    # the command line's --set reaches the privileged datalist: FLAIR volumes instead of T2w
    out = tmp_path / "flair"
    argv = ["--profile", "tiny", "--output", str(out), "--data_root", str(DATA), "--until", "prepare"]
    assert pipeline_main([*argv, "--set", "data.contrast_b=t2f", "--no_progress"]) == 0
    images = [item["image"] for item in json.loads((out / "cache/datalists/privileged.json").read_text())["training"]]
    assert images and all("t2f" in Path(img).name for img in images), images[:3]
    # the override is part of the profile digest: the folder is not reused without it
    with pytest.raises(PipelineError, match="another profile"):
        SynPrivPipeline("tiny", out, data_root=DATA)


def test_summary_against_hand_computed_values():
    rows = []
    acc = {"siamese": [0.80, 0.90], "tridente_authentic": [0.85, 0.85], "tridente_synthetic": [0.95, 0.90]}
    for arm, vals in acc.items():
        for seed, a in enumerate(vals):
            rows.append(
                {
                    "arm": arm,
                    "seed": seed,
                    "probe": "linear",
                    "accuracy": a,
                    "balanced_accuracy": a - 0.1,
                    "error": 1 - a,
                }
            )
    s = summarize(rows, list(acc)[::-1], ["linear"])  # baselines listed last: still found
    t = s["tridente_synthetic"]["linear"]
    assert t["accuracy_mean"] == pytest.approx(0.925)
    assert t["accuracy_sd"] == pytest.approx(math.sqrt(2 * 0.025**2))  # sample s.d. of (0.95, 0.90)
    assert t["er_vs_single_modality"] == pytest.approx(0.15 / 0.075)  # (1 - 0.85) / (1 - 0.925)
    assert t["er_vs_authentic"] == pytest.approx(0.15 / 0.075)
    assert t["er_vs_single_modality_per_seed"] == pytest.approx([0.20 / 0.05, 0.10 / 0.10])
    assert "er_vs_authentic" not in s["tridente_authentic"]["linear"]
    assert "er_vs_single_modality" not in s["siamese"]["linear"]
    table = markdown_table(s, "linear")
    assert "| TriDeNT, synthetic pairs | 2 | 0.925 ± 0.035 |" in table
    assert "2.00 (1.00–4.00)" in table


def test_paired_comparisons_against_hand_computed_values():
    """Paired by seed: the t-interval of the per-seed differences (t_0.975,2 = 4.303), the geometric-mean error
    reduction, and an effect claimed only when the interval excludes zero."""
    from monai_synpriv.pipeline.report import compare_arms, comparison_table

    acc = {"siamese": [0.76, 0.77, 0.75], "random_init": [0.72, 0.72, 0.69], "tridente_synthetic": [0.80, 0.74, 0.79]}
    rows = [
        {"arm": arm, "seed": seed, "probe": "linear", "labels": tag, "accuracy": a + (0.0 if tag == "all" else -0.1)}
        for arm, vals in acc.items()
        for seed, a in enumerate(vals)
        for tag in ("all", "labels10pct")
    ]
    comps = compare_arms(rows, list(acc), ["linear"])
    assert {(c["arm"], c["baseline"], c["labels"]) for c in comps} == {
        (a, b, t) for a, b in (("siamese", "random_init"), ("tridente_synthetic", "siamese")) for t in ("all", "labels10pct")
    }
    pre = next(c for c in comps if c["arm"] == "siamese" and c["labels"] == "all")
    d = np.array([0.04, 0.05, 0.06])
    half = 4.302652729911275 * d.std(ddof=1) / math.sqrt(3)
    assert pre["diff_mean"] == pytest.approx(0.05)
    assert (pre["diff_ci_low"], pre["diff_ci_high"]) == pytest.approx((0.05 - half, 0.05 + half))
    ratios = np.array([0.28 / 0.24, 0.28 / 0.23, 0.31 / 0.25])
    assert pre["er"] == pytest.approx(float(np.exp(np.log(ratios).mean())))
    assert pre["verdict"] == "better"
    syn = next(c for c in comps if c["arm"] == "tridente_synthetic" and c["labels"] == "all")
    assert syn["diff_ci_low"] < 0 < syn["diff_ci_high"] and syn["verdict"] == "no effect shown"
    table = comparison_table(comps, "labels10pct")
    assert "| pre-training vs random init | Siamese (single modality) vs Random init (no pre-training) | linear | 3 | +0.050 [" in table
    assert "no effect shown" in table and table.count("\n") == 4


def test_pretraining_check_passes_only_beyond_two_seed_sds():
    """Siamese must beat random init by more than twice the larger seed s.d.; one seed leaves it undecided."""
    from monai_synpriv.pipeline.report import pretraining_check, pretraining_check_section, summarize

    def rows(siamese, random_init):
        return [
            {"arm": arm, "seed": s, "probe": "linear", "accuracy": a, "balanced_accuracy": a, "error": 1 - a}
            for arm, vals in (("siamese", siamese), ("random_init", random_init))
            for s, a in enumerate(vals)
        ]

    arms = ["siamese", "random_init"]
    ok = pretraining_check({"all": summarize(rows([0.82, 0.83, 0.84], [0.76, 0.75, 0.77]), arms, ["linear"])}, ["linear"])
    assert len(ok) == 1 and ok[0]["passed"] is True
    assert ok[0]["diff"] == pytest.approx(0.07) and ok[0]["threshold"] == pytest.approx(0.02)
    assert ok[0]["er"] == pytest.approx(0.24 / 0.17)
    # a mean gain of 0.03 within seed noise of s.d. 0.03: not passed
    noisy = pretraining_check({"all": summarize(rows([0.80, 0.77, 0.83], [0.76, 0.75, 0.77]), arms, ["linear"])}, ["linear"])
    assert noisy[0]["passed"] is False
    one = pretraining_check({"all": summarize(rows([0.9], [0.7]), arms, ["linear"])}, ["linear"])
    assert one[0]["passed"] is None
    md = "\n".join(pretraining_check_section(noisy, {"all": "all labels"}))
    assert "**failed**" in md and "more steps" in md and "| all labels | linear | 0.800 | 0.760 | +0.040 | 0.060 |" in md
    assert "Run at least 2 seeds" in "\n".join(pretraining_check_section(one, {"all": "all labels"}))
    # the headline is the linear probe even when another probe comes first
    knn_first = pretraining_check(
        {"all": summarize([{**r, "probe": "knn", "accuracy": 0.5} for r in rows([0.82] * 3, [0.76] * 3)]
                          + rows([0.82, 0.83, 0.84], [0.76, 0.75, 0.77]), arms, ["knn", "linear"])}, ["knn", "linear"]
    )  # fmt: skip
    assert "(linear probe, all labels)" in "\n".join(pretraining_check_section(knn_first, {"all": "all labels"}))


def test_label_subsets_are_stratified_and_shared():
    from monai_synpriv.handlers.probe_evaluation import fraction_tag, label_subset

    labels = np.repeat([0, 1, 2, 3], [400, 300, 200, 100])
    sub = label_subset(labels, 0.01, seed=0)
    assert np.bincount(labels[sub]).tolist() == [4, 3, 2, 1]
    assert np.array_equal(sub, label_subset(labels.copy(), 0.01, seed=0))  # same labels, same subset
    assert not np.array_equal(sub, label_subset(labels, 0.01, seed=1))
    assert set(label_subset(labels, 0.001)) and np.bincount(labels[label_subset(labels, 0.001)]).min() == 1
    assert [fraction_tag(f) for f in (0.01, 0.1, 0.005)] == ["labels1pct", "labels10pct", "labels0.5pct"]


@pytest.mark.parametrize("name", sorted(p.stem for p in (REPO / "configs" / "pipeline").glob("*.json")))
def test_every_shipped_profile_names_only_real_bundle_keys(name):
    """The profiles no CPU run reaches (full, gpu_check) are checked like the ones that run: every override key of
    every section is an id of the bundle configs it goes to (a typo would be a silent no-op on the GPU)."""
    from monai_synpriv.bundle_checks import check_override_keys
    from monai_synpriv.pipeline.runner import _SECTION_CONFIGS, section_config_files

    profile = load_profile(name)
    folder = REPO / "bundles"
    checked = 0
    for section in _SECTION_CONFIGS:
        bundle, groups = section_config_files(profile, section)
        for group in groups if profile[section] else ():
            files = [folder / bundle / "configs" / f for f in group]
            check_override_keys([str(f) for f in files], profile[section], origin=f"{name}:{section}")
            checked += 1
    assert checked >= 4


def test_fidelity_vs_gain_reruns_the_synthetic_arm_with_an_earlier_translator(tiny_run, capsys):
    """Fidelity against gain on the tiny run: the generator of translator epoch 1 is exported from its training
    checkpoint, the synthetic arm is re-run with it (``translator_weights``), and each translator's point pairs the arm
    with the run's Siamese arm by seed. The final point equals the report's own comparison. Bad requests fail first."""
    import torch

    from monai_synpriv.pipeline.fidelity import run_fidelity

    with pytest.raises(FileNotFoundError, match=r"epoch\(s\) \[7\].*available: \[1, 2\]"):
        run_fidelity(tiny_run, [7])
    with pytest.raises(ValueError, match="synthetic-pairs arm"):
        run_fidelity(tiny_run, [1], arm="siamese")
    with pytest.raises(ValueError, match="epoch 2 is the run's final translator"):
        run_fidelity(tiny_run, [1, 2])
    assert not (tiny_run / "fidelity").exists()

    md = run_fidelity(tiny_run, [1], progress=False)
    res = json.loads((tiny_run / "fidelity" / "fidelity_vs_gain.json").read_text())
    assert {r["translator"] for r in res["rows"]} == {"epoch 1", "final"}
    # the re-run used epoch 1's generator, which is not the final one
    models = tiny_run / "translator" / "models"
    used = torch.load(tiny_run / "fidelity" / "epoch1" / "translator" / "models" / "model.pt", weights_only=True)
    epoch1 = torch.load(models / "checkpoint_epoch=1.pt", weights_only=True)["g_ab"]
    final = torch.load(models / "model.pt", weights_only=True)
    assert used.keys() == epoch1.keys() and all(torch.equal(used[k], epoch1[k]) for k in used)
    assert any(not torch.equal(used[k], final[k]) for k in used)

    def row(name, labels="all"):
        return next(r for r in res["rows"] if r["translator"] == name and r["probe"] == "linear" and r["labels"] == labels)

    report = json.loads((tiny_run / "report" / "results.json").read_text())
    ref = next(c for c in report["comparisons"] if (c["arm"], c["baseline"], c["probe"], c["labels"]) == (
        "tridente_synthetic", "siamese", "linear", "all"))  # fmt: skip
    assert row("final")["er"] == pytest.approx(ref["er"]) and row("final")["diff_mean"] == pytest.approx(ref["diff_mean"])
    assert row("final")["ssim"] == pytest.approx(report["translation"]["metrics"]["ssim"])
    # epoch 1's point: the re-run's accuracies against the run's Siamese accuracies, seed by seed
    sub = json.loads((tiny_run / "fidelity" / "epoch1" / "report" / "results.json").read_text())
    acc = {r["seed"]: r["accuracy"] for r in sub["per_seed"] if r["probe"] == "linear"}
    base = {r["seed"]: r["accuracy"] for r in report["per_seed"] if r["probe"] == "linear" and r["arm"] == "siamese"}
    assert sub["arms"] == ["tridente_synthetic"] and sorted(acc) == [0, 1]
    assert row("epoch 1")["diff_mean"] == pytest.approx(np.mean([acc[s] - base[s] for s in (0, 1)]))
    assert row("epoch 1")["ssim"] == pytest.approx(sub["translation"]["metrics"]["ssim"])
    assert row("epoch 1", "labels10pct")["seeds"] == [0, 1]
    assert "| epoch 1 |" in md.read_text() and (tiny_run / "fidelity" / "fidelity_vs_gain_linear.png").is_file()
    state = json.loads((tiny_run / "pipeline_state.json").read_text())
    pm = _client(tiny_run).get_run(state["parent_run_id"]).data.metrics
    assert pm["fidelity/epoch1/linear_all/er"] == pytest.approx(row("epoch 1")["er"])
    # the parent run gets the summary, not the re-runs' data
    logged = {a.path for a in _client(tiny_run).list_artifacts(state["parent_run_id"], "fidelity")}
    assert logged == {f"fidelity/{n}" for n in ("fidelity_vs_gain.json", "fidelity_vs_gain.md", *(
        f"fidelity_vs_gain_{p}.png" for p in report["probes"]))}  # fmt: skip
    # a second call re-exports identical bytes and re-runs nothing
    exported = tiny_run / "fidelity" / "epoch1" / "translator_weights" / "model.pt"
    mtime = exported.stat().st_mtime_ns
    run_fidelity(tiny_run, [1], progress=False)
    assert exported.stat().st_mtime_ns == mtime
    out = capsys.readouterr().out
    assert "ssl_train/tridente_synthetic/seed0: skipped (outputs exist)" in out
    assert "translator_train: skipped (outputs exist)" in out and "synthesis: skipped (outputs exist)" in out

    # a second translator (CUT), trained by a run of the same profile that stops after its translator: its final
    # epoch is a point of its own, paired with the first run's Siamese arm
    other = tiny_run.parent / "tiny_cut"
    epoch1_diff = row("epoch 1")["diff_mean"]
    with pytest.raises(FileNotFoundError, match="--until translator_evaluate"):
        run_fidelity(tiny_run, [], translator_run=other, translator_epochs=[2])
    SynPrivPipeline("tiny", other, data_root=DATA, progress=False, until="translator_evaluate",
                    overrides={"translator_method": "cut"}).run()  # fmt: skip
    # a translator run of another seed list (its recorded state is what the check reads; no second training)
    mismatched = tiny_run.parent / "tiny_cut_one_seed"
    mismatched.mkdir()
    recorded = json.loads((other / "pipeline_state.json").read_text())
    recorded["profile"]["seeds"] = [0]
    (mismatched / "pipeline_state.json").write_text(json.dumps(recorded))
    with pytest.raises(ValueError, match=r"differs from the run in \['seeds'\]"):
        run_fidelity(tiny_run, [], translator_run=mismatched, translator_epochs=[2])
    with pytest.raises(FileNotFoundError, match=r"epoch\(s\) \[5\]"):
        run_fidelity(tiny_run, [1], translator_run=other, translator_epochs=[5])
    with pytest.raises(ValueError, match="no translator"):
        run_fidelity(tiny_run, [])
    md = run_fidelity(tiny_run, [1], progress=False, translator_run=other, translator_epochs=[2])
    res = json.loads((tiny_run / "fidelity" / "fidelity_vs_gain.json").read_text())
    assert {r["translator"] for r in res["rows"]} == {"epoch 1", "final", "tiny_cut epoch 2"}
    used = torch.load(tiny_run / "fidelity" / "tiny_cut_epoch2" / "translator" / "models" / "model.pt", weights_only=True)
    cut = torch.load(other / "translator" / "models" / "checkpoint_epoch=2.pt", weights_only=True)["generator"]
    assert used.keys() == cut.keys() and all(torch.equal(used[k], cut[k]) for k in used)
    cut_sub = json.loads((tiny_run / "fidelity" / "tiny_cut_epoch2" / "report" / "results.json").read_text())
    acc = {r["seed"]: r["accuracy"] for r in cut_sub["per_seed"] if r["probe"] == "linear"}
    assert row("tiny_cut epoch 2")["diff_mean"] == pytest.approx(np.mean([acc[s] - base[s] for s in (0, 1)]))
    assert row("epoch 1")["diff_mean"] == pytest.approx(epoch1_diff)  # the run's own points are unchanged
    assert "| tiny_cut epoch 2 |" in md.read_text()


def test_generator_export_reads_the_methods_key_and_is_byte_stable(tmp_path):
    """CUT/FastCUT checkpoints hold the generator under ``generator``, CycleGAN's under ``g_ab``; the export's bytes
    depend only on the tensors, so exporting twice leaves the file (and the pipeline's fingerprint) unchanged."""
    import torch

    from monai_synpriv.pipeline.fidelity import GENERATOR_KEYS, export_generator

    assert GENERATOR_KEYS == {"cyclegan": "g_ab", "cut": "generator", "fastcut": "generator"}
    weights = {"conv.weight": torch.arange(6.0).reshape(2, 3)}
    torch.save({"generator": weights, "discriminator": {}, "trainer": {"epoch": 3}}, tmp_path / "checkpoint_epoch=3.pt")
    out = export_generator(tmp_path / "checkpoint_epoch=3.pt", tmp_path / "a" / "model.pt", key="generator")
    assert torch.equal(torch.load(out, weights_only=True)["conv.weight"], weights["conv.weight"])
    first = out.read_bytes()
    export_generator(tmp_path / "checkpoint_epoch=3.pt", tmp_path / "b" / "model.pt", key="generator")
    assert (tmp_path / "b" / "model.pt").read_bytes() == first
    with pytest.raises(KeyError, match="holds no 'g_ab'.*discriminator"):
        export_generator(tmp_path / "checkpoint_epoch=3.pt", tmp_path / "c.pt", key="g_ab")


def test_missing_translator_weights_fail_before_any_work(tmp_path):
    from monai_synpriv.pipeline import SynPrivPipeline

    require(DATA / "mri_brain_multicontrast")
    with pytest.raises(FileNotFoundError, match=r"translator_weights .*nope\.pt is not a file"):
        SynPrivPipeline("tiny", tmp_path / "out", data_root=DATA, translator_weights=tmp_path / "nope.pt")
    assert not (tmp_path / "out").exists()
