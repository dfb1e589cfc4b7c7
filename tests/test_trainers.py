"""CycleGAN and pix2pix trainers on real MRI slices: first iterations, events, epoch metrics, checkpoint + resume."""

import itertools

import pytest
import torch
from ignite.engine import Events
from monai.data import CacheDataset, DataLoader
from monai.engines import IterationEvents
from monai.handlers import CheckpointLoader, CheckpointSaver
from monai.networks.nets import PatchDiscriminator
from monai.transforms import Compose, EnsureTyped, LoadImaged, Resized
from monai.utils import set_determinism

from monai_synpriv.data import UnpairedDataset, load_image_list, pair_datalists
from monai_synpriv.engines import ConstantThenLinearDecay, CycleGANTrainer, Pix2PixTrainer, TranslationIterationEvents
from monai_synpriv.networks import CycleGANResNetGenerator, Pix2PixUNetGenerator
from monai_synpriv.utils import find_latest_checkpoint


def _domain(datalist, key, section, n=8, size=32):
    items = load_image_list(datalist, key=key, section=section, source_key=key, max_items=n)
    tf = Compose(
        [
            LoadImaged(key, ensure_channel_first=True, image_only=True),
            EnsureTyped(key, track_meta=False),
            Resized(key, (size, size)),
        ]
    )
    return CacheDataset(items, tf, progress=False), items


def _cyclegan(datalist, max_epochs, handlers=None, lr=2e-4, schedule=(1, 2), precision="fp32"):
    set_determinism(0)
    ds_a, _ = _domain(datalist, "A", "training_a")
    ds_b, _ = _domain(datalist, "B", "training_b")
    loader = DataLoader(UnpairedDataset(ds_a, ds_b, seed=0), batch_size=2, shuffle=True, drop_last=True)
    g_ab, g_ba = (CycleGANResNetGenerator(2, 1, 1, channels=4, num_res_blocks=1) for _ in range(2))
    d_a, d_b = (PatchDiscriminator(2, 4, 1, num_layers_d=2, norm="INSTANCE") for _ in range(2))
    g_opt = torch.optim.Adam(itertools.chain(g_ab.parameters(), g_ba.parameters()), lr, betas=(0.5, 0.999))
    d_opt = torch.optim.Adam(itertools.chain(d_a.parameters(), d_b.parameters()), lr, betas=(0.5, 0.999))
    g_sched = torch.optim.lr_scheduler.LambdaLR(g_opt, ConstantThenLinearDecay(*schedule))
    trainer = CycleGANTrainer(
        "cpu",
        max_epochs,
        loader,
        g_ab,
        g_ba,
        d_a,
        d_b,
        g_opt,
        d_opt,
        pool_size=4,
        train_handlers=handlers,
        precision=precision,
    )
    objs = {
        "g_ab": g_ab,
        "g_ba": g_ba,
        "d_a": d_a,
        "d_b": d_b,
        "g_optimizer": g_opt,
        "d_optimizer": d_opt,
        "g_scheduler": g_sched,
        "pool_a": trainer.pool_a,
        "pool_b": trainer.pool_b,
        "trainer": trainer,
    }
    trainer.add_event_handler(Events.EPOCH_COMPLETED, lambda e: g_sched.step())
    return trainer, objs


def test_cyclegan_first_iterations_on_real_slices(slice_datalist):
    trainer, objs = _cyclegan(slice_datalist, max_epochs=2)
    fired = {"model": 0, "gen": 0, "disc": 0}
    trainer.add_event_handler(IterationEvents.MODEL_COMPLETED, lambda e: fired.__setitem__("model", fired["model"] + 1))
    trainer.add_event_handler(
        TranslationIterationEvents.GENERATORS_COMPLETED, lambda e: fired.__setitem__("gen", fired["gen"] + 1)
    )
    trainer.add_event_handler(
        TranslationIterationEvents.DISCRIMINATORS_COMPLETED, lambda e: fired.__setitem__("disc", fired["disc"] + 1)
    )
    trainer.run()
    assert fired == {"model": 8, "gen": 8, "disc": 8}  # 8 A slices / batch 2 = 4 iterations x 2 epochs
    out = trainer.state.output
    assert isinstance(out, list) and len(out) == 2  # decollated for MONAI's default handlers
    for key in ("loss", "loss_g", "loss_d_a", "loss_d_b", "loss_cycle_a", "loss_identity_b"):
        assert torch.isfinite(torch.as_tensor(out[0][key])), key
    assert out[0]["fake_b"].shape == (1, 32, 32)
    m = trainer.state.metrics
    assert {"epoch_loss_g", "epoch_loss_d_a", "epoch_loss_cycle_a"} <= set(m)
    assert m["epoch_loss_g"] == pytest.approx(
        m["epoch_loss_gan_ab"]
        + m["epoch_loss_gan_ba"]
        + m["epoch_loss_cycle_a"]
        + m["epoch_loss_cycle_b"]
        + m["epoch_loss_identity_a"]
        + m["epoch_loss_identity_b"],
        rel=1e-4,
    )
    assert len(trainer.pool_a) == 4


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_cyclegan_generators_learn_the_cycle_on_real_slices(slice_datalist, precision):
    """The generators learn: the cycle-consistency loss (A -> B -> A plus B -> A -> B, weighted) falls to under half
    within 6 epochs of 4 iterations at a constant lr of 2e-3. Measured 8.26 -> 1.61 (0.19x) in fp32; with lr 0 the
    same run stays at 9.11 -> 9.14 (1.00x), so a trainer whose generators never step fails here. bf16 (autocast on
    this CPU's AMX units) must learn as well."""
    trainer, _ = _cyclegan(slice_datalist, max_epochs=6, lr=2e-3, schedule=(6, 0), precision=precision)
    cycle = []
    trainer.add_event_handler(
        Events.EPOCH_COMPLETED,
        lambda e: cycle.append(e.state.metrics["epoch_loss_cycle_a"] + e.state.metrics["epoch_loss_cycle_b"]),
    )
    trainer.run()
    assert len(cycle) == 6 and cycle[-1] < 0.5 * cycle[0], f"cycle-consistency loss did not fall: {cycle}"


