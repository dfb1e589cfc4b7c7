"""The MAE pre-training bundle and the EXAMINE assessment bundle on real data, through the MONAI bundle CLI:
train (MLflow read back) -> embed -> assess (ranking equals EXAMINE on the written embeddings) with the MAE bundle as
encoder_bundle, and self-contained (the encoder's weights at the assessment bundle's models/model.pt, the bundle copied
alone), the 3D path and bad inputs."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest
import torch
from conftest import DATA, REPO, bundle, expr, require

from monai_synpriv.utils import resolve_precision

MAE = REPO / "bundles" / "mae_pretraining"
ASSESS = REPO / "bundles" / "examine_assessment"
BREAST = DATA / "medmnist" / "breastmnist.npz"
ADRENAL = DATA / "medmnist" / "adrenalmnist3d.npz"
#: a slim ViT so that the CLI runs stay short on a CPU
SLIM = ["--hidden_size", "48", "--mlp_dim", "96", "--num_layers", "2", "--decoder_hidden_size", "24"]
SLIM += ["--decoder_mlp_dim", "48", "--decoder_num_layers", "1"]


def _client(path):
    import mlflow

    return mlflow.MlflowClient(tracking_uri=f"sqlite:///{path}")


@pytest.fixture(scope="module")
def trained_mae(tmp_path_factory):
    """A short MAE pre-training on BreastMNIST through the CLI with MLflow tracking."""
    require(BREAST)
    tmp = tmp_path_factory.mktemp("mae")
    db = tmp / "mlruns.db"
    bundle(
        "run",
        "--config_file",
        "configs/train.json",
        "--bundle_root",
        ".",
        "--data_root",
        str(DATA),
        "--cache_dir",
        str(tmp / "cache"),
        "--ckpt_dir",
        str(tmp / "models"),
        "--output_dir",
        expr(tmp / "eval"),
        "--max_epochs",
        "2",
        "--epoch_length",
        "3",
        "--max_items",
        "200",
        *SLIM,
        "--tracking",
        "configs/mlflow_tracking.json",
        "--tracking_uri",
        f"$'sqlite:///{db}'",
        "--experiment_name",
        "mae",
        "--run_name",
        "pretrain",
        cwd=MAE,
    )
    return tmp


def test_mae_training_writes_checkpoint_pictures_and_mlflow(trained_mae):
    state = torch.load(trained_mae / "models" / "model.pt", weights_only=True)
    assert "cls_token" in state and any(k.startswith("decoder_pred") for k in state)
    assert (trained_mae / "eval" / "images" / "mae_reconstruction_epoch002.png").is_file()
    client = _client(trained_mae / "mlruns.db")
    exp = client.get_experiment_by_name("mae")
    (run,) = client.search_runs([exp.experiment_id])
    assert run.data.params["method"] == "masked_autoencoder" and run.data.params["patch_size"] == "4"
    assert run.data.params["precision"] == resolve_precision("auto", "cpu")  # the default, resolved
    losses = client.get_metric_history(run.info.run_id, "train_loss")
    assert len(losses) == 6 and all(np.isfinite(m.value) for m in losses)
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "images")}
    assert "images/mae_reconstruction_latest.png" in artifacts


def test_embed_then_assess_ranks_by_examine(trained_mae, tmp_path):
    """inference.json writes one embedding per image; the assessment bundle's ranking is EXAMINE's on them, with
    the CSV, pictures, summary and an MLflow run."""
    from monai_synpriv.assessment import examine_scores

    ckpt = trained_mae / "models" / "model.pt"
    common = ["--bundle_root", ".", "--data_root", str(DATA), "--cache_dir", str(trained_mae / "cache")]
    bundle(
        "run",
        "--config_file",
        "configs/inference.json",
        *common,
        *SLIM,
        "--section",
        "test",
        "--ckpt_path",
        str(ckpt),
        "--output_dir",
        str(tmp_path / "emb"),
        cwd=MAE,
    )
    emb = np.load(tmp_path / "emb" / "embeddings.npy")
    with open(tmp_path / "emb" / "embeddings.csv") as f:
        index = list(csv.DictReader(f))
    assert emb.shape == (156, 48) and len(index) == 156 and {r["label"] for r in index} == {"0", "1"}

    overrides = {"ckpt_path": str(ckpt), **dict(zip(SLIM[0::2], SLIM[1::2]))}
    overrides = {k.lstrip("-"): int(v) for k, v in overrides.items() if k != "ckpt_path"} | {"ckpt_path": str(ckpt)}
    out = tmp_path / "assess"
    bundle(
        "run",
        "--config_file",
        "configs/inference.json",
        *common,
        "--section",
        "test",
        "--encoder_bundle",
        str(MAE),
        "--encoder_overrides",
        json.dumps(overrides),
        "--output_dir",
        str(out),
        "--experiment_name",
        "examine",
        cwd=ASSESS,
    )
    with open(out / "examine_ranking.csv") as f:
        ranking = list(csv.DictReader(f))
    assert len(ranking) == 156 and [int(r["rank"]) for r in ranking] == list(range(1, 157))
    # the bundle's embeddings are the MAE bundle's, and its ranking is EXAMINE's (defaults: raw embeddings)
    np.testing.assert_allclose(np.load(out / "embeddings.npy"), emb, atol=1e-5)
    expected = examine_scores(emb)
    assert [int(r["row"]) for r in ranking[:20]] == expected.ranking[:20].tolist()
    np.testing.assert_allclose([float(r["msv"]) for r in ranking], expected.msv[expected.ranking], rtol=1e-6)
    assert [r["image"] for r in ranking[:3]] == [index[i]["image"] for i in expected.ranking[:3]]
    for name in ("examine_histogram.png", "examine_montage.png", "examine_summary.json"):
        assert (out / name).is_file(), name
    summary = json.loads((out / "examine_summary.json").read_text())
    assert summary["metrics"]["n_images"] == 156 and summary["settings"]["encoder_checkpoint"] == str(ckpt)
    assert summary["settings"]["encoder_bundle"] == str(MAE.resolve())
    client = _client(out / "mlruns.db")
    (run,) = client.search_runs([client.get_experiment_by_name("examine").experiment_id])
    assert run.info.run_id == summary["mlflow_run_id"]
    assert float(run.data.metrics["msv_max"]) == pytest.approx(float(expected.msv.max()), rel=1e-6)
    assert run.info.artifact_uri.startswith((out / "mlartifacts").resolve().as_uri())  # not ./mlruns of the cwd
    assert not (ASSESS / "mlruns").exists()
    logged = {a.path for a in client.list_artifacts(run.info.run_id, "examine")}
    assert {"examine/examine_ranking.csv", "examine/examine_montage.png"} <= logged


def test_self_contained_bundle_embeds_with_its_own_weights(trained_mae, tmp_path):
    """The default: the assessment bundle copied alone (no ../mae_pretraining beside it), the MAE weights as its own
    models/model.pt; its evaluator writes the embeddings, and the ranking is EXAMINE's on them."""
    from monai_synpriv.assessment import EncoderBundle, examine_scores
    from monai_synpriv.utils import resolve_precision

    root = tmp_path / "examine_assessment"
    shutil.copytree(ASSESS, root, ignore=shutil.ignore_patterns("eval", "cache", "mlruns*", "__pycache__", "*.pt"))
    assert not (tmp_path / "mae_pretraining").exists()
    (root / "models").mkdir(exist_ok=True)
    weights = root / "models" / "model.pt"
    shutil.copyfile(trained_mae / "models" / "model.pt", weights)
    out = tmp_path / "assess"
    n = 24
    bundle(
        "run",
        "--config_file",
        "configs/inference.json",
        "--bundle_root",
        ".",
        "--dataset_dir",
        str(DATA),
        "--cache_dir",
        str(trained_mae / "cache"),
        *SLIM,
        "--section",
        "test",
        "--max_items",
        str(n),
        "--montage_count",
        "3",
        "--output_dir",
        str(out),
        "--experiment_name",
        "examine",
        cwd=root,
    )
    emb = np.load(out / "embeddings.npy")
    with open(out / "embeddings.csv") as f:
        index = list(csv.DictReader(f))
    with open(out / "examine_ranking.csv") as f:
        ranking = list(csv.DictReader(f))
    assert emb.shape == (n, 48) and np.isfinite(emb).all() and len(index) == n and len(ranking) == n
    expected = examine_scores(emb)
    assert [int(r["row"]) for r in ranking] == expected.ranking.tolist()
    np.testing.assert_allclose([float(r["msv"]) for r in ranking], expected.msv[expected.ranking], rtol=1e-6)
    assert [r["image"] for r in ranking] == [index[i]["image"] for i in expected.ranking]
    summary = json.loads((out / "examine_summary.json").read_text())
    assert summary["settings"]["encoder_checkpoint"] == str(weights)
    assert summary["settings"]["encoder_bundle"] == str(root.resolve())
    assert summary["metrics"]["n_images"] == n and (out / "examine_montage.png").is_file()
    # the embeddings are the MAE encoder's with these weights (same preprocessing and precision)
    slim = {k.lstrip("-"): int(v) for k, v in zip(SLIM[0::2], SLIM[1::2])}
    mae = EncoderBundle(MAE, overrides={**slim, "ckpt_path": str(weights)})
    reference = mae.embed_items([{"image": r["image"]} for r in index], precision=resolve_precision("auto", "cpu"))
    np.testing.assert_allclose(emb, reference, atol=1e-5)
    client = _client(out / "mlruns.db")
    (run,) = client.search_runs([client.get_experiment_by_name("examine").experiment_id])
    assert run.info.run_id == summary["mlflow_run_id"]


