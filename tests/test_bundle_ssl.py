"""The multimodal SSL bundle as users run it: train on real authentic MRI pairs, probe on real labelled MRI."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import DATA, REPO, bundle, expr, require

from monai_synpriv.utils import resolve_precision

SSL = REPO / "bundles" / "multimodal_ssl"
TINY = ["--depth", "10", "--projector_dims", "[32,32]", "--image_size", "[32,32]"]


#: the pre-training of the probe comparison: TriDeNT on the 291 authentic T1c/T2w training slices at 64 px, 7 epochs
#: of batch 32 (63 Adam steps): the shortest run measured to beat the random encoder on all three probes
#: (docs/results.md's dev run, 60 steps, reaches the same gap); at 32 px or 3 epochs the gain is within noise
SSL_EPOCHS = 7
PROBE = ["--depth", "10", "--image_size", "[64,64]", "--max_train", "1000", "--max_test", "600", "--mlp_epochs", "30"]


@pytest.fixture(scope="module")
def ssl_run(tmp_path_factory, slice_datalist):
    require(DATA / "brain_tumor_mri_4class" / "brain_tumor_mri_224.tar")
    root = tmp_path_factory.mktemp("ssl")
    bundle(
        "run",
        "--config_file",
        "configs/train.json",
        "--bundle_root",
        str(SSL),
        "--depth",
        "10",
        "--batch_size",
        "32",
        "--max_epochs",
        str(SSL_EPOCHS),
        "--cache_dir",
        str(slice_datalist.parent),
        "--ckpt_dir",
        str(root / "models"),
        "--output_dir",
        expr(root / "train"),
        "--tracking",
        "mlflow",
        cwd=SSL,
    )
    return root


def _random_init_encoder(ckpt_dir, seed: int = 0) -> None:
    """The primary encoder exactly as train.json initialises it under ``seed`` (set_determinism, then the network),
    saved as model.pt without any training step: the floor a pre-trained encoder must beat."""
    from monai.bundle import ConfigParser
    from monai.utils import set_determinism

    parser = ConfigParser()
    parser.read_config(SSL / "configs" / "train.json")
    parser.update({"bundle_root": str(SSL), "depth": 10, "seed": seed})
    set_determinism(seed=seed)
    network = parser.get_parsed_content("network_def")
    set_determinism(seed=None)
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    torch.save(network.primary_encoder.state_dict(), ckpt_dir / "model.pt")


def _run(db):
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{db}")
    exp = client.get_experiment_by_name("monai_experiment")
    (run,) = client.search_runs([exp.experiment_id])
    return client, run


def test_train_logs_losses_and_collapse_monitor(ssl_run):
    client, run = _run(ssl_run / "train" / "mlruns.db")
    assert run.info.status == "FINISHED"
    loss = [m.value for m in client.get_metric_history(run.info.run_id, "epoch_loss")]
    assert len(loss) == SSL_EPOCHS and loss[-1] < loss[0], f"VICReg loss should fall over the run: {loss}"
    for name in ("embedding_std", "embedding_effective_rank", "epoch_loss_variance", "loss_invariance"):
        assert client.get_metric_history(run.info.run_id, name), name
    assert run.data.params["encoder_indices"] == "[0, 0, 1]"
    assert run.data.params["precision"] == resolve_precision("auto", "cpu")  # the default, resolved
    state = torch.load(ssl_run / "models" / "model.pt", weights_only=True)
    assert any(k.startswith("conv1") for k in state), "model.pt must hold the primary encoder alone"


def _evaluate(ckpt_dir, out_dir, cache, *extra):
    """evaluate.json on the fixed small probe protocol: 1,000 probe-training and 600 test images of the real
    brain-tumour set at 64 px (test images that duplicate training images removed)."""
    return bundle(
        "run",
        "--config_file",
        "configs/evaluate.json",
        "--bundle_root",
        str(SSL),
        *PROBE,
        "--cache_dir",
        str(cache),
        "--ckpt_dir",
        str(ckpt_dir),
        "--output_dir",
        expr(out_dir),
        *extra,
        cwd=SSL,
    )


def test_pretrained_encoder_beats_random_init_of_the_same_seed(ssl_run, tmp_path):
    """The claim of pre-training: the frozen primary encoder after SSL probes better than the same network as the
    bundle initialises it (seed 0) before any step. A random ResNet-10 is a strong floor here (linear 0.75, MLP 0.81
    on this protocol), so the majority class (0.275) proves nothing. Measured on the 2-core CI machine: random init
    linear 0.753 / MLP 0.813 / k-NN 0.735; pre-trained 0.810 / 0.828 / 0.763 (error reduction 1.30 on linear). The
    same asserts fail for the 3-epoch 32-px run this test used before (0.798 vs 0.803 linear at this probe size)."""
    cache = tmp_path / "bt"
    _random_init_encoder(tmp_path / "random_init")
    _evaluate(tmp_path / "random_init", tmp_path / "ev_random", cache, "--embedding_plot", "False")
    random_metrics = tmp_path / "ev_random" / "probes" / "probe_metrics.json"
    floor = json.loads(random_metrics.read_text())

    # the pre-trained encoder, scored against the random-init run as the named baseline
    out = tmp_path / "ev"
    _evaluate(
        ssl_run / "models",
        out,
        cache,
        "--tracking",
        "mlflow",
        "--baseline_metrics",
        str(random_metrics),
        "--baseline_name",
        "random_init",
    )
    result = json.loads((out / "probes" / "probe_metrics.json").read_text())
    assert result["num_train"] == floor["num_train"] == 1000 and result["num_test"] == floor["num_test"] == 600
    acc = {name: result["probes"][name]["accuracy"] for name in ("linear", "mlp", "knn")}
    base = {name: floor["probes"][name]["accuracy"] for name in ("linear", "mlp", "knn")}
    assert acc["linear"] >= base["linear"] + 0.03, (acc, base)  # 18 more of 600 test images right
    assert acc["mlp"] > base["mlp"] and acc["knn"] > base["knn"], (acc, base)
    # error reduction compares two different runs: (1 - acc_random) / (1 - acc_pretrained)
    reduction = result["probes"]["linear"]["error_reduction_vs_random_init"]
    assert reduction == pytest.approx((1 - base["linear"]) / (1 - acc["linear"]), rel=1e-6)
    assert reduction > 1.1

    client, run = _run(out / "mlruns.db")
    assert run.data.metrics["linear_accuracy"] == pytest.approx(acc["linear"])
    arts = [a.path for a in client.list_artifacts(run.info.run_id, "probes")]
    assert "probes/embedding_tsne.png" in arts and "probes/confusion_linear.png" in arts


def test_bad_inputs_fail_before_training(tmp_path, slice_datalist):
    pairs = json.loads(slice_datalist.read_text())
    entries = [{"image": str(slice_datalist.parent / e["A"]), "subject": e["subject"]} for e in pairs["training_a"][:4]]
    bad = tmp_path / "pairs.json"
    bad.write_text(json.dumps({"training": entries}))
    proc = bundle(
        "run",
        "--config_file",
        "configs/train.json",
        "--bundle_root",
        str(SSL),
        *TINY,
        "--datalist",
        str(bad),
        "--ckpt_dir",
        str(tmp_path / "m"),
        "--output_dir",
        expr(tmp_path / "o"),
        cwd=SSL,
        check=False,
    )
    assert proc.returncode != 0 and "entry 0 has no key 'privileged'" in proc.stderr
    assert not (tmp_path / "m").exists()
    labels = tmp_path / "labels.json"
    labels.write_text(
        json.dumps(
            {
                "training": [{"image": entries[0]["image"], "label": 0}, {"image": entries[1]["image"], "label": 1}],
                "test": [{"image": entries[2]["image"], "label": 7}],
            }
        )
    )
    proc = bundle(
        "run",
        "--config_file",
        "configs/evaluate.json",
        "--bundle_root",
        str(SSL),
        "--labelled_datalist",
        str(labels),
        "--class_names",
        "['a','b']",
        "--ckpt_dir",
        str(tmp_path / "nomodel"),
        "--output_dir",
        expr(tmp_path / "o2"),
        cwd=SSL,
        check=False,
    )
    assert proc.returncode != 0 and "primary-encoder checkpoint" in proc.stderr
    from monai_synpriv.networks import make_resnet_encoder

    (tmp_path / "enc").mkdir()
    torch.save(make_resnet_encoder(2, 1, 10).state_dict(), tmp_path / "enc" / "model.pt")
    proc = bundle(
        "run",
        "--config_file",
        "configs/evaluate.json",
        "--bundle_root",
        str(SSL),
        "--depth",
        "10",
        "--labelled_datalist",
        str(labels),
        "--class_names",
        "['a','b']",
        "--ckpt_dir",
        str(tmp_path / "enc"),
        "--output_dir",
        expr(tmp_path / "o3"),
        cwd=SSL,
        check=False,
    )
    assert proc.returncode != 0 and "label 7 is out of range 0..1" in proc.stderr
    assert "Iteration" not in proc.stdout + proc.stderr, "the error must come before feature extraction"


def test_resume_continues_ssl_training(tmp_path, slice_datalist):
    common = [
        "run",
        "--config_file",
        "configs/train.json",
        "--bundle_root",
        str(SSL),
        *TINY,
        "--load_size",
        "[36,36]",
        "--max_items",
        "32",
        "--batch_size",
        "16",
        "--cache_dir",
        str(slice_datalist.parent),
        "--ckpt_dir",
        str(tmp_path / "models"),
        "--output_dir",
        expr(tmp_path / "o"),
    ]
    bundle(*common, "--max_epochs", "1", cwd=SSL)
    proc = bundle(*common, "--max_epochs", "2", "--resume", "True", cwd=SSL)
    log = proc.stdout + proc.stderr
    assert "checkpoint_epoch=1.pt" in log and "Epoch[2] Complete" in log and "Epoch[1] Complete" not in log


def test_3d_overlays_train_on_volumes_and_probe_adrenalmnist3d(tmp_path, multicontrast_dir):
    require(DATA / "medmnist" / "adrenalmnist3d.npz")
    bundle(
        "run",
        "--config_file",
        "['configs/train.json','configs/train_3d.json']",
        "--bundle_root",
        str(SSL),
        "--projector_dims",
        "[16,16]",
        "--image_size",
        "[16,16,16]",
        "--patch_size",
        "[24,24,24]",
        "--max_epochs",
        "1",
        "--epoch_length",
        "2",
        "--dataset_dir",
        str(multicontrast_dir),
        "--ckpt_dir",
        str(tmp_path / "models"),
        "--output_dir",
        expr(tmp_path / "train"),
        cwd=SSL,
    )
    bundle(
        "run",
        "--config_file",
        "['configs/evaluate.json','configs/evaluate_3d.json']",
        "--bundle_root",
        str(SSL),
        "--image_size",
        "[16,16,16]",
        "--max_train",
        "60",
        "--max_test",
        "30",
        "--mlp_epochs",
        "5",
        "--probes",
        "['linear','knn']",
        "--cache_dir",
        str(tmp_path / "cache"),
        "--ckpt_dir",
        str(tmp_path / "models"),
        "--output_dir",
        expr(tmp_path / "eval"),
        cwd=SSL,
    )
    result = json.loads((tmp_path / "eval" / "probes" / "probe_metrics.json").read_text())
    assert result["num_train"] == 60 and result["num_test"] == 30 and result["feature_dim"] == 512
    assert result["class_names"] == ["normal", "adrenal mass"]


def test_ssl_encoder_serves_as_an_examine_encoder_bundle(ssl_run, tmp_path):
    """The trained primary encoder through the encoder-bundle contract (configs/inference.json): the EXAMINE
    assessment embeds real brain-tumour images with it and ranks them by the exact scorer."""
    import csv

    import numpy as np

    from monai_synpriv.assessment import EncoderBundle, ExamineAssessment, examine_scores
    from monai_synpriv.data import load_image_list, prepare_brain_tumor_mri

    datalist = prepare_brain_tumor_mri(DATA / "brain_tumor_mri_4class", tmp_path / "bt")
    items = load_image_list(datalist, section="test", max_items=24)
    overrides = {"depth": 10, "image_size": [32, 32], "ckpt_path": str(ssl_run / "models" / "model.pt")}
    encoder = EncoderBundle(SSL, overrides=overrides, require_weights=True)
    assert encoder.trained
    state = torch.load(ssl_run / "models" / "model.pt", weights_only=True)
    state = state.get("model", state)
    key = next(k for k in state if k.endswith("weight"))
    assert torch.equal(encoder.network.state_dict()[key].cpu(), state[key].cpu())  # the trained weights, loaded
    emb = encoder.embed([it["image"] for it in items])
    assert emb.shape == (24, 512) and np.isfinite(emb).all()

    out = tmp_path / "assess"
    summary = ExamineAssessment(items, out, encoder_bundle=SSL, encoder_overrides=overrides).run()
    with open(out / "examine_ranking.csv") as f:
        rows = list(csv.DictReader(f))
    expected = examine_scores(np.load(out / "embeddings.npy"))
    assert [int(r["row"]) for r in rows] == expected.ranking.tolist()
    np.testing.assert_allclose(np.load(out / "embeddings.npy"), emb, rtol=1e-4, atol=1e-5)
    assert summary["metrics"]["n_images"] == 24
