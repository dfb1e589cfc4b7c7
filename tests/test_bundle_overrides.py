"""A bundle command line is checked before any work: unknown override keys, dataset paths, and how errors read.

Every runnable bundle config starts its ``initialize`` with :func:`monai_synpriv.bundle_checks.check_cli_overrides`
and takes its default dataset path from :func:`monai_synpriv.bundle_checks.data_path` (``$SYNPRIV_DATA``, else an
error naming the override). The three ``python -m monai.bundle run`` subprocesses below run at once (module fixture),
each stopping in or right after ``initialize``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import DATA, REPO, require

from monai_synpriv import bundle_checks as bc

CLUSTERING = REPO / "bundles" / "contrastive_ae_clustering"
TRAIN = str(CLUSTERING / "configs" / "train.json")
TRANSLATOR = REPO / "bundles" / "unpaired_translator" / "configs"
SSL = REPO / "bundles" / "multimodal_ssl" / "configs"
CHECK = "monai_synpriv.bundle_checks.check_cli_overrides"


def _check(*args: str, config: str = TRAIN) -> None:
    """The config's own first ``initialize`` entry, as in ``monai.bundle run --config_file <config> <args>``."""
    import ast

    last = ast.literal_eval(config)[-1] if config.startswith("[") else config
    entry = dict(json.loads(Path(last).read_text())["initialize"][0])
    assert entry.pop("_target_") == CHECK
    bc.check_cli_overrides(argv=["monai/bundle/__main__.py", "run", "--config_file", config, *args], **entry)


def _refusal(*args: str, config: str = TRAIN, error: type[Exception] = ValueError) -> str:
    with pytest.raises(error) as info:
        _check(*args, config=config)
    return str(info.value)


# ---------------------------------------------------------------------------------------------- the key check
def test_command_line_is_read_as_fire_passes_it_to_monai_bundle_run():
    """The keys and values the check sees are exactly those fire hands to ``monai.bundle.run`` (fire itself parses
    the same command line into a stand-in with run's signature)."""
    import fire

    def run(run_id=None, init_id=None, final_id=None, meta_file=None, config_file=None, logging_file=None,
            tracking=None, args_file=None, **override):  # fmt: skip
        return {"run_id": run_id, "tracking": tracking, "config_file": config_file, **override}

    line = ["training", "--config_file", "['a.json','b.json']", "--max_epochs=3", "--lr", "1e-3", "--resume"]
    line += ["--train#trainer#max_epochs", "2", "--crop-size", "$None", "--tracking", "mlflow", "--normalize_inputs"]
    seen = fire.Fire(run, command=line)
    cli = bc.cli_run_arguments(["x", "run", *line])
    assert {**{k: cli["arguments"][k] for k in ("run_id", "tracking", "config_file")}, **cli["overrides"]} == seen
    # fire's quirk, kept: a bare --normalize_inputs reaches MONAI as rmalize_inputs=False
    assert seen["rmalize_inputs"] is False and "normalize_inputs" not in seen


def test_typo_key_refused_with_its_close_match():
    message = _refusal("--bundle_root", ".", "--max_epoch", "1", "--seed", "1")
    assert message.startswith("--max_epoch (did you mean --max_epochs?)"), message
    assert TRAIN in message and "--seed" not in message
    # nested ids: a misspelt argument of a component is checked against its target's signature
    message = _refusal("--network_def#num_res_unit", "2")
    assert "--network_def#num_res_unit (did you mean --network_def#num_res_units?)" in message
    message = _refusal("--train::trainer::max_epochs", "1", "--train::trainer", "$None", "--train::traner", "1")
    assert message.startswith("--train::traner (did you mean --train::trainer?)"), message


