"""Contrastive autoencoder parts: the network (2D/3D, AE/VAE), the loss against direct formulas, the trainer on real
BreastMNIST images, and the clustering handler's degenerate case."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import DATA, require

from monai_synpriv.losses import ContrastiveAutoEncoderLoss, gaussian_kl
from monai_synpriv.networks import ContrastiveAutoEncoder, LatentClassifier, LatentEncoder

BREAST = DATA / "medmnist" / "breastmnist.npz"


@pytest.mark.parametrize("spatial_dims", [2, 3])
@pytest.mark.parametrize("variational", [False, True])
def test_network_shapes_and_modes(spatial_dims, variational):
    shape = (1, *([16] * spatial_dims))
    net = ContrastiveAutoEncoder(
        spatial_dims,
        shape,
        latent_size=12,
        channels=(4, 8),
        strides=(2, 2),
        projection_dims=(16, 8),
        variational=variational,
    )
    x = torch.rand(3, *shape)
    recon, mu, logvar, z = net(x)
    assert recon.shape == x.shape and mu.shape == (3, 12) and net.project(z).shape == (3, 8)
    assert float(recon.detach().min()) >= 0 and float(recon.detach().max()) <= 1  # sigmoid output for [0, 1] images
    assert (logvar is None) == (not variational)
    if variational:  # training draws a sample around mu; evaluation uses mu
        assert not torch.allclose(z, mu)
    else:
        assert torch.equal(z, mu)
    net.eval()
    r1, mu1, _, z1 = net(x)
    r2, *_ = net(x)
    assert torch.equal(z1, mu1) and torch.equal(r1, r2)  # deterministic at inference
    assert torch.equal(LatentEncoder(net)(x), mu1)
    assert LatentClassifier(net, 4)(x).shape == (3, 4)
    assert net.sample(5, generator=torch.Generator().manual_seed(0)).shape == (5, *shape)


def test_network_errors_are_actionable():
    with pytest.raises(ValueError, match="divisible by the product of strides"):
        ContrastiveAutoEncoder(2, (1, 30, 30), strides=(2, 2, 2), channels=(4, 8, 8))
    with pytest.raises(ValueError, match="spatial_dims must be 2 or 3"):
        ContrastiveAutoEncoder(1, (1, 16))
    with pytest.raises(ValueError, match="in_shape must be"):
        ContrastiveAutoEncoder(3, (1, 16, 16))
    with pytest.raises(ValueError, match="same length"):
        ContrastiveAutoEncoder(2, (1, 16, 16), channels=(4, 8), strides=(2,))


def _nt_xent(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """SimCLR's NT-Xent written out: for each of the 2N samples, -log softmax of its positive among the other 2N-1."""
    z = F.normalize(torch.cat([a, b]), dim=1)
    sim = z @ z.T / t
    n = a.shape[0]
    total = 0.0
    for i in range(2 * n):
        pos = (i + n) % (2 * n)
        others = [j for j in range(2 * n) if j != i]
        total += -(sim[i, pos] - torch.logsumexp(sim[i, others], 0))
    return total / (2 * n)


