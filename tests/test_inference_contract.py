"""The inference-config contract shared by every bundle: no data needed to build the workflow (model-zoo's checks),
a clear stop naming the override when a run has no data, and the encoder bundles' evaluator writing embeddings."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from ignite.engine import Engine

from monai_synpriv.bundle_checks import DATA_ENV, data_path, require_data
from monai_synpriv.handlers import EmbeddingWriter


def test_optional_data_path_is_none_without_data_and_the_run_names_the_overrides(monkeypatch, tmp_path):
    monkeypatch.delenv(DATA_ENV, raising=False)
    assert data_path("dataset_dir", "mri_brain_multicontrast", required=False) is None
    with pytest.raises(ValueError, match="--dataset_dir"):
        data_path("dataset_dir", "mri_brain_multicontrast")  # required (training configs): fails at once
    with pytest.raises(ValueError) as err:
        require_data(None, "dataset_dir", ["input_datalist"], subdir="mri_brain_multicontrast")
    message = str(err.value)
    assert "--dataset_dir /path/to/mri_brain_multicontrast" in message and "--input_datalist" in message
    assert DATA_ENV in message
    assert require_data("given.json", "dataset_dir") == "given.json"
    # the variable set: the path, whether required or not; a wrong folder still fails at once
    (tmp_path / "mri_brain_multicontrast").mkdir()
    monkeypatch.setenv(DATA_ENV, str(tmp_path))
    assert data_path("dataset_dir", "mri_brain_multicontrast", required=False) == str(tmp_path / "mri_brain_multicontrast")
    with pytest.raises(FileNotFoundError, match="absent_set"):
        data_path("dataset_dir", "absent_set", required=False)


def _run_writer(batches: list[torch.Tensor], items: list[dict], out, decollate: bool = False) -> EmbeddingWriter:
    def step(engine, batch):
        return [{"pred": p} for p in batch] if decollate else {"pred": batch}

    engine = Engine(step)
    writer = EmbeddingWriter(items, out)
    writer.attach(engine)
    engine.run(batches, max_epochs=1)
    return writer


@pytest.mark.parametrize("decollate", [False, True])
def test_embedding_writer_keeps_item_order_and_fields(tmp_path, decollate):
    items = [{"image": f"img{i}.png", "label": i % 2} for i in range(5)]
    emb = torch.arange(5 * 3, dtype=torch.float32).reshape(5, 3)
    _run_writer([emb[:2], emb[2:4], emb[4:]], items, tmp_path, decollate=decollate)
    np.testing.assert_array_equal(np.load(tmp_path / "embeddings.npy"), emb.numpy())
    with open(tmp_path / "embeddings.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["row"], r["image"], r["label"]) for r in rows] == [(str(i), f"img{i}.png", str(i % 2)) for i in range(5)]


def test_embedding_writer_refuses_non_finite_and_miscounted_embeddings(tmp_path):
    items = [{"image": f"img{i}.png"} for i in range(3)]
    emb = torch.zeros(3, 4)
    emb[1, 2] = float("nan")
    with pytest.raises(ValueError, match="non-finite embedding.*img1.png"):
        _run_writer([emb], items, tmp_path / "nan")
    assert not (tmp_path / "nan" / "embeddings.npy").exists()
    with pytest.raises(ValueError, match="2 embeddings for 3 items"):
        _run_writer([torch.zeros(2, 4)], items, tmp_path / "short")
    assert not (tmp_path / "short" / "embeddings.npy").exists()


def test_weights_carry_their_architecture_and_a_mismatch_names_the_overrides(tmp_path):
    """AtomicCheckpointSaver writes models/model.network.json beside model.pt; weights of a ResNet-10 given to a
    config that builds a ResNet-18 stop with --depth 10, and load where the architecture matches."""
    from monai_synpriv.handlers import AtomicCheckpointSaver
    from monai_synpriv.networks import make_resnet_encoder
    from monai_synpriv.utils import architecture_path, load_network_weights

    torch.manual_seed(0)
    trained = make_resnet_encoder(2, 1, 10)
    engine = Engine(lambda e, b: None)
    arch = {"spatial_dims": 2, "in_channels": 1, "depth": 10}
    AtomicCheckpointSaver(str(tmp_path), {"model": trained}, save_final=True, final_filename="model.pt",
                          architecture=arch).attach(engine)  # fmt: skip
    engine.run([0], max_epochs=1)
    ckpt = tmp_path / "model.pt"
    assert architecture_path(ckpt) == tmp_path / "model.network.json" and architecture_path(ckpt).is_file()

    with pytest.raises(ValueError, match=r"depth=10 \(config: 18\).*Pass --depth 10 "):
        load_network_weights(make_resnet_encoder(2, 1, 18), ckpt, architecture={**arch, "depth": 18})
    loaded = load_network_weights(make_resnet_encoder(2, 1, 10), ckpt, architecture=arch)
    key = next(iter(trained.state_dict()))
    assert torch.equal(loaded.state_dict()[key], trained.state_dict()[key])
    # weights from elsewhere (no record): the tensors are compared, and the error still says what does not fit
    architecture_path(ckpt).unlink()
    with pytest.raises(ValueError, match="does not fit the config's network: .*missing from the weights"):
        load_network_weights(make_resnet_encoder(2, 1, 18), ckpt, architecture={**arch, "depth": 18})


def test_a_final_save_on_error_rewrites_the_architecture_record(tmp_path):
    """The weights MONAI's saver writes when training stops on an error get their own record: a record left by an
    earlier run of another architecture must not describe them."""
    from monai_synpriv.handlers import AtomicCheckpointSaver
    from monai_synpriv.utils import read_architecture

    def run(depth: int, fail: bool) -> None:
        def step(engine, batch):
            if fail:
                raise RuntimeError("stopped")

        engine = Engine(step)
        AtomicCheckpointSaver(str(tmp_path), {"model": torch.nn.Linear(2, depth)}, save_final=True,
                              final_filename="model.pt", architecture={"depth": depth}).attach(engine)  # fmt: skip
        engine.run([0], max_epochs=1)

    run(10, fail=False)
    assert read_architecture(tmp_path / "model.pt") == {"depth": 10}
    with pytest.raises(RuntimeError, match="stopped"):
        run(18, fail=True)
    assert torch.load(tmp_path / "model.pt", weights_only=True)["weight"].shape[0] == 18
    assert read_architecture(tmp_path / "model.pt") == {"depth": 18}
