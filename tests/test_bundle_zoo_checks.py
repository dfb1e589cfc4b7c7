"""The checks that Project-MONAI/model-zoo's CI runs on every bundle it accepts, run on each of ours.

Model-zoo's pre-merge CI calls ``ci/verify_bundle.py`` for each changed bundle. This module re-implements those
checks (our code, not a copy of theirs) and runs every one on every bundle under ``bundles/``. Each bundle is first
copied alone to a temporary folder, so that a check passes only if the bundle works without this repository around
it, which is how the zoo (and anyone who downloads the bundle) sees it. One test per (bundle, check):

- ``necessary_files`` mirrors zoo's ``verify_bundle_directory`` necessary files: ``configs/metadata.json`` and a
  file named exactly ``LICENSE`` at the bundle root. We also require ``docs/README.md``, which zoo's CONTRIBUTING
  asks for (it is where a bundle must say, for instance, that it does not support TorchScript).
- ``preferred_files`` mirrors zoo's preferred files: an inference config ``configs/inference.{json,yaml,yml}`` is
  required. Zoo also requires ``models/model.pt`` (or a ``large_files.{yml,yaml,json}`` that downloads it) unless the
  bundle is on its ``exclude_verify_preferred_files_list``. None of our bundles publishes trained weights, so that
  part only warns here, as if every bundle were on that list; ``torchscript_export`` exercises the checkpoint path
  with fake weights instead.
- ``version_in_changelog`` mirrors ``verify_version_changes``: ``version`` and ``changelog`` exist in the metadata
  and the version is a key of the changelog (zoo's "version already released" check needs its model_info.json and
  has no counterpart here).
- ``inference_properties`` mirrors ``verify_bundle_properties``: ``monai.bundle.create_workflow`` builds the
  inference workflow (which runs the config's ``initialize``) and ``check_properties()`` must return an empty list.
  Zoo checks only the properties of the apps named in ``supported_apps`` (ours name none, so zoo would check
  nothing); we check MONAI's own inference and metadata properties, which is stricter. Zoo has the bundle's trained
  weights in place by then, so fake ones are written to the config's ``ckpt_path`` (or ``models/model.pt``) first.
  MONAI 1.6.1 raises ``KeyError`` from ``check_properties()`` for a required property whose id is absent, instead of
  listing it.
- ``verify_net_in_out`` mirrors ``verify_data_shape``: ``monai.bundle.verify_net_in_out`` on ``network_def`` of the
  inference config with the metadata's ``network_data_format``, on the CPU. Zoo skips bundles on its
  ``exclude_verify_shape_list`` (its generative diffusion bundles among them); :data:`NO_SHAPE_CHECK` is ours.
- ``torchscript_export`` mirrors ``verify_torchscript``: fake weights (the initial state dict of ``network_def``, as
  zoo's ``_produce_fake_weights`` makes them) are exported by ``monai.bundle.ckpt_export``; the TorchScript file must
  load with ``torch.jit.load`` and give the eager network's output. Zoo skips bundles on its
  ``exclude_verify_torchscript_list`` (the metadata has no such flag); :data:`NOT_TORCHSCRIPTABLE` is ours.
- ``run_without_data`` is ours: the same workflow, run without a data path, stops with an error naming
  ``--dataset_dir`` and writes nothing into the bundle (model-zoo's CI builds it without data; a user who forgot the
  path must be told which override to pass).

Zoo's ``verify_metadata_format`` (the metadata against MONAI's published schema) is in ``test_bundle_metadata.py``.

:data:`EXPECTED_FAILURES` lists the (bundle, check) cases that fail today, each with the error it fails with. It is a
list that only shrinks: each entry is a strict expected failure, so a bundle fix turns it into an unexpected pass,
which fails the suite until the entry is removed. An entry reads ``"<ExceptionType>: <text>"``: the check must raise
that type (``xfail(raises=...)``), and ``<text>`` must occur in the error or its causes, or the case fails outright;
a case cannot hide behind an entry while failing for another reason.
"""

from __future__ import annotations

import builtins
import json
import logging
import re
import shutil
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from conftest import REPO

BUNDLES = sorted(p.name for p in (REPO / "bundles").iterdir() if (p / "configs" / "metadata.json").is_file())
CHECKS = (
    "necessary_files",
    "preferred_files",
    "version_in_changelog",
    "inference_properties",
    "verify_net_in_out",
    "torchscript_export",
    "run_without_data",
)
NET_ID = "network_def"
#: Bundles that cannot be exported to TorchScript (zoo's ``exclude_verify_torchscript_list``); say why in a comment.
NOT_TORCHSCRIPTABLE: frozenset[str] = frozenset(
    {
        # MONAI 1.6.1's DiffusionModelUNet does not script (its upsampling block calls super().forward: "'Tensor'
        # object has no attribute or method 'forward'"); zoo lists its generative diffusion bundles there too
        "text_to_image_diffusion",
    }
)
#: Bundles whose network_def takes more than the one image tensor the shape check feeds it (zoo's
#: ``exclude_verify_shape_list``, where zoo puts its generative diffusion bundles); say why in a comment and verify
#: the metadata against the network elsewhere, with its other inputs.
NO_SHAPE_CHECK: frozenset[str] = frozenset(
    {
        # the denoiser is net(x_t, timesteps, context); tests/test_bundle_diffusion.py runs verify_net_in_out with
        # extra_forward_args built from the metadata's timesteps and context inputs
        "text_to_image_diffusion",
    }
)