def test_cyclegan_checkpoint_and_resume(slice_datalist, tmp_path):
    trainer, objs = _cyclegan(slice_datalist, max_epochs=2)
    CheckpointSaver(str(tmp_path), objs, epoch_level=True, save_interval=1, n_saved=2).attach(trainer)
    trainer.run()
    ckpt = find_latest_checkpoint(tmp_path)
    assert ckpt is not None and ckpt.endswith("epoch=2.pt")
    saved = {k: v.clone() for k, v in objs["g_ab"].state_dict().items()}
    saved_pool = [t.clone() for t in objs["pool_b"].images]
    saved_lr = objs["g_optimizer"].param_groups[0]["lr"]

    # a fresh process: new networks, then resume to 3 epochs
    resumed, robjs = _cyclegan(slice_datalist, max_epochs=3)
    iterations = []
    resumed.add_event_handler(Events.ITERATION_COMPLETED, lambda e: iterations.append(e.state.iteration))
    CheckpointLoader(ckpt, {k: v for k, v in robjs.items()}, map_location="cpu").attach(resumed)
    state_at_start = {}

    @resumed.on(Events.STARTED)
    def _snapshot(engine):  # runs after the loader (attached first)
        state_at_start["epoch"] = engine.state.epoch
        state_at_start["g_ab"] = {k: v.clone() for k, v in robjs["g_ab"].state_dict().items()}
        state_at_start["lr"] = robjs["g_optimizer"].param_groups[0]["lr"]
        state_at_start["pool"] = [t.clone() for t in robjs["pool_b"].images]

    resumed.run()
    assert state_at_start["epoch"] == 2
    assert all(torch.equal(saved[k], state_at_start["g_ab"][k]) for k in saved)
    assert state_at_start["lr"] == pytest.approx(saved_lr)
    assert len(state_at_start["pool"]) == len(saved_pool)
    assert all(torch.equal(a, b) for a, b in zip(saved_pool, state_at_start["pool"]))
    assert resumed.state.epoch == 3 and iterations == [9, 10, 11, 12], "resume must continue, not restart"


def test_pix2pix_trainer_on_aligned_pairs(slice_datalist):
    set_determinism(0)
    items_a = load_image_list(slice_datalist, key="A", section="training_a", source_key="A", max_items=8)
    items_b = load_image_list(slice_datalist, key="B", section="training_b", source_key="B")
    pairs = pair_datalists(items_a, items_b)
    assert len(pairs) == 8
    tf = Compose(
        [
            LoadImaged(["A", "B"], ensure_channel_first=True, image_only=True),
            EnsureTyped(["A", "B"], track_meta=False),
            Resized(["A", "B"], (32, 32)),
        ]
    )
    loader = DataLoader(CacheDataset(pairs, tf, progress=False), batch_size=4)
    g = Pix2PixUNetGenerator(2, 1, 1, channels=8, num_downs=3)
    d = PatchDiscriminator(2, 8, 2, num_layers_d=2)
    trainer = Pix2PixTrainer(
        "cpu", 6, loader, g, d, torch.optim.Adam(g.parameters(), 1e-3), torch.optim.Adam(d.parameters(), 1e-3)
    )
    l1 = []
    trainer.add_event_handler(Events.EPOCH_COMPLETED, lambda e: l1.append(e.state.metrics["epoch_loss_l1"]))
    trainer.run()
    assert l1[-1] < l1[0], f"L1 to the real FLAIR should fall on paired data: {l1}"
    with pytest.raises(KeyError, match="'B'"):
        trainer._get_pair({"A": torch.zeros(1)})


def test_batched_generator_passes_equal_separate_passes():
    torch.manual_seed(0)
    g_ab, g_ba = (CycleGANResNetGenerator(2, 1, 1, channels=4, num_res_blocks=1) for _ in range(2))
    d_a, d_b = (PatchDiscriminator(2, 4, 1, num_layers_d=2, norm="INSTANCE") for _ in range(2))
    opt = torch.optim.SGD(g_ab.parameters(), 0.0)
    a, b = torch.rand(2, 1, 16, 16), torch.rand(3, 1, 16, 16)
    outs = []
    for batched in (True, False):
        t = CycleGANTrainer("cpu", 1, [], g_ab, g_ba, d_a, d_b, opt, opt, batch_generator_passes=batched)
        assert t.batch_generator_passes is batched
        outs.append(t._generate(a, b, with_identity=True))
    for key in outs[0]:
        torch.testing.assert_close(outs[0][key], outs[1][key], rtol=1e-5, atol=1e-6, msg=key)
