"""The pipeline's stage list as data: every input of a stage is written by an earlier one, stages without their data
are left out, and the report depends on the run layout only (no import of the runner or the CLI)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from conftest import DATA, require

from monai_synpriv.pipeline import STAGES, RunLayout, SynPrivPipeline, load_profile


def _check_dag(pipe: SynPrivPipeline) -> list[str]:
    written: set = set()
    keys = []
    for st in pipe.plan():
        missing = [p for p in st.inputs if p not in written]
        assert not missing, f"{st.key} reads {missing}, which no earlier stage writes"
        assert st.group in STAGES
        written |= set(st.outputs)
        keys.append(st.key)
    assert len(set(keys)) == len(keys)
    return keys


def test_public_plan_is_a_dag_over_the_layout(tmp_path):
    require(DATA / "brain_tumor_mri_4class" / "brain_tumor_mri_224.tar")
    pipe = SynPrivPipeline("tiny", tmp_path / "out", data_root=DATA, progress=False)
    keys = _check_dag(pipe)
    assert keys[:4] == ["prepare", "translator_train", "translator_evaluate", "synthesis"] and keys[-1] == "report"
    lay = RunLayout(tmp_path / "out")
    by_key = {st.key: st for st in pipe.plan()}
    assert by_key["translator_train"].outputs == (lay.translator_model,)
    assert by_key["synthesis"].inputs == (lay.translator_model, lay.datalist("downstream"))
    arm, seed = pipe.arms[-1].name, pipe.seeds[-1]
    assert by_key[f"ssl_evaluate/{arm}/seed{seed}"].outputs == (lay.probe_metrics(arm, seed),)
    n_ssl = len(pipe.seeds) * (2 * len(pipe.arms) + int(pipe.profile["random_init_baseline"]))
    assert sum(k.startswith("ssl_") for k in keys) == n_ssl
    with pytest.raises(KeyError, match="unknown datalist 'labels'"):
        lay.datalist("labels")


def test_plan_leaves_out_stages_without_their_data(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "labels.csv").write_text("image,label\n")
    (tmp_path / "t2w").mkdir()
    profile = {
        **{k: v for k, v in load_profile("tiny").items() if k != "name"},
        "name": "site",
        "arms": ["siamese", "privileged_siamese_authentic", "privileged_siamese_synthetic"],
        "data": {
            "downstream": {"folder": "images", "labels_csv": "labels.csv"},
            "privileged": {"folder": "t2w"},
        },
    }
    pipe = SynPrivPipeline(profile, tmp_path / "out", data_root=tmp_path, progress=False)
    keys = _check_dag(pipe)
    assert "translator_evaluate" not in keys
    assert not [k for k in keys if "authentic" in k]
    assert pipe.arms_not_run == ["privileged_siamese_authentic"]


def test_report_module_imports_neither_the_runner_nor_the_cli():
    """The report reads a run through :class:`RunLayout` and the state: no import cycle with the runner."""
    import monai_synpriv.pipeline.report as report

    tree = ast.parse(Path(report.__file__).read_text())
    imported = {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    imported |= {a.name for node in ast.walk(tree) if isinstance(node, ast.Import) for a in node.names}
    assert "layout" in imported
    assert not [m for m in imported if m.split(".")[-1] in ("runner", "cli")], imported


def test_profile_override_typo_is_refused_before_any_work(tmp_path):
    profile = load_profile("tiny")
    profile["ssl_train"]["max_epoch"] = 1
    with pytest.raises(ValueError, match=r"section 'ssl_train': max_epoch \(did you mean max_epochs\?\)"):
        SynPrivPipeline(profile, tmp_path / "out", data_root=DATA, progress=False)
    assert not (tmp_path / "out").exists()
    profile = load_profile("tiny")
    profile["translator_evaluate"]["baseline_methods"] = ["linear"]  # an id of evaluate.json's base inference.json?
    profile["translator_evaluate"] = {"contrast_b_key": "B"}  # an id of inference.json, which evaluate.json extends
    SynPrivPipeline(profile, tmp_path / "out2", data_root=DATA, progress=False)