def test_mae_3d_pretraining_and_embedding(tmp_path):
    """AdrenalMNIST3D: 3D patches (7^3) through the dataset overlay, then 3D embeddings."""
    require(ADRENAL)
    common = ["--bundle_root", ".", "--data_root", str(DATA), "--cache_dir", str(tmp_path / "cache"), *SLIM]
    bundle(
        "run",
        "--config_file",
        "['configs/train.json','configs/dataset_adrenal3d.json']",
        *common,
        "--ckpt_dir",
        str(tmp_path / "models"),
        "--output_dir",
        str(tmp_path / "eval"),
        "--max_epochs",
        "1",
        "--epoch_length",
        "2",
        "--batch_size",
        "8",
        "--max_items",
        "32",
        cwd=MAE,
    )
    bundle(
        "run",
        "--config_file",
        "['configs/inference.json','configs/dataset_adrenal3d.json']",
        *common,
        "--max_items",
        "10",
        "--ckpt_path",
        str(tmp_path / "models" / "model.pt"),
        "--output_dir",
        str(tmp_path / "emb"),
        cwd=MAE,
    )
    emb = np.load(tmp_path / "emb" / "embeddings.npy")
    assert emb.shape == (10, 48) and np.isfinite(emb).all() and emb.std(axis=0).max() > 0


