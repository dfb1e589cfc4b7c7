"""CUT / FastCUT: PatchNCE against its formula, the patch sampler, 2D/3D trainer shapes, learning on real slices,
TorchScript export, checkpoint + resume; and the MIND structure loss."""

import itertools
import math

import pytest
import torch
from ignite.engine import Events
from monai.data import CacheDataset, DataLoader
from monai.handlers import CheckpointLoader, CheckpointSaver
from monai.networks.nets import PatchDiscriminator
from monai.transforms import Compose, EnsureTyped, LoadImaged, Resized
from monai.utils import set_determinism

from monai_synpriv.data import UnpairedDataset, load_image_list
from monai_synpriv.engines import CUTTrainer
from monai_synpriv.losses import CUTGeneratorLoss, CycleGANGeneratorLoss, MINDStructureLoss, PatchNCELoss
from monai_synpriv.networks import CycleGANResNetGenerator, PatchSampleMLP
from monai_synpriv.utils import find_latest_checkpoint


def _patchnce_by_hand(q, k, batch_size, temperature):
    """The PatchNCE of one patch, written out: -log softmax of the positive among the same image's patches."""
    per_image = q.shape[0] // batch_size
    losses = []
    for row in range(q.shape[0]):
        b = row // per_image
        pos = math.exp(float(q[row] @ k[row]) / temperature)
        neg = sum(
            math.exp(float(q[row] @ k[b * per_image + j]) / temperature)
            for j in range(per_image)
            if b * per_image + j != row
        )
        losses.append(-math.log(pos / (pos + neg + math.exp(-10.0 / temperature))))
    return torch.tensor(losses)


def test_patchnce_matches_the_formula():
    torch.manual_seed(0)
    q = torch.nn.functional.normalize(torch.randn(2 * 5, 8), dim=1)
    k = torch.nn.functional.normalize(torch.randn(2 * 5, 8), dim=1)
    got = PatchNCELoss(temperature=0.5)(q, k, batch_size=2)
    # the masked self-negative contributes exp(-10 / T): the reference fills the diagonal with -10
    assert torch.allclose(got, _patchnce_by_hand(q, k, 2, 0.5), atol=1e-5)
    # a query equal to its key and orthogonal to the others scores far better than a random one
    eye = torch.eye(5, 8)
    assert PatchNCELoss(0.07)(eye, eye, 1).mean() < 1e-3 < got.mean()


def test_patchnce_negatives_stay_within_each_image():
    """Changing the second image's keys must not change the first image's losses."""
    torch.manual_seed(1)
    q = torch.nn.functional.normalize(torch.randn(8, 4), dim=1)
    k = torch.nn.functional.normalize(torch.randn(8, 4), dim=1)
    k2 = k.clone()
    k2[4:] = torch.nn.functional.normalize(torch.randn(4, 4), dim=1)
    a, b = PatchNCELoss()(q, k, 2), PatchNCELoss()(q, k2, 2)
    assert torch.allclose(a[:4], b[:4]) and not torch.allclose(a[4:], b[4:])
    with pytest.raises(ValueError, match="batch_size"):
        PatchNCELoss()(q, k, 3)


def test_patch_sampler_reuses_locations_and_normalises():
    g = CycleGANResNetGenerator(2, 1, 1, channels=4, num_res_blocks=2)
    layers = g.default_nce_layers()
    head = PatchSampleMLP(g.feature_channels(layers), hidden_channels=16)
    x = torch.rand(3, 1, 16, 16)
    feats = g.encode(x, layers)
    samples, ids = head(feats, num_patches=10)
    assert [s.shape for s in samples] == [(3 * min(10, f[0, 0].numel()), 16) for f in feats]
    assert all(torch.allclose(s.norm(dim=1), torch.ones(s.shape[0])) for s in samples)
    again, ids2 = head(feats, patch_ids=ids)  # same locations -> same samples
    assert all(torch.equal(a, b) for a, b in zip(samples, again)) and all(torch.equal(a, b) for a, b in zip(ids, ids2))
    with pytest.raises(ValueError, match="expected"):
        head(feats[::-1], num_patches=4)


def test_generator_encode_matches_the_reference_layers_and_forward():
    g = CycleGANResNetGenerator(2, 1, 1, channels=4, num_res_blocks=9)
    assert g.default_nce_layers() == [0, 4, 8, 12, 16]  # the reference's nce_layers for resnet_9blocks
    x = torch.rand(1, 1, 16, 16)
    feats = g.encode(x, [0, len(g.model) - 1])
    assert torch.equal(feats[0], g.model[0](x)) and torch.allclose(feats[1], g(x))
    with pytest.raises(ValueError, match="ascending"):
        g.encode(x, [4, 0])


