"""The MONAI Label app: a real `monailabel start_server` on 127.0.0.1 serving EXAMINE and the translator.

The server runs in the label environment (`.venv-label`, `bash scripts/setup_label_env.sh`; .ci/run creates it);
these tests skip with the reason where it is absent. The test process embeds the same real brain-tumour MRI JPEGs
with the same encoder bundle and ranks them by a brute-force leave-one-out SVD, independently of the server, and
checks that `/activelearning/examine` serves the top-ranked image, then the second after the first is labelled.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import signal
import socket
import subprocess
import tarfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import DATA, REPO, require

LABEL_VENV = Path(os.environ.get("SYNPRIV_LABEL_VENV", REPO / ".venv-label"))
MONAILABEL = LABEL_VENV / "bin" / "monailabel"
LABEL_PYTHON = LABEL_VENV / "bin" / "python"
BRAIN = DATA / "brain_tumor_mri_4class"
TRANSLATOR = REPO / "bundles" / "unpaired_translator"

pytestmark = pytest.mark.skipif(
    not MONAILABEL.exists(),
    reason=f"MONAI Label environment absent ({MONAILABEL} not found): create it with "
    "`bash scripts/setup_label_env.sh` (.ci/run does)",
)

ENCODER_CONFIG = {
    "imports": ["$import torch"],
    "bundle_root": ".",
    "image_size": [32, 32],
    "network_def": {
        "_target_": "monai.networks.nets.ResNet",
        "block": "basic",
        "layers": [1, 1, 1, 1],
        "block_inplanes": [8, 16, 32, 64],
        "spatial_dims": 2,
        "n_input_channels": 1,
        "feed_forward": False,
    },
    "preprocessing": {
        "_target_": "Compose",
        "transforms": [
            {"_target_": "LoadImaged", "keys": "image", "image_only": True, "ensure_channel_first": True},
            {"_target_": "monai_synpriv.transforms.AsGrayscaled", "keys": "image"},
            {"_target_": "ScaleIntensityd", "keys": "image"},
            {"_target_": "Resized", "keys": "image", "spatial_size": "@image_size"},
        ],
    },
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _http(method: str, url: str, body: bytes | None = None, headers: dict | None = None, timeout: float = 120):
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def _post_json(url: str, payload: dict | None = None, timeout: float = 120):
    return _http("POST", url, json.dumps(payload or {}).encode(), {"Content-Type": "application/json"}, timeout)


def _multipart(name: str, filename: str, data: bytes, content_type: str) -> tuple[bytes, dict]:
    boundary = uuid.uuid4().hex
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
            f"Content-Type: {content_type}\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def _brute_force_msv(x: np.ndarray) -> np.ndarray:
    """s1(X) - s1(X without row i), one SVD per row: the definition, independent of monai_synpriv.assessment."""
    s1 = np.linalg.svd(x, compute_uv=False)[0]
    return np.array([s1 - np.linalg.svd(np.delete(x, i, axis=0), compute_uv=False)[0] for i in range(len(x))])


@pytest.fixture(scope="module")
def studies(tmp_path_factory) -> Path:
    """20 real brain-tumour MRI JPEGs (5 per class, 3 RGB + 2 greyscale files, no duplicates), md5-checked."""
    tar_path, index = require(BRAIN / "brain_tumor_mri_224.tar"), require(BRAIN / "index.csv")
    with open(index, newline="") as f:
        rows = sorted(
            (r for r in csv.DictReader(f) if r["split"] == "Training" and r["n_identical"].strip() == "1"),
            key=lambda r: r["path"],
        )
    chosen = []
    for cls in ("glioma", "meningioma", "notumor", "pituitary"):
        for mode, k in (("RGB", 3), ("L", 2)):
            chosen += [r for r in rows if r["label"] == cls and r["mode"] == mode][:k]
    assert len(chosen) == 20
    out = tmp_path_factory.mktemp("studies")
    with tarfile.open(tar_path) as tar:
        for r in chosen:
            data = tar.extractfile(r["path"]).read()
            assert hashlib.md5(data).hexdigest() == r["md5"], f"{r['path']}: md5 mismatch with index.csv"
            (out / Path(r["path"]).name).write_bytes(data)
    return out


@pytest.fixture(scope="module")
def encoder_bundle(tmp_path_factory) -> Path:
    """A tiny encoder bundle meeting the contract (network_def -> (B, D), preprocessing, models/model.pt)."""
    from monai.bundle import ConfigParser

    root = tmp_path_factory.mktemp("encoder_bundle")
    (root / "configs").mkdir()
    (root / "models").mkdir()
    (root / "configs" / "inference.json").write_text(json.dumps(ENCODER_CONFIG, indent=2))
    parser = ConfigParser(ENCODER_CONFIG)
    torch.manual_seed(1234)
    torch.save(parser.get_parsed_content("network_def").state_dict(), root / "models" / "model.pt")
    return root


@pytest.fixture(scope="module")
def translator_bundle(tmp_path_factory) -> Path:
    """The repository's translator bundle configs with an empty models/ (so: no trained weights, on any machine)."""
    root = tmp_path_factory.mktemp("translator") / "unpaired_translator"
    (root / "models").mkdir(parents=True)
    (root / "configs").mkdir()
    for f in (TRANSLATOR / "configs").glob("*"):
        (root / "configs" / f.name).write_bytes(f.read_bytes())
    return root


