"""Output folders stay consistent: one translator checkpoint per folder, a lock against concurrent runs, outputs inside
the input folder never read back as input, and no temporary files of interrupted checkpoint saves left after a resume.

The bundle runs are ``python -m monai.bundle`` subprocesses on real MRI slices (T1c, public multi-contrast set) with
two tiny generators of random weights in the bundle's checkpoint format (a plain state dict in ``model.pt``).
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import BUNDLE, REPO, bundle, expr

from monai_synpriv.data.datalist import OUTPUT_FOLDER_MARKERS, folder_to_datalist, load_image_list
from monai_synpriv.inference import (
    LOCK_FILE,
    MANIFEST,
    acquire_output_lock,
    check_provenance,
    plan_outputs,
    release_output_lock,
)
from monai_synpriv.utils.io import ATOMIC_TEMP_PATTERN, FolderLock, FolderLockedError, atomic_path

TINY = ["--ngf", "4", "--num_res_blocks", "1", "--image_size", "[32,32]"]
SUBJECT = "BraTS-GLI-00001-000"


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _state(folder: Path) -> dict[str, tuple[int, str]]:
    """Every file below ``folder`` (hidden ones included): modification time and content digest."""
    return {str(p.relative_to(folder)): (p.stat().st_mtime_ns, _sha(p)) for p in folder.rglob("*") if p.is_file()}


def _generator_checkpoint(folder: Path, seed: int) -> Path:
    """``folder/model.pt``: the inference network (TINY size) with random weights, as a plain state dict."""
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(BUNDLE / "configs" / "inference.json")
    parser.update({"bundle_root": str(BUNDLE), "ngf": 4, "num_res_blocks": 1})
    torch.manual_seed(seed)
    net = parser.get_parsed_content("network_def")
    folder.mkdir(parents=True)
    torch.save(net.state_dict(), folder / "model.pt")
    return folder / "model.pt"


@pytest.fixture(scope="module")
def slices(tmp_path_factory, multicontrast_dir) -> Path:
    """Real axial T1c slices (2D NIfTI) of one subject: three in ``t1c/<subject>``, a fourth in ``more/<subject>``."""
    from monai_synpriv.data import load_normalized_volume, save_slice

    root = tmp_path_factory.mktemp("inputs")
    volume = load_normalized_volume(multicontrast_dir / SUBJECT / "t1c.nii.gz")
    for z in (60, 75, 90, 105):
        save_slice(volume, z, root / ("more" if z == 105 else "t1c") / SUBJECT / f"t1c_z{z:03d}.nii.gz")
    return root


@pytest.fixture(scope="module")
def input_folder(slices) -> Path:
    """A user's input folder of three real slices."""
    return slices / "t1c"


def _infer(ckpt_dir: Path, inputs: Path, output_dir: Path, *extra: str, check: bool = True):
    return bundle(
        "run", "--config_file", "configs/inference.json", "--bundle_root", str(BUNDLE), *TINY,
        "--ckpt_dir", str(ckpt_dir), "--input_datalist", str(inputs), "--input_key", "image",
        "--output_dir", expr(output_dir), *extra, check=check,
    )  # fmt: skip


