"""The contrastive_ae_clustering bundle on real data: train -> evaluate -> inference through the MONAI bundle CLI with
MLflow read back, the 3D path (AdrenalMNIST3D), the supervised overlay and bad inputs; and, without data, the
inference network (``network_def``: training's checkpoint loads into it, TorchScript gives its output) and the
inference workflow built without data or cluster model, whose run names what is missing."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from conftest import DATA, REPO, bundle, expr, require

from monai_synpriv.utils import resolve_precision

ROOT = REPO / "bundles" / "contrastive_ae_clustering"
BREAST = DATA / "medmnist" / "breastmnist.npz"
ADRENAL = DATA / "medmnist" / "adrenalmnist3d.npz"


def _common(tmp_path, sub: str = "") -> list[str]:
    out = tmp_path / sub if sub else tmp_path
    return [
        "--bundle_root",
        ".",
        "--data_root",
        str(DATA),
        "--cache_dir",
        str(tmp_path / "cache"),
        "--ckpt_dir",
        str(out / "models"),
        "--output_dir",
        expr(out / "eval"),
    ]


def _client(path):
    import mlflow

    return mlflow.MlflowClient(tracking_uri=f"sqlite:///{path}")


def test_train_evaluate_inference_with_mlflow(tmp_path):
    """BreastMNIST: a short training, the clustering evaluation and the cluster assignment of the test images, each
    logged to MLflow; the numbers in the files are the logged ones.

    The run must also have learned, measured against the same network before its first step: both loss terms fall
    during training, and the test images are reconstructed better than by the untrained network of the same seed.
    Measured (seed 0, 40 steps of 32 images, lr 1e-2, 2-core CPU): reconstruction 0.143 (first step) -> 0.045 (mean
    of the last epoch, 0.31x); NT-Xent 4.11 -> 3.31 (0.80x its chance level log(63) = 4.14); test-split MSE 0.045
    vs 0.079 untrained (0.56x). The same run with ``--lr 0`` (an optimiser that never moves the weights): 1.01x,
    0.97x and 1.62x, failing all three. No assert on the clusters' agreement with the labels: on BreastMNIST the
    NMI of this budget is noise (0.01-0.05, trained or not, raw pixels 0.012); the brain-tumour test below carries
    that claim.
    """
    require(BREAST)
    db = tmp_path / "mlruns.db"
    track = ["--tracking", "configs/mlflow_tracking.json", "--tracking_uri", f"$'sqlite:///{db}'"]
    common = _common(tmp_path)
    bundle(
        "run",
        "--config_file",
        "configs/train.json",
        *common,
        "--max_epochs",
        "2",
        "--epoch_length",
        "20",
        # 40 small steps at a high lr: the least training (~+10 s on CPU) after which the test-split reconstruction
        # clearly beats the untrained network (8 steps of 64 at the default lr 1e-3 reconstruct it worse, 0.091 vs
        # 0.079: batch-norm statistics still lag behind)
        "--batch_size",
        "32",
        "--lr",
        "0.01",
        "--channels",
        "[16,32,32]",
        *track,
        "--experiment_name",
        "cae",
        "--run_name",
        "train",
        cwd=ROOT,
    )
    state = torch.load(tmp_path / "models" / "model.pt", weights_only=True)
    assert any(k.startswith("projector.") for k in state) and any(k.startswith("autoencoder.") for k in state)

    bundle(
        "run",
        "--config_file",
        "configs/evaluate.json",
        *common,
        "--channels",
        "[16,32,32]",
        *track,
        "--experiment_name",
        "cae",
        "--run_name",
        "evaluate",
        cwd=ROOT,
    )
    out = tmp_path / "eval" / "clustering"
    metrics = json.loads((out / "clustering_metrics.json").read_text())
    assert metrics["num_fit"] == 546 and metrics["num_test"] == 156  # the official BreastMNIST splits
    assert metrics["n_clusters"] == 2 and metrics["class_names"] == ["0", "1"]
    for name in ("cluster_montage", "embedding", "reconstructions", "samples", "interpolations"):
        assert (out / f"{name}.png").stat().st_size > 1000, name

    client = _client(db)
    exp = client.get_experiment_by_name("cae")
    runs = {r.info.run_name: r for r in client.search_runs([exp.experiment_id])}
    assert set(runs) == {"train", "evaluate"}
    train_hist = client.get_metric_history(runs["train"].info.run_id, "epoch_loss")
    assert len(train_hist) == 2 and all(np.isfinite(m.value) for m in train_hist)
    assert runs["train"].data.params["method"] == "contrastive_ae_clustering"
    # the default precision "auto", resolved on this machine (bf16 on the AMX CPU), reaches MLflow
    assert runs["train"].data.params["precision"] == resolve_precision("auto", "cpu")
    assert "loss_contrastive" in runs["train"].data.metrics  # every loss term, per iteration
    recon, contrastive = (
        [m.value for m in sorted(client.get_metric_history(runs["train"].info.run_id, k), key=lambda m: m.step)]
        for k in ("loss_reconstruction", "loss_contrastive")
    )
    assert len(recon) == len(contrastive) == 40
    # the first step's loss is the untrained network's; the last epoch's mean must be well below it (0.31x measured,
    # ~1.0x with lr 0: batches vary by about +-10%, hence the margin)
    assert np.mean(recon[20:]) < 0.75 * recon[0], f"reconstruction loss did not fall: {recon}"
    # NT-Xent of 2 x 32 views starts at its chance level log(2 * 32 - 1) (measured 4.11 vs 4.14): below 0.9x of it,
    # the two views of an image are told apart from the other 62 (0.80x measured, 0.97x with lr 0)
    chance = np.log(2 * 32 - 1)
    assert np.mean(contrastive[20:]) < 0.9 * chance, f"contrastive loss did not fall below chance: {contrastive}"
    ev = runs["evaluate"].data.metrics
    assert ev["test_nmi"] == pytest.approx(metrics["latent"]["test"]["nmi"])
    assert ev["raw_pixel_test_nmi"] == pytest.approx(metrics["raw_pixels"]["test"]["nmi"])
    artifacts = {a.path for a in client.list_artifacts(runs["evaluate"].info.run_id, "clustering")}
    assert {"clustering/cluster_model.json", "clustering/cluster_montage.png"} <= artifacts

    # inference: the saved cluster model assigns the test images, in the order of the datalist
    bundle("run", "--config_file", "configs/inference.json", *common, "--channels", "[16,32,32]", cwd=ROOT)
    with open(tmp_path / "eval" / "cluster_assignments.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 156
    assert {r["cluster"] for r in rows} <= {"0", "1"} and {r["class"] for r in rows} <= {"0", "1", ""}
    # the same clusters as the evaluation's assignment of the test split (same model, same features)
    from monai_synpriv.evaluation import ClusterModel

    # the cluster model inference read lies next to model.pt; the evaluation's record (logged to MLflow) is the same
    model = ClusterModel.load(tmp_path / "models" / "cluster_model.json")
    assert model.n_clusters == 2 and model.class_names == ["0", "1"]
    assert model.to_dict() == ClusterModel.load(out / "cluster_model.json").to_dict()
    counts = np.bincount([int(r["cluster"]) for r in rows], minlength=2)
    test = metrics["latent"]["test"]
    assert counts.sum() == 156 and test["n_clusters_used"] == int((counts > 0).sum())
    # ... and the same assignment, not only the same number of clusters: the cluster sizes and the accuracy of the
    # mapped classes against the expert labels match the evaluation's (within one image: the two runs batch the
    # images differently). Inference with another checkpoint fails here: the untrained network's latents put all 156
    # images in one cluster (accuracy 0.73 vs 0.49, largest cluster 1.00 vs 0.58).
    from monai_synpriv.data import load_image_list

    truth = load_image_list(tmp_path / "cache" / "medmnist" / "breastmnist_datalist.json", section="test")
    assert [r["image"] for r in rows] == [t["image"] for t in truth]
    accuracy = np.mean([r["class"] == str(t["label"]) for r, t in zip(rows, truth)])
    assert abs(accuracy - test["accuracy_fit_mapping"]) <= 1 / 156 + 1e-9, (accuracy, test)
    assert abs(counts.max() / 156 - test["largest_cluster_fraction"]) <= 1 / 156 + 1e-9, (counts, test)

    # the test images are reconstructed better than by the untrained network: the same architecture made under the
    # same seed (its weights equal the run's initial ones; only batch-norm statistics differ). Still far above the
    # mean training image's MSE (0.025): this budget proves learning, not a good autoencoder.
    from monai.transforms import LoadImage
    from monai.utils import set_determinism

    from monai_synpriv.networks import ContrastiveAutoEncoder

    load = LoadImage(image_only=True, ensure_channel_first=True)
    images = torch.stack([load(t["image"]).as_tensor() for t in truth]).float()
    nets = []
    for trained in (True, False):
        set_determinism(0)  # the bundle's seed
        net = ContrastiveAutoEncoder(2, (1, 28, 28), latent_size=50, channels=(16, 32, 32), strides=(2, 2, 1))
        if trained:
            net.load_state_dict(state)
        nets.append(net.eval())
    with torch.no_grad():
        mse_trained, mse_untrained = (float(((net(images)[0] - images) ** 2).mean()) for net in nets)
    # 0.56x measured; the lr-0 run's checkpoint (its batch-norm statistics moved, its weights did not) 1.62x
    assert mse_trained < 0.8 * mse_untrained, f"test-split MSE {mse_trained:.4f} vs untrained {mse_untrained:.4f}"


def test_3d_path_and_supervised_overlay(tmp_path):
    """AdrenalMNIST3D through the 3D networks with the supervised overlay (labels + cross-entropy), then the
    clustering evaluation of its latents."""
    require(ADRENAL)
    configs = "['configs/train.json','configs/dataset_adrenal3d.json','configs/train_supervised.json']"
    small = ["--channels", "[8,16,16]", "--max_items", "64", "--batch_size", "8"]
    bundle(
        "run",
        "--config_file",
        configs,
        *_common(tmp_path),
        *small,
        "--max_epochs",
        "1",
        "--epoch_length",
        "3",
        cwd=ROOT,
    )
    state = torch.load(tmp_path / "models" / "model.pt", weights_only=True)
    assert not any(k.startswith("classifier.") for k in state)  # the exported model is the autoencoder alone
    conv = next(v for k, v in state.items() if v.ndim == 5)
    assert conv.ndim == 5  # 3D convolutions

    configs = "['configs/evaluate.json','configs/dataset_adrenal3d.json']"
    bundle(
        "run",
        "--config_file",
        configs,
        *_common(tmp_path),
        "--channels",
        "[8,16,16]",
        "--max_fit",
        "64",
        "--max_test",
        "32",
        "--embedding_plot",
        "False",
        cwd=ROOT,
    )
    metrics = json.loads((tmp_path / "eval" / "clustering" / "clustering_metrics.json").read_text())
    assert metrics["num_fit"] == 64 and metrics["num_test"] == 32 and metrics["feature_dim"] == 50
    assert 0.0 <= metrics["latent"]["test"]["nmi"] <= 1.0
    assert (tmp_path / "eval" / "clustering" / "reconstructions.png").is_file()


def test_bad_inputs_fail_early_with_clear_errors(tmp_path):
    require(BREAST)
    common = _common(tmp_path)
    # a size the strides cannot halve: named with the fix, before any training
    proc = bundle(
        "run", "--config_file", "configs/train.json", *common, "--image_size", "[30,30]", cwd=ROOT, check=False
    )
    assert proc.returncode != 0 and "divisible by the product of strides" in proc.stderr
    assert not (tmp_path / "models" / "model.pt").exists()
    # no checkpoint to evaluate
    proc = bundle("run", "--config_file", "configs/evaluate.json", *common, cwd=ROOT, check=False)
    assert proc.returncode != 0 and "contrastive autoencoder checkpoint" in proc.stderr
    # an unknown clustering method is refused when the handler is built, before any image is encoded
    (tmp_path / "models").mkdir()
    from monai_synpriv.networks import ContrastiveAutoEncoder

    torch.save(ContrastiveAutoEncoder(2, (1, 28, 28)).state_dict(), tmp_path / "models" / "model.pt")
    proc = bundle(
        "run", "--config_file", "configs/evaluate.json", *common, "--cluster_method", "dbscan", cwd=ROOT, check=False
    )
    assert proc.returncode != 0 and "unknown cluster method 'dbscan'" in proc.stderr
    assert "Iteration" not in proc.stdout + proc.stderr.split("unknown cluster method")[0]
    # inference without a cluster model names the missing file (next to model.pt) and how to produce it
    proc = bundle("run", "--config_file", "configs/inference.json", *common, cwd=ROOT, check=False)
    assert proc.returncode != 0 and "cluster model not found" in proc.stderr, proc.stderr[-3000:]
    assert str(tmp_path / "models" / "cluster_model.json") in proc.stderr and "configs/evaluate.json" in proc.stderr
    assert "Iteration" not in proc.stdout + proc.stderr.split("cluster model not found")[0]
    # a datalist entry whose image is missing is named
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"test": [{"image": str(tmp_path / "nope.nii.gz")}]}))
    proc = bundle("run", "--config_file", "configs/inference.json", *common, "--input", str(bad), cwd=ROOT, check=False)
    assert proc.returncode != 0 and "nope.nii.gz" in proc.stderr


def test_contrastive_autoencoder_beats_raw_pixel_kmeans_on_brain_tumour_mri(tmp_path):
    """A short real training (45 steps of 64 images, 32 px, the whole training split sampled lazily) on the 4-class
    brain-tumour MRI set: k-means on the contrastive autoencoder's latents separates the expert classes better (NMI)
    than k-means on the raw pixels of the same images.

    Measured on the 2-core CPU: NMI 0.226 vs 0.183 with this seed (0.192 vs 0.184 with seed 0); at the experiment's
    budget (64 px, 120 steps) 0.214 vs 0.175, and the same autoencoder without the contrastive term 0.134
    (docs/clustering.md). A broken contrastive term or encoder lands at or below the raw pixels.
    """
    require(DATA / "brain_tumor_mri_4class" / "brain_tumor_mri_224.tar")
    common = _common(tmp_path) + ["--image_size", "[32,32]", "--channels", "[16,32,64]", "--seed", "1"]
    train = "['configs/train.json','configs/dataset_brain_tumor.json']"
    bundle(
        "run",
        "--config_file",
        train,
        *common,
        "--max_epochs",
        "3",
        "--epoch_length",
        "15",
        "--cache_rate",
        "0.0",
        cwd=ROOT,
    )
    evaluate = "['configs/evaluate.json','configs/dataset_brain_tumor.json']"
    bundle(
        "run",
        "--config_file",
        evaluate,
        *common,
        "--max_fit",
        "1500",
        "--max_test",
        "500",
        "--embedding_plot",
        "False",
        cwd=ROOT,
    )
    metrics = json.loads((tmp_path / "eval" / "clustering" / "clustering_metrics.json").read_text())
    assert metrics["n_clusters"] == 4 and metrics["num_test"] == 500
    latent, raw = metrics["latent"]["test"], metrics["raw_pixels"]["test"]
    assert latent["n_clusters_used"] == 4
    assert latent["nmi"] > raw["nmi"], (latent, raw)


# ---------------------------------------------------------------------------------------------- without data
SMALL = {"latent_size": 8, "channels": [4, 8, 8], "projection_dims": [16, 8]}


def _parsed(config: str, **overrides):
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(str(ROOT / "configs" / config))
    parser.read_meta(str(ROOT / "configs" / "metadata.json"))
    parser.update({"bundle_root": str(ROOT), **overrides})
    return parser


@pytest.mark.parametrize("variational", [False, True], ids=["ae", "vae"])
def test_network_def_loads_the_training_checkpoint_and_scripts_to_the_eager_output(tmp_path, variational):
    """inference.json's network_def (image -> latent mean) takes the state dict that train.json saves, strictly (the
    same keys: the encoder's, the decoder's, the projector's); its TorchScript export (``monai.bundle.ckpt_export``,
    as model-zoo does it) gives the eager output, and so does the scripted autoencoder (the whole training network)."""
    from monai.bundle import ckpt_export

    torch.manual_seed(0)
    autoencoder = _parsed("train.json", variational=variational, **SMALL).get_parsed_content("network_def")
    ckpt = tmp_path / "model.pt"
    torch.save(autoencoder.state_dict(), ckpt)  # what AtomicCheckpointSaver writes as model.pt
    encoder = _parsed("inference.json", variational=variational, **SMALL).get_parsed_content("network_def")
    encoder.load_state_dict(torch.load(ckpt, weights_only=True))  # strict
    assert encoder.state_dict().keys() == autoencoder.state_dict().keys()
    autoencoder.eval(), encoder.eval()
    x = torch.rand(3, 1, 28, 28)
    with torch.no_grad():
        mu = encoder(x)
        assert mu.shape == (3, 8) and torch.equal(mu, autoencoder.encode(x)[0])
        scripted = torch.jit.script(autoencoder)
        for a, b in zip(scripted(x), autoencoder(x)):
            if b is None:  # logvar of the deterministic autoencoder
                assert a is None and not variational
            else:
                torch.testing.assert_close(a, b)

    ckpt_export(
        net_id="network_def",
        filepath=str(tmp_path / "model.ts"),
        ckpt_file=str(ckpt),
        meta_file=str(ROOT / "configs" / "metadata.json"),
        config_file=str(ROOT / "configs" / "inference.json"),
        bundle_root=str(ROOT),
        variational=variational,
        **SMALL,
    )
    exported = torch.jit.load(str(tmp_path / "model.ts"))
    with torch.no_grad():
        torch.testing.assert_close(exported(x), mu)
    # and a state dict saved from network_def loads back into the autoencoder
    autoencoder.load_state_dict(encoder.state_dict())


def test_inference_builds_without_data_or_cluster_model_and_its_run_names_what_is_missing(tmp_path, monkeypatch):
    """The inference workflow is built (model-zoo's property check) from the checkpoint alone; its run then stops
    naming the data override, then the missing cluster model under models/ and how to produce it; given both, it
    writes one row per image."""
    import nibabel as nib
    from monai.bundle import create_workflow

    from monai_synpriv.bundle_checks import DATA_ENV, root_cause
    from monai_synpriv.evaluation import fit_clusters

    monkeypatch.delenv(DATA_ENV, raising=False)
    models = tmp_path / "models"
    models.mkdir()
    net = _parsed("train.json", **SMALL).get_parsed_content("network_def")
    torch.save(net.state_dict(), models / "model.pt")
    paths = []
    for i in range(4):
        paths.append(tmp_path / f"image_{i}.nii.gz")
        nib.save(nib.Nifti1Image(np.random.default_rng(i).random((28, 28)).astype(np.float32), np.eye(4)), paths[i])
    overrides = dict(SMALL, ckpt_dir=str(models), output_dir=str(tmp_path / "eval"), cache_dir=str(tmp_path / "c"))

    def workflow(**extra):
        return create_workflow(
            workflow_type="inference",
            config_file=str(ROOT / "configs" / "inference.json"),
            meta_file=str(ROOT / "configs" / "metadata.json"),
            bundle_root=str(ROOT),
            **overrides,
            **extra,
        )

    flow = workflow()
    assert flow.check_properties() == [] and flow.dataset_dir is None and len(flow.dataset) == 0
    with pytest.raises(Exception) as info:
        flow.run()
    message = str(root_cause(info.value))
    assert "config key 'dataset_dir' is not set: pass --dataset_dir" in message and "--input" in message

    datalist = tmp_path / "datalist.json"
    datalist.write_text(json.dumps({"test": [{"image": str(p)} for p in paths]}))
    flow = workflow(input=str(datalist))
    with pytest.raises(Exception) as info:
        flow.run()
    message = str(root_cause(info.value))
    assert isinstance(root_cause(info.value), FileNotFoundError)
    assert f"cluster model not found: {models / 'cluster_model.json'}" in message
    assert "configs/evaluate.json" in message and "--cluster_model" in message
    assert not (tmp_path / "eval" / "cluster_assignments.csv").exists()

    model = fit_clusters(np.random.default_rng(0).random((20, 8)), "kmeans", 2)
    model.mapping, model.class_names = {0: 1, 1: 0}, ["a", "b"]
    model.save(models / "cluster_model.json")
    workflow(input=str(datalist)).run()
    with open(tmp_path / "eval" / "cluster_assignments.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["image"] for r in rows] == [str(p) for p in paths]
    assert {r["cluster"] for r in rows} <= {"0", "1"} and {r["class"] for r in rows} <= {"a", "b"}