_NO_INFERENCE = "AssertionError: no configs/inference.json (or .yaml/.yml)"

#: (bundle, check) -> ``"<ExceptionType>: <text the error contains>"``, the way the check fails today. Only shrinks:
#: remove an entry when its bundle is fixed (the strict xfail insists).
EXPECTED_FAILURES: dict[tuple[str, str], str] = {}


class WrongReason(Exception):
    """An expected failure that failed for another reason than its :data:`EXPECTED_FAILURES` entry says."""


def _expected(reason: str) -> tuple[type[BaseException], str]:
    """``"KeyError: text"`` -> ``(KeyError, "text")``."""
    name, _, text = reason.partition(": ")
    exc = getattr(builtins, name, None)
    assert isinstance(exc, type) and issubclass(exc, BaseException) and text, f"malformed entry: {reason!r}"
    return exc, text


def _cases() -> Iterator:
    for name in BUNDLES:
        for check in CHECKS:
            if check == "torchscript_export" and name in NOT_TORCHSCRIPTABLE:
                continue  # zoo does not run it either
            if check == "verify_net_in_out" and name in NO_SHAPE_CHECK:
                continue  # likewise
            reason = EXPECTED_FAILURES.get((name, check))
            marks = []
            if reason is not None:
                marks.append(pytest.mark.xfail(strict=True, raises=_expected(reason)[0], reason=reason))
            yield pytest.param(name, check, marks=marks, id=f"{name}-{check}")


def test_expected_failures_name_real_cases_in_the_expected_form():
    assert set(EXPECTED_FAILURES) <= {(n, c) for n in BUNDLES for c in CHECKS}
    assert not NOT_TORCHSCRIPTABLE & {n for n, c in EXPECTED_FAILURES if c == "torchscript_export"}
    assert not NO_SHAPE_CHECK & {n for n, c in EXPECTED_FAILURES if c == "verify_net_in_out"}
    for reason in EXPECTED_FAILURES.values():
        _expected(reason)


def _copy(name: str, tmp_path: Path) -> Path:
    """The bundle alone, without local run outputs (the git-ignored weights, eval/ and cache/ folders)."""
    root = tmp_path / name
    ignore = shutil.ignore_patterns("eval", "cache", "mlruns*", "__pycache__", "*.pt", "*.ts")
    shutil.copytree(REPO / "bundles" / name, root, ignore=ignore)
    return root


def _find(folder: Path, stem: str) -> Path | None:
    """``folder/stem.{json,yaml,yml}``, as zoo looks up bundle configs."""
    return next((folder / f"{stem}.{s}" for s in ("json", "yaml", "yml") if (folder / f"{stem}.{s}").is_file()), None)


def _inference_config(root: Path) -> Path:
    config = _find(root / "configs", "inference")
    if config is None:
        raise AssertionError(_expected(_NO_INFERENCE)[1])
    return config


def _parser(root: Path, config: Path):
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(f=str(config))
    parser.read_meta(f=str(root / "configs" / "metadata.json"))
    parser["bundle_root"] = str(root)
    return parser


def _fake_weights(root: Path, config: Path) -> tuple[torch.nn.Module, Path]:
    """The initial weights of ``network_def`` saved where the config loads its checkpoint (zoo's fake weights)."""
    parser = _parser(root, config)
    network = parser.get_parsed_content(NET_ID)
    ckpt = Path(parser.get_parsed_content("ckpt_path")) if "ckpt_path" in parser else root / "models" / "model.pt"
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    torch.save(network.state_dict(), ckpt)
    return network, ckpt


def _fake_input(meta: dict) -> torch.Tensor:
    """A batch of one in the metadata's input format; ``"32*n"`` and the like with n = p = 1, as MONAI's default."""
    image = meta["network_data_format"]["inputs"]["image"]
    shape = []
    for size in image["spatial_shape"]:
        number = re.match(r"\d+", str(size))
        shape.append(int(number.group()) if number else 32)
    return torch.rand(1, image.get("num_channels", 1), *shape)


