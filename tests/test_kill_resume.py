"""SIGKILL during training, then resume: the run ends with the planned epochs and every checkpoint loads."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import DATA, REPO, bundle, require

SSL = REPO / "bundles" / "multimodal_ssl"
TRANSLATOR = REPO / "bundles" / "unpaired_translator"
CLUSTERING = REPO / "bundles" / "contrastive_ae_clustering"


def _start(args: list[str], cwd: Path) -> subprocess.Popen:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.Popen(
        [sys.executable, "-m", "monai.bundle", "run", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _kill_after_first_checkpoint(proc: subprocess.Popen, ckpt_dir: Path, timeout: float = 300) -> None:
    t0 = time.time()
    while not list(ckpt_dir.glob("checkpoint_epoch=*.pt")):
        if proc.poll() is not None:
            raise AssertionError(f"training ended before the first checkpoint:\n{proc.stderr.read()[-4000:]}")
        if time.time() - t0 > timeout:
            proc.kill()
            raise AssertionError("no checkpoint within the time limit")
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL


def _check_all_loadable(ckpt_dir: Path) -> None:
    for p in ckpt_dir.glob("*.pt"):  # a truncated file would raise here
        torch.load(p, weights_only=True, map_location="cpu")


@pytest.mark.parametrize(
    "name, root, args, max_epochs",
    [
        (
            "ssl",
            SSL,
            ["--depth", "10", "--projector_dims", "[32,32]", "--image_size", "[32,32]", "--load_size", "[36,36]"]
            + ["--batch_size", "8", "--epoch_length", "3", "--max_items", "64"],
            4,
        ),
        (
            "translator",
            TRANSLATOR,
            ["--image_size", "[32,32]", "--ngf", "8", "--ndf", "8", "--num_res_blocks", "2", "--batch_size", "2"]
            + ["--epoch_length", "3", "--max_items", "32", "--epochs_decay", "2"],
            4,
        ),
        (
            "clustering",
            CLUSTERING,
            ["--channels", "[8,16,16]", "--batch_size", "8", "--epoch_length", "3", "--max_items", "64"],
            4,
        ),
    ],
)
def test_sigkill_then_resume(tmp_path, multicontrast_dir, name, root, args, max_epochs):
    ckpt = tmp_path / "models"
    common = ["--config_file", "configs/train.json", "--bundle_root", ".", "--ckpt_dir", str(ckpt)]
    common += ["--cache_dir", str(tmp_path / "cache"), "--output_dir", str(tmp_path / "out"), *args]
    if name == "clustering":  # BreastMNIST
        common += ["--data_root", str(require(DATA / "medmnist" / "breastmnist.npz").parents[1])]
    else:
        common += ["--dataset_dir", str(multicontrast_dir)]
    if name == "translator":
        common += ["--epochs_constant", str(max_epochs - 2)]
    else:
        common += ["--max_epochs", str(max_epochs)]
    proc = _start(common, root)
    _kill_after_first_checkpoint(proc, ckpt)
    assert not (ckpt / "model.pt").exists()  # it really stopped before the end
    _check_all_loadable(ckpt)

    bundle("run", *common, "--resume", "True", cwd=root)
    _check_all_loadable(ckpt)
    latest = max(ckpt.glob("checkpoint_epoch=*.pt"), key=lambda p: int(p.stem.split("=")[1]))
    assert latest.name == f"checkpoint_epoch={max_epochs}.pt"
    state = torch.load(latest, weights_only=True, map_location="cpu")
    assert state["trainer"]["max_epochs"] == max_epochs
    assert state["trainer"]["iteration"] == max_epochs * 3  # every epoch ran its 3 steps, none twice
    assert (ckpt / "model.pt").is_file()
    leftovers = [p.name for p in ckpt.iterdir() if p.name.startswith(".")]
    assert all(n.endswith(".pt") for n in leftovers)  # at most a hidden temporary file of the killed save
