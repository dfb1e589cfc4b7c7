"""A real MLflow tracking server on 127.0.0.1: a bundle logs to it over HTTP, the server dies mid-run, the run
completes and no record is lost (the rest lands in the local fallback store)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import REPO

SSL = REPO / "bundles" / "multimodal_ssl"
MLFLOW = Path(sys.executable).parent / "mlflow"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_server(tmp: Path, port: int) -> subprocess.Popen:
    if not MLFLOW.exists():
        pytest.skip(f"the mlflow command is not installed beside {sys.executable}")
    proc = subprocess.Popen(
        [str(MLFLOW), "server", "--backend-store-uri", f"sqlite:///{tmp / 'server.db'}"]
        + ["--artifacts-destination", str(tmp / "server_artifacts"), "--host", "127.0.0.1", "--port", str(port)]
        + ["--workers", "1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: stopping it stops its workers too
    )
    t0 = time.time()
    while time.time() - t0 < 120:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                if r.status == 200:
                    return proc
        except OSError:
            time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)
    raise AssertionError("mlflow server did not start within 120 s")


def _stop(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def test_bundle_logs_to_a_server_that_dies_mid_run(tmp_path, multicontrast_dir):
    import mlflow

    port = _free_port()
    server = _start_server(tmp_path, port)
    uri = f"http://127.0.0.1:{port}"
    max_epochs, steps = 8, 10
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.pop("MLFLOW_TRACKING_URI", None)
    args = [sys.executable, "-m", "monai.bundle", "run", "--config_file", "configs/train.json", "--bundle_root", "."]
    args += ["--tracking", "configs/mlflow_tracking.json", "--tracking_uri", uri, "--experiment_name", "server_test"]
    args += [
        "--run_name",
        "killed_server",
        "--output_dir",
        f"$'{tmp_path / 'out'}'",
        "--dataset_dir",
        str(multicontrast_dir),
    ]
    args += ["--cache_dir", str(tmp_path / "cache"), "--ckpt_dir", str(tmp_path / "models"), "--depth", "10"]
    args += ["--projector_dims", "[32,32]", "--image_size", "[32,32]", "--load_size", "[36,36]", "--batch_size", "16"]
    args += ["--max_epochs", str(max_epochs), "--epoch_length", str(steps), "--max_items", "64"]
    train = subprocess.Popen(args, cwd=SSL, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        client = mlflow.MlflowClient(tracking_uri=uri)
        t0 = time.time()
        run = None
        while time.time() - t0 < 300:  # read the run back from the server while it is up
            exp = client.get_experiment_by_name("server_test")
            runs = client.search_runs([exp.experiment_id]) if exp else []
            if runs and "epoch_loss" in runs[0].data.metrics:
                run = runs[0]
                break
            assert train.poll() is None, train.stderr.read()[-4000:]
            time.sleep(0.2)
        assert run is not None, "no epoch metric reached the server"
        assert run.data.params  # the bundle's parameters went over HTTP too
        _stop(server)  # the server goes away mid-run
        assert train.poll() is None, "training already finished: the test would not exercise a dead server"
        _, err = train.communicate(timeout=600)
    finally:
        if train.poll() is None:
            train.kill()
        if server.poll() is None:
            _stop(server)
    assert train.returncode == 0, err[-4000:]
    assert err.count("is unreachable") == 1  # warned once, not every iteration
    assert (tmp_path / "models" / "model.pt").is_file()  # training finished

    # nothing lost: the server's store plus the local fallback store hold every step and every epoch
    served = mlflow.MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'server.db'}")
    fallback = mlflow.MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'out' / 'mlruns_offline.db'}")
    offline = fallback.search_runs([fallback.get_experiment_by_name("server_test").experiment_id])
    assert len(offline) == 1 and offline[0].data.tags["synpriv.offline_copy_of"] == run.info.run_id
    assert offline[0].info.status == "FINISHED"
    for key, expected in (("train_loss", range(1, max_epochs * steps + 1)), ("epoch_loss", range(1, max_epochs + 1))):
        steps_seen = {m.step for m in served.get_metric_history(run.info.run_id, key)}
        steps_seen |= {m.step for m in fallback.get_metric_history(offline[0].info.run_id, key)}
        assert steps_seen == set(expected), key
    # the executed config (an artifact logged after the server died) sits beside the fallback store, not in the cwd
    assert list((tmp_path / "out" / "mlruns_offline").rglob("config_*.json"))
    assert not (SSL / "mlruns").exists()