def _cut(loader, spatial_dims=2, lr=2e-4, fast=False, handlers=None, max_epochs=1, structure=0.0):
    set_determinism(0)
    g = CycleGANResNetGenerator(spatial_dims, 1, 1, channels=4, num_res_blocks=2)
    d = PatchDiscriminator(spatial_dims, 4, 1, num_layers_d=2, norm="INSTANCE")
    head = PatchSampleMLP(g.feature_channels(g.default_nce_layers()), hidden_channels=32)
    g_opt = torch.optim.Adam(itertools.chain(g.parameters(), head.parameters()), lr, betas=(0.5, 0.999))
    d_opt = torch.optim.Adam(d.parameters(), lr, betas=(0.5, 0.999))
    loss = CUTGeneratorLoss(
        lambda_nce=10.0 if fast else 1.0,
        nce_idt=not fast,
        structure_loss=MINDStructureLoss() if structure else None,
        lambda_structure=structure,
    )
    trainer = CUTTrainer(
        "cpu", max_epochs, loader, g, d, head, g_opt, d_opt, g_loss_function=loss, num_patches=64,
        flip_equivariance=fast, train_handlers=handlers, precision="fp32",
    )  # fmt: skip
    return trainer, {"generator": g, "discriminator": d, "patch_mlp": head, "g_optimizer": g_opt,
                     "d_optimizer": d_opt, "trainer": trainer}  # fmt: skip


@pytest.mark.parametrize("spatial_dims", [2, 3])
@pytest.mark.parametrize("fast", [False, True])
def test_cut_iteration_shapes_2d_3d(spatial_dims, fast):
    size = [16] * spatial_dims
    batches = [{"A": torch.rand(2, 1, *size), "B": torch.rand(2, 1, *size)} for _ in range(2)]
    trainer, objs = _cut(batches, spatial_dims, fast=fast, structure=1.0)
    before = {k: v.clone() for k, v in objs["patch_mlp"].state_dict().items()}
    trainer.run()
    out = trainer.state.output
    assert isinstance(out, list) and len(out) == 2  # decollated for MONAI's default handlers
    assert out[0]["fake_b"].shape == (1, *size)
    m = trainer.state.metrics
    assert m["epoch_loss_nce"] > 0 and m["epoch_loss_structure"] > 0 and m["epoch_loss_d"] > 0
    assert (m["epoch_loss_nce_idt"] > 0) == (not fast)
    parts = sum(m[f"epoch_loss_{t}"] for t in ("gan", "nce", "nce_idt", "structure"))
    assert m["epoch_loss_g"] == pytest.approx(parts, rel=1e-4)
    # the MLP head is in the generator's optimiser and learns
    assert any(not torch.equal(before[k], v) for k, v in objs["patch_mlp"].state_dict().items())


def _real_loader(datalist, n=8, size=32):
    def domain(key, section):
        items = load_image_list(datalist, key=key, section=section, source_key=key, max_items=n)
        tf = Compose([LoadImaged(key, ensure_channel_first=True, image_only=True), EnsureTyped(key, track_meta=False),
                      Resized(key, (size, size))])  # fmt: skip
        return CacheDataset(items, tf, progress=False)

    return DataLoader(UnpairedDataset(domain("A", "training_a"), domain("B", "training_b"), seed=0), batch_size=2,
                      shuffle=True, drop_last=True)  # fmt: skip


@pytest.mark.parametrize("fast", [False, True])
def test_cut_learns_patchnce_on_real_slices(slice_datalist, fast):
    """PatchNCE falls on real MRI slices (8 epochs of 4 iterations at lr 2e-3, 64 patches: chance is log(64) = 4.16
    per patch, times the weight 0.5 (CUT) or 10 (FastCUT)). Measured: CUT 2.35 -> 1.38 (0.59x), FastCUT 48.3 -> 35.5
    (0.74x); the same runs at lr 0 stay at 2.65 -> 2.64 (1.00x) and 52.7 -> 55.0 (1.04x), so a trainer whose
    generator or head never steps fails here."""
    loader = _real_loader(slice_datalist)
    trainer, _ = _cut(loader, lr=2e-3, fast=fast, max_epochs=8)
    nce = []
    trainer.add_event_handler(Events.EPOCH_COMPLETED, lambda e: nce.append(e.state.metrics["epoch_loss_nce"]))
    trainer.run()
    weight = 10.0 if fast else 0.5
    assert nce[0] > 0.8 * weight * math.log(64), f"first epoch already far below chance: {nce}"
    assert nce[-1] < 0.8 * nce[0], f"PatchNCE did not fall: {nce}"