def test_real_keys_accepted_nested_meta_tracking_and_component_arguments():
    ok = ["--bundle_root", ".", "--max_epochs", "1", "--train#trainer#max_epochs", "1", "--initialize#0", "$None"]
    ok += ["--_meta_#version", "9.9.9", "--network_def#num_res_units", "2", "--network_def::strides", "[2,2,1]"]
    ok += ["--run_id", "seed", "--logging_file", "configs/logging.conf"]  # run()'s own arguments are no overrides
    _check(*ok)
    # the tracking settings add ids, only when tracking is on
    _check("--tracking", "mlflow", "--tracking_uri", "sqlite:///x.db")
    assert "--tracking_uri (an id only with --tracking, e.g. --tracking mlflow)" in _refusal("--tracking_uri", "x")
    # overlays merge as MONAI merges them: translator evaluate.json ids next to inference.json ones
    both = str([str(TRANSLATOR / "inference.json"), str(TRANSLATOR / "evaluate.json")])
    _check("--eval_section", "test", "--input_key", "A", config=both)
    assert "--eval_section" in _refusal("--eval_section", "test", config=str(TRANSLATOR / "inference.json"))


def test_bare_no_flag_explained_and_args_file_keys_checked(tmp_path):
    message = _refusal("--normalize_inputs", "--max_items", "4", config=str(TRANSLATOR / "train.json"))
    assert "--rmalize_inputs (fire reads the bare flag --normalize_inputs as rmalize_inputs=False" in message
    args = tmp_path / "args.json"
    args.write_text(json.dumps({"config_file": TRAIN, "max_epoch": 2, "batch_size": 8}))
    with pytest.raises(ValueError, match=r"--max_epoch \(did you mean --max_epochs\?\).*--args_file .*args\.json"):
        bc.check_cli_overrides(argv=["monai/bundle/__main__.py", "run", "--args_file", str(args)])


def test_dataset_folder_given_on_the_command_line_must_exist(tmp_path):
    message = _refusal("--data_root", str(tmp_path / "nowhere"), error=FileNotFoundError)
    assert message.startswith(f"--data_root {tmp_path / 'nowhere'}: no such folder"), message
    _check("--data_root", str(tmp_path))
    _check("--data_root", "$'/an/expression/is/not/checked'")


def test_python_callers_are_not_checked_but_can_check_their_keys():
    """In this process (pytest, as in the pipeline) the config entry checks nothing, even with unknown keys."""
    from monai.bundle import ConfigParser

    assert bc.cli_run_arguments() is None
    parser = ConfigParser()
    parser.read_config(TRAIN)
    parser.update({"no_such_key": 1})
    assert parser["initialize"][0] == {"_target_": CHECK, "folders": ["data_root"]}
    assert parser.get_parsed_content("initialize#0") is None
    # the same check for keys built in Python (e.g. a pipeline profile's sections)
    with pytest.raises(ValueError, match=r"profile 'x' section 'ssl_train': max_epoch \(did you mean max_epochs\?\)"):
        bc.check_override_keys(SSL / "train.json", ["max_epoch", "depth"], origin="profile 'x' section 'ssl_train'")
    bc.check_override_keys(SSL / "train.json", ["max_epochs", "depth", "train#trainer#max_epochs"])


# ---------------------------------------------------------------------------------------------- the data path
def test_dataset_path_default_comes_from_the_environment_or_stops_naming_the_override(tmp_path, monkeypatch):
    from monai.bundle import ConfigParser

    monkeypatch.delenv(bc.DATA_ENV, raising=False)
    with pytest.raises(ValueError, match=r"config key 'dataset_dir' is not set: pass --dataset_dir /path/to/mri_"):
        bc.data_path("dataset_dir", subdir="mri_brain_multicontrast")
    parser = ConfigParser()
    parser.read_config(TRAIN)
    with pytest.raises(RuntimeError) as info:
        parser.get_parsed_content("datalist")
    assert "pass --data_root /path/to/data" in str(bc.root_cause(info.value)) and "SYNPRIV_DATA" in str(
        bc.root_cause(info.value)
    )
    monkeypatch.setenv(bc.DATA_ENV, str(tmp_path))
    assert bc.data_path("data_root") == str(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"config key 'dataset_dir': .*mri_brain_multicontrast is not a fold"):
        bc.data_path("dataset_dir", subdir="mri_brain_multicontrast")
    parser = ConfigParser()
    parser.read_config(TRAIN)
    parser["data_root"] = "/given/data"  # an override replaces the default: nothing is read from the environment
    assert parser.get_parsed_content("data_root") == "/given/data"


