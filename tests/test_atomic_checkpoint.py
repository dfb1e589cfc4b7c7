"""Atomic checkpoints: a failed or killed save never replaces a good checkpoint with a broken one."""

from __future__ import annotations

import os

import pytest
import torch
from ignite.engine import Engine

from monai_synpriv.handlers import AtomicCheckpointSaver, AtomicDiskSaver
from monai_synpriv.utils import find_latest_checkpoint


class _Unpicklable:
    def __reduce__(self):
        raise RuntimeError("cannot pickle this (simulated failure half-way through torch.save)")


def test_failed_save_keeps_the_previous_file(tmp_path):
    saver = AtomicDiskSaver(tmp_path, filename="model.pt")
    saver({"w": torch.ones(3)}, "ignored.pt")
    with pytest.raises(RuntimeError, match="cannot pickle"):
        saver({"w": torch.zeros(1000), "bad": _Unpicklable()}, "ignored.pt")
    assert torch.equal(torch.load(tmp_path / "model.pt", weights_only=True)["w"], torch.ones(3))
    assert sorted(os.listdir(tmp_path)) == ["model.pt"]  # no temporary file left behind either


def test_saver_writes_the_same_files_as_monai(tmp_path):
    net = torch.nn.Linear(2, 2)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    engine = Engine(lambda e, b: None)
    saver = AtomicCheckpointSaver(
        str(tmp_path),
        {"model": net, "optimizer": opt},
        save_final=True,
        final_filename="model.pt",
        save_interval=1,
        n_saved=2,
    )
    saver.attach(engine)
    engine.run([0, 1], max_epochs=3)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["checkpoint_epoch=2.pt", "checkpoint_epoch=3.pt", "model.pt"]  # n_saved=2 removed epoch 1
    assert find_latest_checkpoint(tmp_path).endswith("checkpoint_epoch=3.pt")
    state = torch.load(tmp_path / "model.pt", weights_only=True)
    assert torch.equal(state["model"]["weight"], net.weight.detach()) and "optimizer" in state
    mode = (tmp_path / "model.pt").stat().st_mode & 0o777
    assert mode & 0o044  # readable by group/others like a plain file (mkstemp alone would give 0600)
