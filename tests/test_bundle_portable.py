"""A bundle copied alone out of this repository (as model-zoo and a hospital receive it) still runs: with no data
path it stops at start-up naming the override to pass; given the data it trains and translates, writing nothing
outside its own folder and the folders it was given."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import DATA, REPO, require

TINY = ["--ngf", "4", "--num_res_blocks", "1", "--image_size", "[32,32]"]


def _run(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("SYNPRIV_DATA", "MLFLOW_TRACKING_URI")}
    env["PYTHONUNBUFFERED"] = "1"
    return subprocess.run(
        [sys.executable, "-m", "monai.bundle", "run", "--bundle_root", ".", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=600,
    )


def test_translator_bundle_runs_when_copied_alone(tmp_path):
    data = require(DATA / "mri_brain_multicontrast")
    copy = tmp_path / "site" / "unpaired_translator"
    shutil.copytree(REPO / "bundles" / "unpaired_translator", copy, ignore=shutil.ignore_patterns("*.pt", "cache"))
    before = set(tmp_path.rglob("*"))

    missing = _run(copy, "--config_file", "configs/train.json", *TINY)
    assert missing.returncode != 0
    last = missing.stderr.strip().splitlines()[-1]
    assert "dataset_dir" in last and "--dataset_dir" in last, last  # the last line names the override to pass
    assert set(tmp_path.rglob("*")) == before  # refused before any work: nothing written

    train = _run(
        copy, "--config_file", "configs/train.json", *TINY, "--dataset_dir", str(data), "--max_items", "8", "--ndf", "4",
        "--epochs_constant", "1", "--epochs_decay", "0",
    )
    assert train.returncode == 0, train.stderr[-4000:]
    assert (copy / "models" / "model.pt").is_file()
    assert json.loads((copy / "models" / "model.network.json").read_text())["architecture"]["ngf"] == 4
    wrong = _run(  # weights of another architecture: refused by name before anything is written
        copy, "--config_file", "configs/inference.json", "--ngf", "8", *TINY[2:], "--dataset_dir", str(data),
        "--output_dir", f"$'{tmp_path / 'wrong'}'",
    )
    assert wrong.returncode != 0 and "Pass --ngf 4 " in wrong.stderr.strip().splitlines()[-1], wrong.stderr[-2000:]
    assert not (tmp_path / "wrong").exists()
    infer = _run(
        copy, "--config_file", "configs/inference.json", *TINY, "--dataset_dir", str(data), "--max_items", "2",
        "--output_dir", f"$'{tmp_path / 'out'}'",
    )
    assert infer.returncode == 0, infer.stderr[-4000:]
    written = sorted(p for p in (tmp_path / "out").rglob("*.nii.gz"))
    assert len(written) == 2
    # nothing landed outside the copy and the output folder (no ../../../shared, no ./mlruns of another folder)
    new = set(tmp_path.rglob("*")) - before
    outside = [p for p in new if copy not in p.parents and tmp_path / "out" not in p.parents]
    assert outside == [tmp_path / "out"], outside