def test_loss_terms_against_direct_formulas():
    g = torch.Generator().manual_seed(0)
    views = [torch.rand(6, 1, 8, 8, generator=g) for _ in range(2)]
    recons = [torch.rand(6, 1, 8, 8, generator=g) for _ in range(2)]
    projs = [torch.randn(6, 5, generator=g) for _ in range(2)]
    mus = [torch.randn(6, 4, generator=g) for _ in range(2)]
    logvars = [torch.randn(6, 4, generator=g) * 0.3 for _ in range(2)]
    loss = ContrastiveAutoEncoderLoss(
        reconstruction_weight=2.0, contrastive_weight=0.3, kl_weight=0.01, temperature=0.2
    )
    t = loss.terms(views, recons, projs, mus, logvars)
    mse = np.mean([((r - v) ** 2).mean().item() for r, v in zip(recons, views)])
    kl = np.mean(
        [
            np.mean(
                [
                    -0.5 * sum(1 + lv[i, j].item() - mu[i, j].item() ** 2 - math.exp(lv[i, j].item()) for j in range(4))
                    for i in range(6)
                ]
            )
            for mu, lv in zip(mus, logvars)
        ]
    )
    assert t["reconstruction"].item() == pytest.approx(mse, rel=1e-6)
    assert t["contrastive"].item() == pytest.approx(_nt_xent(projs[0], projs[1], 0.2).item(), rel=1e-5)
    assert t["kl"].item() == pytest.approx(kl, rel=1e-5)
    assert gaussian_kl(torch.zeros(3, 4), torch.zeros(3, 4)).item() == 0.0  # the prior itself
    expected = 2.0 * mse + 0.3 * t["contrastive"].item() + 0.01 * kl
    assert t["total"].item() == pytest.approx(expected, rel=1e-5)
    # the plain autoencoder baseline: no contrastive term, no KL without a variance
    plain = ContrastiveAutoEncoderLoss(contrastive_weight=0.0).terms(views, recons, projs, mus, [None, None])
    assert plain["contrastive"].item() == 0.0 and plain["kl"].item() == 0.0
    assert plain["total"].item() == pytest.approx(mse, rel=1e-6)
    bce = ContrastiveAutoEncoderLoss(reconstruction="bce").terms(views, recons, projs)["reconstruction"]
    assert bce.item() == pytest.approx(
        np.mean([F.binary_cross_entropy(r, v).item() for r, v in zip(recons, views)]), rel=1e-4
    )
    with pytest.raises(ValueError, match="two views"):
        loss.terms(views[:1], recons[:1], projs[:1])
    with pytest.raises(ValueError, match="contrastive_weight must be >= 0"):
        ContrastiveAutoEncoderLoss(contrastive_weight=-1)
    with pytest.raises(ValueError, match="reconstruction must be"):
        ContrastiveAutoEncoderLoss(reconstruction="l1")


def _breast_batches(n_steps: int, batch: int = 32):
    data = np.load(require(BREAST))
    x = torch.as_tensor(data["train_images"][: n_steps * batch], dtype=torch.float32)[:, None] / 255.0
    g = torch.Generator().manual_seed(0)
    out = []
    for i in range(n_steps):
        v = x[i * batch : (i + 1) * batch]
        # two cheap "views": flips and intensity jitter, enough to exercise the two-view path
        v2 = torch.flip(v, dims=[-1]) * (0.9 + 0.2 * torch.rand(len(v), 1, 1, 1, generator=g))
        out.append({"image": v, "image_2": v2.clamp(0, 1)})
    return out


def test_trainer_lowers_the_loss_on_real_images():
    from ignite.engine import Events

    from monai_synpriv.engines import ContrastiveAutoEncoderTrainer

    torch.manual_seed(0)
    batches = _breast_batches(6)
    net = ContrastiveAutoEncoder(
        2, (1, 28, 28), latent_size=16, channels=(8, 16), strides=(2, 2), projection_dims=(32, 16)
    )
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    trainer = ContrastiveAutoEncoderTrainer(
        "cpu",
        max_epochs=8,
        train_data_loader=batches,
        network=net,
        optimizer=opt,
        loss_function=ContrastiveAutoEncoderLoss(),
    )
    history = []
    trainer.add_event_handler(Events.EPOCH_COMPLETED, lambda e: history.append(dict(e.state.metrics)))
    trainer.run()
    first, last = history[0], history[-1]
    assert last["epoch_loss"] < first["epoch_loss"]
    assert last["epoch_loss_reconstruction"] < 0.7 * first["epoch_loss_reconstruction"]
    assert last["epoch_loss_contrastive"] < first["epoch_loss_contrastive"]
    assert trainer.state.output[0]["embedding"].shape == (16,)  # decollated, the latent of view 1

    with pytest.raises(KeyError, match="view_keys"):
        ContrastiveAutoEncoderTrainer(
            "cpu", 1, [{"image": batches[0]["image"]}], net, opt, ContrastiveAutoEncoderLoss()
        ).run()
    with pytest.raises(TypeError, match="ContrastiveAutoEncoder"):
        ContrastiveAutoEncoderTrainer("cpu", 1, batches, torch.nn.Linear(2, 2), opt, ContrastiveAutoEncoderLoss())