@pytest.fixture(scope="module")
def server(tmp_path_factory, studies, encoder_bundle, translator_bundle):
    from monai_synpriv.label import init_app_dir

    tmp = tmp_path_factory.mktemp("monailabel")
    app_dir = init_app_dir(tmp / "app")
    port = _free_port()
    log_path = tmp / "server.log"
    env = dict(os.environ, PYTHONUNBUFFERED="1", MONAI_LABEL_AUTO_UPDATE_SCORING="false")
    env["MONAI_LABEL_SESSION_PATH"] = str(tmp / "sessions")
    env["PATH"] = f"{LABEL_VENV / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env.pop("PYTHONPATH", None)
    cmd = [str(MONAILABEL), "start_server", "--app", str(app_dir), "--studies", str(studies)]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--conf", "zoo_source", "github"]
    cmd += ["--conf", "encoder_bundle", str(encoder_bundle), "--conf", "translator_bundle", str(translator_bundle)]
    cmd += ["--conf", "translator_allow_untrained", "true"]
    log = open(log_path, "w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=tmp, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"

    def server_log() -> str:
        log.flush()
        return log_path.read_text(errors="replace")[-6000:]

    try:
        t0 = time.time()
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"monailabel exited with {proc.returncode} before serving:\n{server_log()}")
            try:
                status, body = _http("GET", f"{url}/info/", timeout=5)
                if status == 200:
                    break
            except OSError:
                pass
            if time.time() - t0 > 180:
                raise AssertionError(f"monailabel did not serve /info/ within 180 s:\n{server_log()}")
            time.sleep(1)
        yield {"url": url, "log": server_log, "info": json.loads(body), "studies": studies}
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the server and any scoring subprocess it started
        except ProcessLookupError:
            pass
        proc.wait(timeout=30)
        log.close()


def _run_scoring(server) -> dict:
    url = server["url"]
    status, body = _post_json(f"{url}/scoring/examine")
    assert status == 200, f"POST /scoring/examine -> {status} {body[:500]!r}\n{server['log']()}"
    task_id = json.loads(body)["id"]
    t0 = time.time()
    while time.time() - t0 < 240:
        status, body = _http("GET", f"{url}/scoring/?all=true")
        tasks = [t for t in json.loads(body) if t["id"] == task_id] if status == 200 else []
        if tasks and tasks[0]["status"] not in ("SUBMITTED", "RUNNING"):
            assert tasks[0]["status"] == "DONE", f"scoring task ended {tasks[0]}\n{server['log']()}"
            return tasks[0]
        time.sleep(1)
    raise AssertionError(f"scoring did not finish within 240 s\n{server['log']()}")