@pytest.fixture
def root_logger_kept():
    """``create_workflow(logging_file=...)`` reconfigures the root logger; put it back for the tests that follow."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in root.handlers:
        if handler not in handlers:
            root.removeHandler(handler)
    for handler in handlers:
        if handler not in root.handlers:
            root.addHandler(handler)
    root.setLevel(level)


def _error_text(exc: BaseException) -> str:
    parts, seen = [], set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        parts.append(f"{type(exc).__name__}: {exc}")
        exc = exc.__cause__ or exc.__context__
    return " <- ".join(parts)


@pytest.mark.parametrize("name, check", list(_cases()))
def test_model_zoo_check(name, check, tmp_path, root_logger_kept, monkeypatch):
    monkeypatch.delenv("SYNPRIV_DATA", raising=False)  # zoo's CI gives a bundle no data path (conftest.py sets one)
    root = _copy(name, tmp_path)
    reason = EXPECTED_FAILURES.get((name, check))
    try:
        CHECK_FUNCTIONS[check](name, root, tmp_path)
    except Exception as exc:
        if reason is not None and _expected(reason)[1] not in _error_text(exc):
            raise WrongReason(f"expected to fail with {reason!r}, failed with: {_error_text(exc)}") from exc
        raise


def check_necessary_files(name: str, root: Path, tmp_path: Path) -> None:
    for part in ("configs/metadata.json", "LICENSE", "docs/README.md"):
        assert (root / part).is_file(), f"{name}: necessary file {part} is missing"


def check_preferred_files(name: str, root: Path, tmp_path: Path) -> None:
    _inference_config(root)
    large_files = _find(root, "large_files")
    listed = large_files is not None and "models/model.pt" in large_files.read_text()
    if not (root / "models" / "model.pt").is_file() and not listed:
        warnings.warn(f"{name}: no models/model.pt and no large_files entry for it (zoo would refuse the bundle)")


def check_version_in_changelog(name: str, root: Path, tmp_path: Path) -> None:
    meta = json.loads((root / "configs" / "metadata.json").read_text())
    assert "version" in meta and "changelog" in meta, f"{name}: metadata lacks 'version' or 'changelog'"
    assert meta["version"] in meta["changelog"], f"{name}: version {meta['version']} is not a key of 'changelog'"


def check_inference_properties(name: str, root: Path, tmp_path: Path) -> None:
    from monai.bundle import create_workflow

    config = _inference_config(root)
    try:
        _fake_weights(root, config)
    except KeyError:
        pass  # no network_def to make weights from (verify_net_in_out reports it); let the workflow say what it lacks
    configs = root / "configs"
    workflow = create_workflow(
        workflow_type="inference",
        config_file=str(config),
        meta_file=str(configs / "metadata.json"),
        logging_file=str(configs / "logging.conf"),
        bundle_root=str(root),
    )
    missing = workflow.check_properties()
    assert missing == [], f"{name}: the inference workflow lacks required (or misnames optional) properties {missing}"


def check_verify_net_in_out(name: str, root: Path, tmp_path: Path) -> None:
    from monai.bundle import verify_net_in_out

    verify_net_in_out(  # raises on a shape, channel or dtype mismatch
        net_id=NET_ID,
        meta_file=str(root / "configs" / "metadata.json"),
        config_file=str(_inference_config(root)),
        device="cpu",
        bundle_root=str(root),
    )


def check_torchscript_export(name: str, root: Path, tmp_path: Path) -> None:
    from monai.bundle import ckpt_export

    config = _inference_config(root)
    network, ckpt = _fake_weights(root, config)
    ts = tmp_path / "verify_model.ts"
    ckpt_export(
        net_id=NET_ID,
        filepath=str(ts),
        ckpt_file=str(ckpt),
        meta_file=str(root / "configs" / "metadata.json"),
        config_file=str(config),
        bundle_root=str(root),
    )
    scripted = torch.jit.load(str(ts), map_location="cpu")
    data = _fake_input(json.loads((root / "configs" / "metadata.json").read_text()))
    network.eval()
    with torch.no_grad():
        torch.testing.assert_close(scripted(data), network(data))


def check_run_without_data(name: str, root: Path, tmp_path: Path) -> None:
    """Ours, not zoo's: the workflow zoo builds without data (fake weights in place) refuses to run, naming the
    override that gives it data, before it writes anything into the bundle."""
    from monai.bundle import create_workflow

    config = _inference_config(root)
    _fake_weights(root, config)
    before = {p for p in root.rglob("*")}
    configs = root / "configs"
    workflow = create_workflow(
        workflow_type="inference",
        config_file=str(config),
        meta_file=str(configs / "metadata.json"),
        logging_file=str(configs / "logging.conf"),
        bundle_root=str(root),
    )
    with pytest.raises(Exception) as info:
        workflow.run()
    assert "--dataset_dir" in _error_text(info.value), _error_text(info.value)
    assert {p for p in root.rglob("*")} - before == set(), "a run without data wrote into the bundle"


CHECK_FUNCTIONS = {check: globals()[f"check_{check}"] for check in CHECKS}