def test_cut_checkpoint_and_resume(slice_datalist, tmp_path):
    trainer, objs = _cut(_real_loader(slice_datalist), max_epochs=2)
    CheckpointSaver(str(tmp_path), objs, epoch_level=True, save_interval=1, n_saved=1).attach(trainer)
    trainer.run()
    ckpt = find_latest_checkpoint(tmp_path)
    assert ckpt is not None and ckpt.endswith("epoch=2.pt")
    saved = {k: v.clone() for k, v in objs["patch_mlp"].state_dict().items()}

    resumed, robjs = _cut(_real_loader(slice_datalist), max_epochs=3)
    CheckpointLoader(ckpt, robjs, map_location="cpu").attach(resumed)
    at_start = {}

    @resumed.on(Events.STARTED)
    def _snapshot(engine):
        at_start["epoch"] = engine.state.epoch
        at_start["mlp"] = {k: v.clone() for k, v in robjs["patch_mlp"].state_dict().items()}

    iterations = []
    resumed.add_event_handler(Events.ITERATION_COMPLETED, lambda e: iterations.append(e.state.iteration))
    resumed.run()
    assert at_start["epoch"] == 2 and all(torch.equal(saved[k], at_start["mlp"][k]) for k in saved)
    assert iterations == [9, 10, 11, 12], "resume must continue, not restart"


def test_cut_generator_exports_to_torchscript(tmp_path):
    batches = [{"A": torch.rand(2, 1, 16, 16), "B": torch.rand(2, 1, 16, 16)}]
    trainer, objs = _cut(batches)
    trainer.run()
    g = objs["generator"].eval()
    scripted = torch.jit.script(g)
    scripted.save(str(tmp_path / "g.ts"))
    x = torch.rand(1, 1, 32, 32)
    assert torch.allclose(torch.jit.load(str(tmp_path / "g.ts"))(x), g(x), atol=1e-6)


def test_cut_rejects_a_generator_without_encoder():
    net = torch.nn.Conv2d(1, 1, 1)
    with pytest.raises(TypeError, match="encode"):
        CUTTrainer("cpu", 1, [], net, net, PatchSampleMLP([1]), torch.optim.Adam(net.parameters()),
                   torch.optim.Adam(net.parameters()))  # fmt: skip


def test_mind_structure_loss_ignores_contrast_but_not_geometry():
    torch.manual_seed(0)
    a = torch.nn.functional.avg_pool2d(torch.rand(2, 1, 36, 36), 5, stride=1)  # smooth, 32 x 32
    mind = MINDStructureLoss()
    assert mind(a, a) < 1e-6
    assert mind(a, 1.0 - a) < 1e-6  # inverted contrast: same structure
    assert mind(a, 0.3 * a + 0.2) < 1e-4  # affine contrast change
    shifted = mind(a, torch.roll(a, 3, dims=2))
    assert shifted > 0.05 and mind(a, torch.rand_like(a)) > 0.05
    vol = torch.rand(1, 1, 12, 12, 12)
    assert mind(vol, 1 - vol) < 1e-6 < mind(vol, torch.rand_like(vol))


def test_cyclegan_loss_adds_the_structure_term():
    torch.manual_seed(0)
    a, b = torch.rand(2, 1, 16, 16), torch.rand(2, 1, 16, 16)
    logits = torch.zeros(2, 1, 4, 4)
    plain = CycleGANGeneratorLoss(lambda_identity=0)(logits, logits, a, b, a, b)
    with_s = CycleGANGeneratorLoss(lambda_identity=0, structure_loss=MINDStructureLoss(), lambda_structure=2.0)(
        logits, logits, a, b, a, b, fake_a=torch.rand_like(b), fake_b=torch.rand_like(a)
    )
    assert plain["structure"] == 0 and with_s["structure"] > 0
    assert torch.isclose(with_s["total"], plain["total"] + with_s["structure"])
    with pytest.raises(ValueError, match="structure_loss"):
        CycleGANGeneratorLoss(lambda_structure=1.0)