def test_one_checkpoint_per_output_folder_inside_the_input_folder(tmp_path, input_folder, slices):
    """A second checkpoint into a used folder is refused before any work, even for other inputs (no output to
    overwrite: the fault was that both runs succeeded and the folder mixed two translators); a re-run with the same
    checkpoint content (another path) skips everything and reads no output back as input; ``--overwrite True``
    starts over cleanly."""
    inputs = tmp_path / "t1c"
    shutil.copytree(input_folder, inputs)
    ckpt_a = _generator_checkpoint(tmp_path / "a", seed=1)
    ckpt_b = _generator_checkpoint(tmp_path / "b", seed=2)
    shutil.copytree(tmp_path / "a", tmp_path / "a_copy")  # same content, other path
    sha_a, sha_b = _sha(ckpt_a), _sha(ckpt_b)
    assert sha_a != sha_b
    out = inputs / "eval"  # the output folder lies inside the input folder
    syn = out / "synthetic"

    _infer(tmp_path / "a", inputs, out)
    manifest = json.loads((syn / MANIFEST).read_text())
    assert manifest["checkpoint_sha256"] == sha_a and len(manifest["outputs"]) == 3
    paired = json.loads((syn / "paired_datalist.json").read_text())
    assert len(paired["training"]) == 3 and paired["translator"]["checkpoint_sha256"] == sha_a
    first = _state(syn)
    images = {k for k in first if k.endswith(".nii.gz")}
    assert len(images) == 3 and not (syn / LOCK_FILE).exists(), sorted(first)

    # another checkpoint (and another input) into the same folder: refused, naming the folder, both checkpoints and
    # the fix; nothing touched
    proc = _infer(tmp_path / "b", slices / "more", out, check=False)
    assert proc.returncode != 0
    err = proc.stderr
    for text in (str(syn), str(ckpt_a), str(ckpt_b), sha_a[:12], sha_b[:12], "--output_dir", "--overwrite True"):
        assert text in err, f"{text!r} missing from the error:\n{err[-3000:]}"
    assert _state(syn) == first, "the refused run changed the folder"

    # the same checkpoint content from another path: allowed, idempotent, no output read back as input
    _infer(tmp_path / "a_copy", inputs, out)
    again = _state(syn)
    assert {k: v for k, v in again.items() if k in images} == {k: first[k] for k in images}, "outputs were rewritten"
    assert set(again) == set(first), f"unexpected files: {sorted(set(again) ^ set(first))}"
    paired = json.loads((syn / "paired_datalist.json").read_text())
    assert len(paired["training"]) == 3, "outputs inside the input folder were read back as inputs"
    assert all(Path(e["image"]).parent == inputs / SUBJECT for e in paired["training"])
    assert json.loads((syn / MANIFEST).read_text())["checkpoint_sha256"] == sha_a

    # --overwrite True: the old outputs are deleted first, everything comes from the second checkpoint
    _infer(tmp_path / "b", inputs, out, "--overwrite", "True")
    final = _state(syn)
    assert set(final) == set(first) and not (syn / LOCK_FILE).exists()
    assert all(final[k][1] != first[k][1] for k in images), "an output of the first checkpoint survived"
    assert json.loads((syn / MANIFEST).read_text())["checkpoint_sha256"] == sha_b
    assert json.loads((syn / "paired_datalist.json").read_text())["translator"]["checkpoint_sha256"] == sha_b


def test_provenance_compares_content_and_accounts_for_every_file(tmp_path):
    """A retrained checkpoint at the same path is refused even for other inputs (the old check only looked at the
    outputs of the current items), files no manifest accounts for are refused, and overwrite never deletes them."""
    ckpt = tmp_path / "model.pt"
    torch.save({"w": torch.zeros(2)}, ckpt)
    out = tmp_path / "syn"
    first = [{"image": "a", "privileged": str(out / "s1" / "a.nii.gz")}]
    other = [{"image": "b", "privileged": str(out / "s2" / "b.nii.gz")}]
    check_provenance(out, ckpt, first)
    assert (out / LOCK_FILE).is_file()
    (out / "s1").mkdir()
    (out / "s1" / "a.nii.gz").write_bytes(b"written by the first checkpoint")
    (out / "s1" / ".a.k2j4_x9q.nii.gz").write_bytes(b"left by a killed write")
    check_provenance(out, ckpt, other)  # same content, other inputs: fine, both recorded
    assert not (out / "s1" / ".a.k2j4_x9q.nii.gz").exists(), "leftover temporary output not removed"
    assert json.loads((out / MANIFEST).read_text())["outputs"] == ["s1/a.nii.gz", "s2/b.nii.gz"]
    assert release_output_lock(out) and not (out / LOCK_FILE).exists()

    torch.save({"w": torch.ones(2)}, ckpt)  # retrained in place: same path, other content
    with pytest.raises(RuntimeError, match="another translator checkpoint") as e:
        check_provenance(out, ckpt, other)
    assert str(out) in str(e.value) and "--overwrite True" in str(e.value)
    assert not (out / LOCK_FILE).exists(), "a refused run must release the lock"

    (out / "notes.txt").write_text("the user's own file")
    with pytest.raises(RuntimeError, match="notes.txt"):
        check_provenance(out, ckpt, other, overwrite=True)
    assert (out / "s1" / "a.nii.gz").exists(), "overwrite deleted outputs before refusing"
    os.remove(out / "notes.txt")
    check_provenance(out, ckpt, other, overwrite=True)
    assert not (out / "s1").exists(), "the first checkpoint's output (another input's) must be deleted"
    release_output_lock(out)

    torch.save({"w": torch.full((2,), 2.0)}, tmp_path / "new.pt")
    legacy = tmp_path / "legacy"  # outputs without a manifest: unknown provenance
    legacy.mkdir()
    (legacy / "x.nii.gz").write_bytes(b"?")
    with pytest.raises(RuntimeError, match=f"no {MANIFEST}"):
        check_provenance(legacy, tmp_path / "new.pt", first)