def _datastore_infos(server) -> dict:
    status, body = _http("GET", f"{server['url']}/datastore/?output=all")
    assert status == 200, body[:500]
    return {k: v["image"]["info"] for k, v in json.loads(body)["objects"].items()}


def _next_sample(server) -> dict:
    status, body = _post_json(f"{server['url']}/activelearning/examine")
    assert status == 200, f"/activelearning/examine -> {status} {body[:500]!r}\n{server['log']()}"
    return json.loads(body)


def test_app_info_lists_examine_and_translator(server):
    info = server["info"]
    assert "examine" in info["scoring"] and "examine" in info["strategies"]
    model = info["models"]["translator"]
    assert model["type"] == "translation" and model["trained"] is False
    assert "UNTRAINED" in model["description"]


def test_examine_serves_top_ranked_then_second_after_labelling(server, studies, encoder_bundle):
    from monai_synpriv.label import EncoderBundle

    # before scoring: a clear refusal, not a random image
    status, body = _post_json(f"{server['url']}/activelearning/examine")
    assert status == 409 and b"POST /scoring/examine" in body, (status, body[:300])

    # independent ranking in this process: same images, same bundle, brute-force leave-one-out SVD
    ids = sorted(p.stem for p in studies.glob("*.jpg"))
    emb = EncoderBundle(encoder_bundle).embed([studies / f"{i}.jpg" for i in ids])
    assert emb.shape == (20, 64)
    msv = _brute_force_msv(emb)
    order = np.argsort(-msv)
    top = msv[order]
    # the expected order is well defined: the leading gaps are far above float noise
    assert top[0] - top[1] > 1e-3 * top[0] and top[1] - top[2] > 1e-3 * top[0], top[:4]
    expected = [ids[k] for k in order]

    task = _run_scoring(server)
    infos = {}
    t0 = time.time()
    while time.time() - t0 < 30:  # the server reloads datastore_v2.json written by the scoring process
        infos = _datastore_infos(server)
        if all("examine_score" in infos.get(i, {}) for i in ids):
            break
        time.sleep(0.5)
    assert sorted(infos) == ids
    assert all("examine_score" in infos[i] for i in ids), f"scores not in the datastore: {task}\n{server['log']()}"
    server_msv = np.array([infos[i]["examine_msv"] for i in ids])
    np.testing.assert_allclose(server_msv, msv, rtol=1e-3, atol=1e-6 * top[0])
    assert [infos[i]["examine_rank"] for i in expected[:3]] == [1, 2, 3]
    scores = np.array([infos[i]["examine_score"] for i in ids])
    assert list(np.argsort(-scores)[:5]) == list(order[:5])

    first = _next_sample(server)
    assert first["id"] == expected[0], (first, expected[:3])
    assert first["path"].endswith(f"{expected[0]}.jpg")

    # label the served image (a real mask file), then the next sample is the second-ranked unlabelled one
    mask = np.zeros((224, 224), np.uint8)
    mask[80:140, 90:150] = 1
    buf = io.BytesIO()
    from PIL import Image

    Image.fromarray(mask).save(buf, format="PNG")
    body, headers = _multipart("label", f"{expected[0]}.png", buf.getvalue(), "image/png")
    status, resp = _http("PUT", f"{server['url']}/datastore/label?image={expected[0]}&tag=final", body, headers)
    assert status == 200, resp[:500]
    second = _next_sample(server)
    assert second["id"] == expected[1], (second, expected[:3])

    # scores are up to date: a second scoring run skips instead of rewriting everything
    task = _run_scoring(server)
    assert any('"skipped": 20' in line for line in task.get("details", [])), task