def test_bad_inputs_fail_early_with_the_culprit_named(tmp_path):
    from monai_synpriv.assessment import ExamineAssessment

    items = [{"image": str(tmp_path / "a.png")}, {"image": str(tmp_path / "b.png")}]
    with pytest.raises(FileNotFoundError, match="encoder bundle config not found"):
        ExamineAssessment(items, tmp_path / "out", encoder_bundle=tmp_path / "nowhere")
    np.save(tmp_path / "e.npy", np.zeros((3, 4)))
    with pytest.raises(ValueError, match=r"shape \(3, 4\).*expected \(2, d\)"):
        ExamineAssessment(items, tmp_path / "out", embeddings=tmp_path / "e.npy")
    with pytest.raises(ValueError, match="temperature"):
        ExamineAssessment(items, tmp_path / "out", embeddings=tmp_path / "e.npy", temperature=0)
    with pytest.raises(ValueError, match="encoder_bundle"):
        ExamineAssessment(items, tmp_path / "out")
    assert not (tmp_path / "out").exists()  # nothing written before the checks pass

    # an encoder bundle without weights: refused by default, naming the checkpoint; allowed only explicitly, with a
    # warning and seeded (reproducible) initial weights
    from monai_synpriv.assessment import EncoderBundle, UntrainedEncoderWarning

    slim = {k.lstrip("-"): int(v) for k, v in zip(SLIM[0::2], SLIM[1::2])}
    missing = {**slim, "ckpt_path": str(tmp_path / "no_weights.pt")}
    with pytest.raises(FileNotFoundError, match="no_weights.pt"):
        EncoderBundle(MAE, overrides=missing)
    with pytest.warns(UntrainedEncoderWarning):
        a = EncoderBundle(MAE, overrides=missing, require_weights=False)
    with pytest.warns(UntrainedEncoderWarning):
        b = EncoderBundle(MAE, overrides=missing, require_weights=False)
    assert not a.trained and a.fingerprint() == b.fingerprint()
    x = torch.rand(2, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(a.network(x), b.network(x))

    # an encoder given as a network + preprocessing + weights file (the assessment bundle's own): the same refusal,
    # and the weights it loads are the file's
    from monai_synpriv.assessment.report import NetworkEncoder

    with pytest.raises(FileNotFoundError, match="no_weights.pt"):
        NetworkEncoder(a.network, a.preprocessing, ckpt_path=tmp_path / "no_weights.pt")
    with pytest.raises(ValueError, match="not both"):
        ExamineAssessment(items, tmp_path / "out", encoder_bundle=MAE, encoder=a)
    torch.save(a.network.state_dict(), tmp_path / "w.pt")
    with pytest.warns(UntrainedEncoderWarning):
        c = EncoderBundle(MAE, overrides=missing, require_weights=False, seed=1)
    with pytest.warns(UntrainedEncoderWarning):
        untrained = NetworkEncoder(c.network, c.preprocessing, ckpt_path=None, require_weights=False).fingerprint()
    own = NetworkEncoder(c.network, c.preprocessing, ckpt_path=tmp_path / "w.pt")
    assert own.trained and own.ckpt_path == str(tmp_path / "w.pt") and own.fingerprint() != untrained
    assert own.fingerprint() == NetworkEncoder(a.network, a.preprocessing, ckpt_path=tmp_path / "w.pt").fingerprint()
    with torch.no_grad():
        torch.testing.assert_close(own.network(x), a.network(x))

    # the MAE bundle's inference refuses to embed without weights, naming the checkpoint
    proc = bundle(
        "run",
        "--config_file",
        "configs/inference.json",
        "--bundle_root",
        ".",
        "--data_root",
        str(DATA),
        "--cache_dir",
        str(tmp_path / "cache"),
        "--max_items",
        "4",
        "--ckpt_path",
        str(tmp_path / "missing.pt"),
        "--output_dir",
        str(tmp_path / "emb"),
        cwd=MAE,
        check=False,
    )
    assert proc.returncode != 0 and "missing.pt" in proc.stderr + proc.stdout
    assert not (tmp_path / "emb" / "embeddings.npy").exists()