# another run's process: it loads monai_synpriv/utils/io.py alone (no torch import: starts in a fraction of a second)
_HOLDER = """
import importlib.util, sys, time
spec = importlib.util.spec_from_file_location("synpriv_io", sys.argv[3])
io = importlib.util.module_from_spec(spec)
spec.loader.exec_module(io)
io.FolderLock(sys.argv[1], name=sys.argv[4], purpose="test holder").acquire()
if sys.argv[2] == "raise":
    raise RuntimeError("simulated failure after taking the lock")
print("locked", flush=True)
time.sleep(600)
"""


def _holder(folder: Path, mode: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(folder), mode, str(REPO / "monai_synpriv" / "utils" / "io.py"), LOCK_FILE],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )


def test_lock_refuses_a_concurrent_run_and_takes_over_a_dead_ones(tmp_path, caplog):
    torch.save({"w": torch.zeros(1)}, tmp_path / "model.pt")
    out = tmp_path / "syn"
    proc = _holder(out, "wait")
    try:
        assert proc.stdout.readline().strip() == "locked", proc.stderr.read()
        with pytest.raises(FolderLockedError) as e:
            check_provenance(out, tmp_path / "model.pt")
        msg = str(e.value)
        assert f"pid {proc.pid}" in msg and socket.gethostname() in msg and str(out / LOCK_FILE) in msg, msg
        assert not (out / MANIFEST).exists(), "the refused run wrote into the locked folder"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    record = json.loads((out / LOCK_FILE).read_text())
    assert record["pid"] == proc.pid  # a killed run leaves its lock file ...
    with caplog.at_level(logging.WARNING, logger="monai_synpriv"):
        check_provenance(out, tmp_path / "model.pt")  # ... which the next run takes over
    assert f"stale lock of pid {proc.pid}" in caplog.text
    assert json.loads((out / LOCK_FILE).read_text())["pid"] == os.getpid()
    assert release_output_lock(out) and not (out / LOCK_FILE).exists()

    failing = _holder(tmp_path / "other", "raise")  # an error after taking the lock: released at exit
    _, stderr = failing.communicate(timeout=120)
    assert failing.returncode == 1 and "simulated failure" in stderr
    assert (tmp_path / "other").is_dir() and not (tmp_path / "other" / LOCK_FILE).exists()

    acquire_output_lock(out)
    acquire_output_lock(out)  # re-entrant in one process (a failed in-process run started again)
    with pytest.raises(FolderLockedError, match="this process"):
        FolderLock(out, name=LOCK_FILE).acquire()
    release_output_lock(out)


def test_lock_without_flock_uses_pid_and_host(tmp_path, monkeypatch):
    """Where the file system has no flock: a dead pid's lock is taken over, a live one's or another host's is not."""
    import fcntl

    def no_flock(fd, op):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_flock)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    path = tmp_path / LOCK_FILE
    for record, taken in (
        ({"pid": int(dead.stdout), "host": socket.gethostname()}, True),
        ({"pid": os.getppid(), "host": socket.gethostname()}, False),
        ({"pid": int(dead.stdout), "host": "another-host.invalid"}, False),
    ):
        path.write_text(json.dumps(record))
        lock = FolderLock(tmp_path, name=LOCK_FILE)
        if taken:
            lock.acquire()
            assert json.loads(path.read_text())["pid"] == os.getpid()
            lock.release()
            assert not path.exists()
        else:
            with pytest.raises(FolderLockedError, match=record["host"]):
                lock.acquire()


