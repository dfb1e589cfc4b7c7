"""The pipeline's own MLflow tracker against a tracking server that is down, dies mid-run or hangs: the pipeline goes
on, nothing already logged is lost, the rest lands in the local fallback store with the same names and lineage."""

from __future__ import annotations

import socket
import threading
import time

import pytest
from conftest import DATA, require
from test_mlflow_server import _free_port, _start_server, _stop

from monai_synpriv.pipeline import PipelineTracker, SynPrivPipeline
from monai_synpriv.pipeline.tracking import PARENT_TAG, TAG_PREFIX

mlflow = pytest.importorskip("mlflow")


def _runs(uri: str, experiment: str) -> dict[str, object]:
    client = mlflow.MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    return {r.info.run_name: r for r in client.search_runs([exp.experiment_id])} if exp else {}


def test_server_dies_after_a_stage_finished(tmp_path):
    server = _start_server(tmp_path, port := _free_port())
    fallback = f"sqlite:///{tmp_path / 'out' / 'mlruns_offline.db'}"
    (tmp_path / "out").mkdir()
    try:
        tracker = PipelineTracker(f"http://127.0.0.1:{port}", "pipe", fallback_uri=fallback, call_timeout=20)
        parent = tracker.start_parent("parent", tags={f"{TAG_PREFIX}profile": "tiny"})
        stage, stage_name = tracker.stage_run("translator_train")
        tracker.log_params(stage, {"lr": 0.0002})
        assert tracker.offline_reason is None and tracker.tracking_uri.startswith("http://")
    finally:
        _stop(server)  # the stage's work is done; the server goes away before the pipeline records it
    with pytest.warns(RuntimeWarning, match="tracks the rest of this run in"):
        tracker.log_metrics(stage, {"ssim": 0.7})
    tracker.finish(stage)
    nxt, _ = tracker.stage_run("synthesis")
    tracker.finish(nxt)
    tracker.finish(parent)
    assert tracker.offline_reason and tracker.tracking_uri == fallback

    served = _runs(f"sqlite:///{tmp_path / 'server.db'}", "pipe")
    assert served[stage_name].data.params == {"lr": "0.0002"}  # what reached the server stays there
    local = _runs(fallback, "pipe")
    assert len(local) == 3 and {"parent", stage_name} < set(local)
    assert [n for n in local if n.startswith(f"synthesis@{local['parent'].info.run_id[:8]}-")]
    copy = local[stage_name]
    assert copy.data.tags[f"{TAG_PREFIX}offline_copy_of"] == stage and copy.info.status == "FINISHED"
    assert copy.data.metrics == {"ssim": 0.7}
    assert local["parent"].data.tags[f"{TAG_PREFIX}offline_copy_of"] == parent
    assert local["parent"].data.tags[f"{TAG_PREFIX}profile"] == "tiny" and local["parent"].info.status == "FINISHED"
    for run in local.values():  # lineage kept: every stage nested under the local parent
        if run.info.run_name != "parent":
            assert run.data.tags[PARENT_TAG] == local["parent"].info.run_id
    assert list((tmp_path / "out").glob("mlruns_offline.db"))


def test_hung_server_is_bounded_in_time(tmp_path):
    """A server that accepts connections and never answers: the first call gives up after ``call_timeout``."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])  # keep the connection open, say nothing
            except OSError:
                pass

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        t0 = time.monotonic()
        with pytest.warns(RuntimeWarning, match="no answer within 2 s"):
            tracker = PipelineTracker(
                f"http://127.0.0.1:{listener.getsockname()[1]}",
                "pipe",
                fallback_uri=f"sqlite:///{tmp_path / 'offline.db'}",
                call_timeout=2,
            )
        waited = time.monotonic() - t0
        parent = tracker.start_parent("parent")
        tracker.finish(parent)
    finally:
        stop.set()
        thread.join()
        for c in held:
            c.close()
        listener.close()
    assert "TimeoutError" in tracker.offline_reason
    assert waited < 2 + 8  # bounded by call_timeout (MLflow's own client would wait its 120 s request timeout)
    assert _runs(f"sqlite:///{tmp_path / 'offline.db'}", "pipe")["parent"].info.status == "FINISHED"


def test_pipeline_runs_with_the_server_down_from_the_start(tmp_path):
    """The main job pointed at a server that is not there: it warns once, tracks locally and runs its stage."""
    require(DATA / "brain_tumor_mri_4class" / "brain_tumor_mri_224.tar")
    out = tmp_path / "run"
    pipe = SynPrivPipeline(
        "tiny", out, data_root=DATA, tracking_uri=f"http://127.0.0.1:{_free_port()}", progress=False, until="prepare"
    )
    with pytest.warns(RuntimeWarning, match="tracks the rest of this run in"):
        pipe.run()
    assert pipe.state["stages"]["prepare"]["status"] == "done"
    local = _runs(f"sqlite:///{out / 'mlruns_offline.db'}", "synpriv_pipeline")
    (prepare,) = [r for n, r in local.items() if n.startswith("prepare@")]
    assert prepare.info.status == "FINISHED" and prepare.data.metrics["count_downstream_test"] > 0
    (parent,) = [r for n, r in local.items() if n.startswith("synpriv_tiny_")]
    assert prepare.data.tags[PARENT_TAG] == parent.info.run_id


def test_param_names_mlflow_refuses_are_rewritten(tmp_path):
    """A nested config id in a profile override (``checkpoint_saver#n_saved``) is a legal bundle override but not a
    legal MLflow name: it is logged as ``.../checkpoint_saver/n_saved`` instead of failing the stage."""
    from monai_synpriv.pipeline.tracking import PipelineTracker, mlflow_name

    assert mlflow_name("override.checkpoint_saver#n_saved") == "override.checkpoint_saver/n_saved"
    assert mlflow_name("a-b_c.d e:f/g") == "a-b_c.d e:f/g"
    tracker = PipelineTracker(f"sqlite:///{tmp_path / 'mlruns.db'}", "names")
    parent = tracker.start_parent("parent")
    tracker.log_params(parent, {"override.checkpoint_saver#n_saved": None, "plain": 1})
    params = tracker.client.get_run(parent).data.params
    assert params == {"override.checkpoint_saver/n_saved": "None", "plain": "1"}
