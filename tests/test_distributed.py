"""Distributed data parallel with torchrun: 2 gloo processes on CPU, through each bundle's multi_gpu_train.json."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest
import torch
from conftest import DATA, REPO, require

#: the CPU wheel this project installs ships gloo; a build without torch.distributed must fail here, not skip
assert torch.distributed.is_available(), "torch.distributed is not available in this torch build (needs gloo)"

SMALL = {
    "multimodal_ssl": ["--depth", "10", "--projector_dims", "[32,32]", "--image_size", "[32,32]"]
    + ["--load_size", "[36,36]", "--batch_size", "8", "--max_epochs", "2", "--epoch_length", "3", "--max_items", "64"],
    "unpaired_translator": ["--image_size", "[32,32]", "--ngf", "8", "--ndf", "8", "--num_res_blocks", "2"]
    + [
        "--batch_size",
        "2",
        "--epochs_constant",
        "1",
        "--epochs_decay",
        "1",
        "--epoch_length",
        "3",
        "--max_items",
        "32",
    ],
}
SMALL["contrastive_ae_clustering"] = ["--batch_size", "8", "--max_epochs", "2", "--epoch_length", "3"]
SMALL["contrastive_ae_clustering"] += ["--max_items", "64", "--channels", "[8,16,16]"]
SMALL["pix2pix"] = SMALL["unpaired_translator"][:4] + ["--num_downs", "5", "--batch_size", "2"]
SMALL["pix2pix"] += ["--epochs_constant", "1", "--epochs_decay", "1", "--epoch_length", "3", "--max_items", "32"]
SMALL["cut"] = SMALL["unpaired_translator"] + ["--num_patches", "32"]
LOSS = {
    "cut": "epoch_loss_g",
    "multimodal_ssl": "epoch_loss",
    "unpaired_translator": "epoch_loss_g",
    "pix2pix": "epoch_loss_g",
    "contrastive_ae_clustering": "epoch_loss",
}
CONFIGS = {
    "cut": "['configs/train.json','configs/train_cut.json','configs/multi_gpu_train.json',"
    "'configs/multi_gpu_train_cut.json']",
    "multimodal_ssl": "['configs/train.json','configs/multi_gpu_train.json']",
    "unpaired_translator": "['configs/train.json','configs/multi_gpu_train.json']",
    "contrastive_ae_clustering": "['configs/train.json','configs/multi_gpu_train.json']",
    "pix2pix": "['configs/train.json','configs/train_pix2pix.json','configs/multi_gpu_train.json',"
    "'configs/multi_gpu_train_pix2pix.json']",
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("name", ["multimodal_ssl", "unpaired_translator", "pix2pix", "cut", "contrastive_ae_clustering"])
def test_two_process_gloo_run(tmp_path, request, name):
    import mlflow

    root = REPO / "bundles" / ("unpaired_translator" if name in ("pix2pix", "cut") else name)
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    env.pop("MLFLOW_TRACKING_URI", None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={_free_port()}"]
    cmd += ["-m", "monai.bundle", "run", "--config_file", CONFIGS[name]]
    if name == "contrastive_ae_clustering":  # BreastMNIST
        data = ["--data_root", str(require(DATA / "medmnist" / "breastmnist.npz").parents[1])]
    else:  # only the multi-contrast bundles ask for (and may fail on) the multi-contrast set
        data = ["--dataset_dir", str(request.getfixturevalue("multicontrast_dir"))]
    cmd += ["--bundle_root", ".", *data, "--cache_dir", str(tmp_path / "cache")]
    cmd += ["--ckpt_dir", str(tmp_path / "models"), "--output_dir", f"$'{tmp_path / 'out'}'", *SMALL[name]]
    cmd += ["--tracking", "configs/mlflow_tracking.json", "--experiment_name", "ddp", "--run_name", "ddp_run"]
    proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]

    report = json.loads((tmp_path / "out" / "replica_report.json").read_text())
    assert report["world_size"] == 2
    assert report["max_abs_param_diff"] == 0.0  # every replica ends with the same weights
    losses = [m[LOSS[name]] for m in report["metrics_per_rank"]]
    assert losses[0] == losses[1]  # the epoch loss is reduced across ranks

    # rank 0 alone wrote the exported model, without the DDP "module." prefix, and one MLflow run
    state = torch.load(tmp_path / "models" / "model.pt", weights_only=True)
    assert state and not any(k.startswith("module.") for k in state)
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'out' / 'mlruns.db'}")
    runs = client.search_runs([client.get_experiment_by_name("ddp").experiment_id])
    assert len(runs) == 1 and runs[0].data.metrics[LOSS[name]] == pytest.approx(losses[0])
    ckpt = torch.load(tmp_path / "models" / "checkpoint_epoch=2.pt", weights_only=True)
    assert ckpt["trainer"]["iteration"] == 2 * 3  # 3 steps per epoch on each rank, 2 epochs


def test_two_process_gloo_run_mae_pretraining(tmp_path):
    """The MAE bundle under torchrun: MaskedAutoEncoderViT needs DDP's find_unused_parameters (set by its
    multi_gpu_train.json); both replicas end identical and rank 0 exports the plain state dict."""
    root = REPO / "bundles" / "mae_pretraining"
    data_root = require(DATA / "medmnist" / "breastmnist.npz").parents[1]
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    env.pop("MLFLOW_TRACKING_URI", None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={_free_port()}"]
    cmd += ["-m", "monai.bundle", "run", "--config_file", "['configs/train.json','configs/multi_gpu_train.json']"]
    cmd += ["--bundle_root", ".", "--data_root", str(data_root), "--cache_dir", str(tmp_path / "cache")]
    cmd += ["--ckpt_dir", str(tmp_path / "models"), "--output_dir", f"$'{tmp_path / 'out'}'"]
    cmd += ["--batch_size", "8", "--max_epochs", "2", "--epoch_length", "3", "--max_items", "64"]
    cmd += ["--hidden_size", "48", "--mlp_dim", "96", "--num_layers", "2", "--decoder_hidden_size", "24"]
    cmd += ["--decoder_mlp_dim", "48", "--decoder_num_layers", "1"]
    proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    report = json.loads((tmp_path / "out" / "replica_report.json").read_text())
    assert report["world_size"] == 2 and report["max_abs_param_diff"] == 0.0
    state = torch.load(tmp_path / "models" / "model.pt", weights_only=True)
    assert "cls_token" in state and not any(k.startswith("module.") for k in state)
    ckpt = torch.load(tmp_path / "models" / "checkpoint_epoch=2.pt", weights_only=True)
    assert ckpt["trainer"]["iteration"] == 2 * 3