def test_output_folders_inside_the_input_folder_are_not_listed(tmp_path, input_folder):
    inputs = tmp_path / "in"
    shutil.copytree(input_folder, inputs)
    names = sorted(p.name for p in (inputs / SUBJECT).iterdir())
    syn = inputs / "runs" / "eval" / "synthetic" / SUBJECT
    syn.mkdir(parents=True)
    for n in names:
        shutil.copy(inputs / SUBJECT / n, syn / n)
    (syn.parent / OUTPUT_FOLDER_MARKERS[0]).write_text("{}")
    assert MANIFEST in OUTPUT_FOLDER_MARKERS  # what check_provenance writes marks the folder
    mine = inputs / "mine"
    mine.mkdir()
    shutil.copy(inputs / SUBJECT / names[0], mine / "extra.nii.gz")

    listed = [Path(e["image"]) for e in folder_to_datalist(inputs)]
    assert listed == sorted([mine / "extra.nii.gz", *(inputs / SUBJECT / n for n in names)])
    listed = [Path(e["A"]) for e in load_image_list(inputs, key="A", exclude=[mine])]
    assert listed == [inputs / SUBJECT / n for n in names]
    assert len(folder_to_datalist(syn.parent)) == 3, "a folder asked for by name is listed even if it is an output"
    with pytest.raises(ValueError, match="inside the output folder"):
        plan_outputs([{"image": str(inputs / SUBJECT / names[0])}], inputs)  # output folder == input folder


_KILLED_SAVE = """
import sys, time, torch
from monai_synpriv.handlers import AtomicDiskSaver

class Blocks:
    def __reduce__(self):
        print("saving", flush=True)
        time.sleep(600)

saver = AtomicDiskSaver(sys.argv[1])
saver({"w": torch.ones(3)}, "checkpoint_epoch=1.pt")
saver({"w": torch.ones(3), "stuck": Blocks()}, "checkpoint_epoch=2.pt")
"""


def test_resume_removes_the_temporary_file_of_a_killed_checkpoint_save(tmp_path, caplog):
    from monai.bundle import ConfigParser

    models = tmp_path / "models"
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILLED_SAVE, str(models)], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout.readline().strip() == "saving"
        t0 = time.time()
        while not [p for p in models.iterdir() if p.name.startswith(".")] and time.time() - t0 < 30:
            time.sleep(0.05)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    leftovers = [p.name for p in models.iterdir() if p.name.startswith(".")]
    assert len(leftovers) == 1 and ATOMIC_TEMP_PATTERN.fullmatch(leftovers[0]), leftovers
    assert leftovers[0].startswith(".checkpoint_epoch=2.") and leftovers[0].endswith(".pt")
    with atomic_path(models / "model.pt") as tmp:  # the writer's own naming, not a copy of it in the test
        assert ATOMIC_TEMP_PATTERN.fullmatch(Path(tmp).name)
        Path(tmp).write_bytes(b"x")
    keep = [".checkpoint_epoch=2.short.pt", ".notes.pt", ".DS_Store", ".model.abcdefgh.json", "model.pt"]
    for name in keep[:-1]:
        (models / name).write_bytes(b"not ours")

    parser = ConfigParser()  # the translator bundle's resume, as train.json evaluates it
    parser.read_config(BUNDLE / "configs" / "train.json")
    parser.update({"bundle_root": str(BUNDLE), "ckpt_dir": str(models), "resume": True})
    with caplog.at_level(logging.WARNING, logger="monai_synpriv"):
        resume_ckpt = parser.get_parsed_content("resume_ckpt")
    assert resume_ckpt == str(models / "checkpoint_epoch=1.pt")
    assert torch.equal(torch.load(resume_ckpt, weights_only=True)["w"], torch.ones(3))
    assert sorted(p.name for p in models.iterdir()) == sorted(["checkpoint_epoch=1.pt", *keep])
    assert str(models / leftovers[0]) in caplog.text and "interrupted checkpoint save" in caplog.text
