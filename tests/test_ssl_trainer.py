"""The multi-branch SSL trainer on real MRI: T1c primary views and the co-registered T2w slice as privileged view."""

import pytest
import torch
from ignite.engine import Events
from monai.data import CacheDataset, DataLoader
from monai.handlers import from_engine
from monai.transforms import Compose, CopyItemsd, EnsureTyped, LoadImaged, RandAdjustContrastd, RandFlipd, Resized
from monai.utils import set_determinism

from monai_synpriv.data import load_image_list, pair_datalists
from monai_synpriv.engines import MultiBranchSSLTrainer
from monai_synpriv.losses import CrossViewInfoNCELoss, MultiBranchVICRegLoss
from monai_synpriv.networks import build_multibranch_resnet


def _loader(slice_datalist, n=16):
    a = load_image_list(slice_datalist, key="image", section="training_a", source_key="A", max_items=n)
    b = load_image_list(slice_datalist, key="privileged", section="training_b", source_key="B")
    pairs = pair_datalists(a, b)
    aug = [RandFlipd(k, prob=0.5, spatial_axis=0) for k in ("image", "image_2", "privileged")]
    aug += [RandAdjustContrastd(k, prob=0.8, gamma=(0.7, 1.5)) for k in ("image", "image_2", "privileged")]
    tf = Compose(
        [
            LoadImaged(["image", "privileged"], ensure_channel_first=True, image_only=True),
            EnsureTyped(["image", "privileged"], track_meta=False),
            Resized(["image", "privileged"], (32, 32)),
            CopyItemsd("image", names="image_2"),
            *aug,
        ]
    )
    return DataLoader(CacheDataset(pairs, tf, progress=False), batch_size=8, shuffle=True, drop_last=True)


def test_tri_branch_vicreg_loss_falls_on_real_pairs(slice_datalist):
    set_determinism(0)
    net = build_multibranch_resnet(2, [0, 0, 1], depth=10, projector_dims=(64, 64))
    trainer = MultiBranchSSLTrainer(
        "cpu",
        6,
        _loader(slice_datalist),
        net,
        torch.optim.Adam(net.parameters(), 1e-3),
        MultiBranchVICRegLoss(),
        ["image", "image_2", "privileged"],
    )
    losses = []
    trainer.add_event_handler(
        Events.EPOCH_COMPLETED,
        lambda e: losses.append(e.state.metrics["epoch_loss"]),
    )
    trainer.run()
    assert losses[-1] < losses[0], f"VICReg loss should fall: {losses}"
    out = trainer.state.output
    assert isinstance(out, list) and len(out) == 8  # decollated: MONAI's default handlers can read it
    assert float(from_engine(["loss"], first=True)(out)) == pytest.approx(float(out[0]["loss"]))
    assert out[0]["embedding"].shape == (64,)
    assert {"epoch_loss_invariance", "epoch_loss_variance", "epoch_loss_covariance"} <= set(trainer.state.metrics)


def test_trainer_checks_branch_keys(slice_datalist):
    net = build_multibranch_resnet(2, [0, 1], depth=10, projector_dims=(8,))
    opt = torch.optim.SGD(net.parameters(), 0.1)
    with pytest.raises(ValueError, match="2 branches"):
        MultiBranchSSLTrainer("cpu", 1, [], net, opt, CrossViewInfoNCELoss(), ["image"])
    trainer = MultiBranchSSLTrainer("cpu", 1, [], net, opt, CrossViewInfoNCELoss(), ["image", "privileged"])
    with pytest.raises(KeyError, match=r"\['privileged'\]"):
        trainer._iteration(trainer, {"image": torch.rand(2, 1, 32, 32)})