def test_clustering_handler_scores_a_degenerate_encoder_as_such(tmp_path):
    """An encoder that maps every image to the same latent: one cluster used, NMI and ARI 0, balanced accuracy
    1 / n_classes, although the accuracy equals the majority rate."""
    from ignite.engine import Engine

    from monai_synpriv.handlers import ClusteringEvaluationHandler

    data = np.load(require(BREAST))
    images = torch.as_tensor(data["test_images"], dtype=torch.float32)[:, None] / 255.0
    labels = data["test_labels"].reshape(-1)
    items = [
        {"image": images[i], "label": int(labels[i]), "split": "training" if i % 2 else "test"}
        for i in range(len(labels))
    ]

    def step(engine, batch):
        engine.state.batch = batch
        return [{"pred": torch.zeros(4)} for _ in batch]  # a collapsed encoder

    engine = Engine(step)
    handler = ClusteringEvaluationHandler(tmp_path, ["malignant", "benign"], n_clusters=2, embedding_plot=False)
    handler.attach(engine)
    engine.run([items[i : i + 16] for i in range(0, len(items), 16)], max_epochs=1)
    test = handler.results["latent"]["test"]
    assert test["n_clusters_used"] == 1 and test["largest_cluster_fraction"] == 1.0
    assert test["nmi"] == pytest.approx(0.0, abs=1e-12) and test["ari"] == pytest.approx(0.0, abs=1e-12)
    assert test["balanced_accuracy"] == pytest.approx(0.5)
    assert test["accuracy"] == pytest.approx(test["majority_rate"]) and test["majority_rate"] > 0.65
    assert math.isnan(test["silhouette"])
    assert engine.state.metrics["test_nmi"] == pytest.approx(0.0, abs=1e-12)
    # raw pixels are not collapsed: the baseline uses both clusters
    assert handler.results["raw_pixels"]["test"]["n_clusters_used"] == 2
    assert (tmp_path / "cluster_model.json").is_file() and (tmp_path / "cluster_montage.png").is_file()
    with pytest.raises(ValueError, match="unknown cluster method 'dbscan'"):
        ClusteringEvaluationHandler(tmp_path, ["a", "b"], method="dbscan")
    with pytest.raises(ValueError, match="unknown feature normalization"):
        ClusteringEvaluationHandler(tmp_path, ["a", "b"], normalization="whiten")


def test_trainer_refuses_a_loader_that_yields_no_batch():
    """One item, batch_size 2, drop_last: no batch at all. Refused up front, naming the counts (ignite would end in
    MONAI's ``NotComputableError: Average must have at least one example``)."""
    from monai.data import DataLoader

    from monai_synpriv.engines import ContrastiveAutoEncoderTrainer

    net = ContrastiveAutoEncoder(2, (1, 28, 28), latent_size=4, channels=(4, 8), strides=(2, 2))
    opt = torch.optim.Adam(net.parameters())
    item = {"image": torch.zeros(1, 28, 28), "image_2": torch.zeros(1, 28, 28)}
    loader = DataLoader([item], batch_size=2, drop_last=True)
    with pytest.raises(ValueError, match=r"yields no batch \(1 item\(s\), batch_size 2, drop_last True\)"):
        ContrastiveAutoEncoderTrainer("cpu", 1, loader, net, opt, ContrastiveAutoEncoderLoss()).run()
    loader = DataLoader(loader.dataset, batch_size=2, drop_last=False)  # the same item, kept: trains
    ContrastiveAutoEncoderTrainer("cpu", 1, loader, net, opt, ContrastiveAutoEncoderLoss(), epoch_length=1).run()