def test_translator_infer_returns_synthetic_image(server, studies, tmp_path):
    import nibabel as nib
    from monai.transforms import LoadImage

    image_id = sorted(p.stem for p in studies.glob("*.jpg"))[0]
    status, body = _http("POST", f"{server['url']}/infer/translator?image={image_id}&output=json")
    assert status == 200, f"{body[:500]!r}\n{server['log']()}"
    params = json.loads(body)
    assert params["untrained"] is True and "UNTRAINED" in params["warning"]
    status, body = _http("POST", f"{server['url']}/infer/translator?image={image_id}&output=image")
    assert status == 200, f"{body[:500]!r}\n{server['log']()}"
    out = tmp_path / "synthetic.nii.gz"
    out.write_bytes(body)
    synthetic = np.asarray(nib.load(out).dataobj)
    original = LoadImage(image_only=True)(studies / f"{image_id}.jpg")
    assert synthetic.shape == tuple(original.shape[:2]) == (224, 224)  # on the input's grid, one channel
    assert synthetic.dtype == np.float32 and np.isfinite(synthetic).all()
    assert 0.0 <= synthetic.min() and synthetic.max() <= 1.0  # sigmoid output, masked by the input
    assert synthetic.std() > 0  # an image, not a constant


LABEL_ENV_CHECKS = r"""
import sys
from monai_synpriv.label.infer import TranslatorInferTask, TranslatorWeightsMissing
from monai_synpriv.label.strategy import ExamineNotScored, ExamineStrategy

task = TranslatorInferTask(sys.argv[1])
assert not task.is_valid() and "NOT AVAILABLE" in task.description
try:
    task({"image": sys.argv[2]})
except TranslatorWeightsMissing as e:
    assert e.status_code == 503 and "models/model.pt not found" in e.detail, e.detail
    print("MISSING-WEIGHTS:", e.detail)
else:
    raise AssertionError("the translator ran without weights")

class Store:  # the three datastore calls the strategy makes
    def __init__(self, infos, labelled=()):
        self.infos, self.labelled = infos, set(labelled)
    def get_unlabeled_images(self, label_tag=None, labels=None):
        return [i for i in self.infos if i not in self.labelled]
    def get_image_info(self, image_id):
        return dict(self.infos[image_id])

s = ExamineStrategy()
store = Store({"a": {"examine_score": 0.2, "examine_rank": 3}, "b": {}, "c": {"examine_score": 0.9, "examine_rank": 1},
               "d": {"examine_score": 0.5, "examine_rank": 2}})
assert s({}, store)["id"] == "c"
assert s({}, Store(store.infos, ["c"]))["id"] == "d"
assert s({}, Store(store.infos, ["c", "d"]))["id"] == "a"  # the unscored "b" is never preferred
assert s({}, Store(store.infos, ["a", "b", "c", "d"])) is None  # nothing left to label
for infos, labelled in (({"x": {}, "y": {"examine_score": None}}, ()), (store.infos, ["a", "c", "d"])):
    try:
        s({}, Store(infos, labelled))
    except ExamineNotScored as e:  # only unscored images left: a clear refusal, not a random pick
        assert e.status_code == 409 and "POST /scoring/examine" in e.detail
    else:
        raise AssertionError("no refusal without scores")
print("LABEL-ENV-CHECKS-OK")
"""


def test_translator_without_weights_and_strategy_edge_cases(translator_bundle, studies):
    """In the label environment: no weights and no flag -> a clear 503; strategy ordering and refusal rules."""
    image = sorted(studies.glob("*.jpg"))[0]
    proc = subprocess.run(
        [str(LABEL_PYTHON), "-c", LABEL_ENV_CHECKS, str(translator_bundle), str(image)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    assert proc.returncode == 0 and "LABEL-ENV-CHECKS-OK" in proc.stdout, proc.stdout[-3000:] + proc.stderr[-5000:]
