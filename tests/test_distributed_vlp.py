"""The vision-language bundles under torchrun: 2 gloo processes on CPU through each bundle's multi_gpu_train.json, on
real MedPix pairs with tiny settings (those of test_bundle_vlp.py). ConVIRT pre-training (DualEncoder, scratch text
encoder) and the caption-conditioned diffusion UNet each end with identical replicas and the same reduced epoch loss on
both ranks, each rank trains on its half of the pairs, and rank 0 alone writes the checkpoints (without DDP's
``module.`` prefix), the tokenizer and one MLflow run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import DATA, REPO, minilm_package, require
from test_distributed import _free_port

MEDPIX = DATA / "medpix2_subset"
IU_REPORTS = DATA / "iu_xray_reports" / "indiana_reports.csv"
CONFIGS = "['configs/train.json','configs/multi_gpu_train.json']"
#: 16 pairs, 8 per rank, batch 4 per rank: 2 steps per epoch on each rank, 2 epochs
PAIRS, BATCH, EPOCHS = 16, 4, 2
#: test_bundle_vlp.py's TINY_VLP: ResNet-18 at 32 px, a 1-layer scratch text encoder, 32-d joint space
TINY_VLP = ["--image_size", "32", "--embed_dim", "32", "--text_encoder_kind", "scratch", "--text_hidden_size", "32"]
TINY_VLP += ["--text_num_layers", "1", "--text_max_length", "64", "--scratch_vocab_size", "1000"]
#: test_bundle_vlp.py's slim diffusion UNet (Python-style booleans: the CLI would keep `false` as a string)
TINY_T2I = ["--channels", "[16,32]", "--attention_levels", "[False,True]", "--num_res_blocks", "1"]
TINY_T2I += ["--norm_num_groups", "8", "--num_head_channels", "16", "--image_size", "32"]


def _torchrun(root: Path, tmp_path: Path, *overrides: str) -> subprocess.CompletedProcess:
    """Train the bundle at ``root`` with 2 gloo processes (MLflow in SQLite under the output folder); returns the run,
    which must succeed."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    env.pop("MLFLOW_TRACKING_URI", None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={_free_port()}"]
    cmd += ["-m", "monai.bundle", "run", "--config_file", CONFIGS, "--bundle_root", ".", "--data_root", str(DATA)]
    cmd += ["--cache_dir", str(tmp_path / "cache"), "--ckpt_dir", str(tmp_path / "models")]
    cmd += ["--output_dir", f"$'{tmp_path / 'out'}'", "--max_items", str(PAIRS), "--batch_size", str(BATCH)]
    cmd += ["--max_epochs", str(EPOCHS), "--save_interval", str(EPOCHS), *overrides]
    cmd += ["--tracking", "configs/mlflow_tracking.json", "--experiment_name", "ddp", "--run_name", "ddp_run"]
    proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    return proc


def _check_replicas_and_outputs(tmp_path: Path) -> dict[str, torch.Tensor]:
    """What both bundles promise under torchrun; returns the final checkpoint's network state."""
    import mlflow

    report = json.loads((tmp_path / "out" / "replica_report.json").read_text())
    assert report["world_size"] == 2 and len(report["metrics_per_rank"]) == 2  # both ranks ran to the end
    assert report["max_abs_param_diff"] == 0.0  # every replica ends with the same weights
    assert report["param_checksums"][0] == report["param_checksums"][1]
    losses = [m["epoch_loss"] for m in report["metrics_per_rank"]]
    assert losses[0] == losses[1]  # the epoch loss is reduced across ranks

    # each rank trained on its half of the pairs (DistributedSampler): PAIRS / 2 / BATCH steps per epoch
    ckpt = torch.load(tmp_path / "models" / f"checkpoint_epoch={EPOCHS}.pt", weights_only=True)
    assert ckpt["trainer"]["iteration"] == EPOCHS * PAIRS // 2 // BATCH
    assert not any(k.startswith("module.") for k in ckpt["network"])
    # rank 0 alone wrote: atomic writes leave no temporary file behind, and there is one MLflow run
    assert not [p.name for p in (tmp_path / "models").iterdir() if p.name.startswith(".")]
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'out' / 'mlruns.db'}")
    runs = client.search_runs([client.get_experiment_by_name("ddp").experiment_id])
    assert len(runs) == 1 and runs[0].data.metrics["epoch_loss"] == pytest.approx(losses[0])
    return ckpt["network"]


def test_two_process_gloo_run_vision_language_pretraining(tmp_path):
    """ConVIRT: the DualEncoder in DDP (the trainer reads the temperature through the wrapper); rank 0 fits the scratch
    WordPiece once and rank 1 reads the same tokenizer.json; dual_encoder.pt and its image tower model.pt are the
    plain modules."""
    require(MEDPIX)
    require(IU_REPORTS)
    proc = _torchrun(REPO / "bundles" / "vision_language_pretraining", tmp_path, *TINY_VLP)
    network = _check_replicas_and_outputs(tmp_path)

    # one WordPiece fit in the whole run: without the overlay's tokenizer hand-over each rank fits its own
    assert (proc.stdout + proc.stderr).count("-token WordPiece on") == 1
    models = tmp_path / "models"
    assert {"dual_encoder.pt", "model.pt", "model.network.json", "tokenizer.json"} <= {p.name for p in models.iterdir()}
    dual = torch.load(models / "dual_encoder.pt", weights_only=True)
    assert dual.keys() == network.keys() and all(torch.equal(dual[k], network[k]) for k in dual)
    assert dual["image_projection.net.2.weight"].shape == (32, 512)  # the DualEncoder itself, not its wrapper
    encoder = torch.load(models / "model.pt", weights_only=True)
    tower = {k.removeprefix("image_encoder."): v for k, v in dual.items() if k.startswith("image_encoder.")}
    assert encoder.keys() == tower.keys() and all(torch.equal(encoder[k], tower[k]) for k in encoder)


def test_two_process_gloo_run_text_to_image_diffusion(tmp_path):
    """The caption-conditioned DiffusionModelUNet in DDP (the frozen MiniLM conditioner on each rank); model.pt is the
    plain UNet, equal to the final checkpoint's."""
    minilm_package()
    require(MEDPIX)
    _torchrun(REPO / "bundles" / "text_to_image_diffusion", tmp_path, *TINY_T2I)
    network = _check_replicas_and_outputs(tmp_path)

    model = torch.load(tmp_path / "models" / "model.pt", weights_only=True)
    assert "conv_in.conv.weight" in model and not any(k.startswith("module.") for k in model)
    assert model.keys() == network.keys() and all(torch.equal(model[k], network[k]) for k in model)