def _reachable(files: list[str], overrides: dict) -> set[str]:
    """The ids that running ``initialize``, ``run`` and ``finalize`` can evaluate (following ``@`` references)."""
    from monai.bundle import ConfigParser
    from monai.bundle.reference_resolver import ReferenceResolver

    parser = ConfigParser()
    parser.read_config(files)
    parser.update(overrides)
    parser.resolve_macro_and_relative_ids()
    seen: set[str] = set()
    todo = [i for i in ("initialize", "run", "finalize") if i in parser]
    while todo:
        i = todo.pop()
        if i not in seen:
            seen.add(i)
            todo += [d for d in ReferenceResolver.find_refs_in_config(parser[i], i) if d not in seen and d in parser]
    return seen


@pytest.mark.parametrize(
    "files, datalists",
    [
        ([TRANSLATOR / "train.json"], ["datalist_a", "datalist_b"]),  # the pipeline's translator_train
        ([TRANSLATOR / "inference.json", TRANSLATOR / "evaluate.json"], ["input_datalist"]),  # translator_evaluate
        ([TRANSLATOR / "inference.json"], ["input_datalist"]),  # synthesis
        ([SSL / "train.json"], ["datalist"]),  # ssl_train
        ([SSL / "evaluate.json"], ["labelled_datalist"]),  # ssl_evaluate
    ],
    ids=["translator_train", "translator_evaluate", "synthesis", "ssl_train", "ssl_evaluate"],
)
def test_configs_given_their_datalists_never_need_the_dataset_path(files, datalists):
    """What monai_synpriv.pipeline passes (datalists, no dataset path) leaves the default dataset path unevaluated,
    so the pipeline needs neither SYNPRIV_DATA nor --data_root; without the datalists the path is needed."""
    files = [str(f) for f in files]
    assert not {"data_root", "dataset_dir"} & _reachable(files, {k: "/x/datalist.json" for k in datalists})
    assert {"data_root", "dataset_dir"} & _reachable(files, {})


def test_every_runnable_config_checks_first_and_defaults_to_no_outside_path():
    runnable = 0
    for path in sorted((REPO / "bundles").glob("*/configs/*.json")):
        text = path.read_text()
        config = json.loads(text)
        assert "'shared'" not in text and "'..', '..', '..'" not in text, f"{path}: a default path outside the bundle"
        for key in ("data_root", "dataset_dir"):
            value = config.get(key)
            if value is None or (isinstance(value, str) and value.startswith("$os.path.join(@data_root")):
                continue  # absent, or under data_root
            if key == "data_root" and value == "@dataset_dir":
                continue  # inference configs: data_root is an alias of the model-zoo property dataset_dir
            assert isinstance(value, dict) and value.get("_target_") == "monai_synpriv.bundle_checks.data_path", (
                f"{path}: {key} = {value}"
            )
        if "run" in config:
            runnable += 1
            first = config.get("initialize", [None])[0]
            assert isinstance(first, dict) and first.get("_target_") == CHECK, f"{path}: initialize starts {first}"
    assert runnable >= 18


# ---------------------------------------------------------------------------------------------- the error surface
def test_root_cause_printed_first_and_last_when_monai_wraps_it(capsys, monkeypatch):
    from monai.bundle import ConfigParser

    monkeypatch.delenv(bc.DATA_ENV, raising=False)
    parser = ConfigParser({"root": {"_target_": "monai_synpriv.bundle_checks.data_path", "key": "data_root"},
                           "n": "$len(@root)"})  # fmt: skip
    with pytest.raises(RuntimeError) as info:
        parser.get_parsed_content("n")
    assert str(info.value).startswith("Failed to instantiate component")  # how MONAI wraps the cause
    line = bc.fault_message(info.value)
    assert line is not None and line.startswith("ValueError: config key 'data_root' is not set: pass --data_root")
    bc.excepthook(RuntimeError, info.value, info.value.__traceback__)
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[0] == lines[-1] == f"ERROR: {line}" and lines[1] == "Traceback (most recent call last):"
    assert bc.fault_message(ValueError("plain")) is None  # a traceback that already ends with its cause: as usual


# ---------------------------------------------------------------------------------------------- real command lines
def _start(tmp: Path, *args: str, data: bool = True) -> subprocess.Popen:
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    env.pop("MLFLOW_TRACKING_URI", None)
    if not data:
        env.pop(bc.DATA_ENV, None)
    tmp.mkdir(parents=True)
    out = ["--bundle_root", str(tmp / "root"), "--output_dir", f"$'{tmp / 'out'}'", "--ckpt_dir", str(tmp / "models")]
    return subprocess.Popen(
        [sys.executable, "-m", "monai.bundle", "run", "--config_file", "configs/train.json", *out, *args],
        cwd=CLUSTERING,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Three runs of the clustering bundle's train.json, started together: a typo, no data path, real keys."""
    require(DATA / "medmnist" / "breastmnist.npz")
    tmp = tmp_path_factory.mktemp("overrides")
    procs = {
        "typo": _start(tmp / "typo", "--max_epoch", "1"),
        "no_data": _start(tmp / "no_data", "--max_epochs", "1", data=False),
        # real keys, a nested one too; the run only evaluates "seed" (nothing trains) after a full initialize
        "real": _start(tmp / "real", "--max_epochs", "1", "--train#trainer#max_epochs", "1", "--max_items", "8",
                       "--cache_dir", str(tmp / "real" / "cache"), "--run_id", "seed"),
    }  # fmt: skip
    done = {}
    for name, proc in procs.items():
        stdout, stderr = proc.communicate(timeout=300)
        done[name] = (proc.returncode, stdout, stderr, tmp / name)
    return done


def _error_report(stderr: str) -> tuple[str, str]:
    """The line before the first traceback and the last line of stderr."""
    lines = stderr.rstrip().splitlines()
    return lines[lines.index("Traceback (most recent call last):") - 1], lines[-1]


def test_typo_key_stops_the_run_before_anything_is_written(runs):
    rc, stdout, stderr, tmp = runs["typo"]
    assert rc != 0
    first, last = _error_report(stderr)
    assert first == last and last.startswith("ERROR: ValueError: --max_epoch (did you mean --max_epochs?)"), stderr
    assert "configs/train.json" in last
    assert sorted(p.name for p in tmp.iterdir()) == [], "nothing may be written (no output, checkpoint or cache)"


def test_missing_data_path_stops_the_run_naming_the_override(runs):
    rc, stdout, stderr, tmp = runs["no_data"]
    assert rc != 0
    first, last = _error_report(stderr)
    assert first == last and "config key 'data_root' is not set: pass --data_root /path/to/data" in last, stderr
    assert "SYNPRIV_DATA" in last and "Epoch" not in stdout
    assert not [p for p in tmp.rglob("*") if p.is_file()], "nothing may be written before the data is found"


def test_real_keys_run_past_initialize(runs):
    rc, stdout, stderr, tmp = runs["real"]
    assert rc == 0, stderr[-3000:]
    assert (tmp / "cache" / "medmnist" / "breastmnist_datalist.json").is_file()  # initialize read the data
    assert not list(tmp.rglob("*.pt")) and "Epoch[1]" not in stdout  # and the run trained nothing
