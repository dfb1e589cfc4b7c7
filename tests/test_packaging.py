"""``pip install .`` (not editable): the wheel ships the bundles and the pipeline profiles, and the package finds
them without a source checkout."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from conftest import DATA, REPO, require


def test_plain_install_ships_bundles_and_profiles(tmp_path):
    site = tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target", str(site)]
    proc = subprocess.run([*pip, str(REPO)], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    shipped = site / "monai_synpriv" / "_shipped"
    bundles = sorted(p.parent.parent.name for p in (shipped / "bundles").glob("*/configs/metadata.json"))
    assert bundles == sorted(p.parent.parent.name for p in (REPO / "bundles").glob("*/configs/metadata.json"))
    assert not list(shipped.rglob("*.pt")) and not list(shipped.rglob("__pycache__"))
    assert {p.stem for p in (shipped / "profiles").glob("*.json")} >= {"tiny", "quick", "full"}

    code = (
        "import json, sys, monai_synpriv\n"
        "from monai_synpriv.locations import bundles_dir, profiles_dir\n"
        "from monai_synpriv.pipeline import SynPrivPipeline\n"
        f"pipe = SynPrivPipeline('tiny', {str(tmp_path / 'out')!r}, data_root={str(DATA)!r}, progress=False)\n"
        "print(json.dumps({'package': monai_synpriv.__file__, 'bundles': str(bundles_dir()),"
        " 'profiles': str(profiles_dir()), 'pipeline_bundles': str(pipe.bundles)}))\n"
    )
    require(DATA / "brain_tumor_mri_4class" / "brain_tumor_mri_224.tar")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNPRIV_")}
    env["PYTHONPATH"] = str(site)  # before the editable checkout of this environment
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    where = json.loads(run.stdout.strip().splitlines()[-1])
    assert where["package"].startswith(str(site))
    assert where["bundles"] == where["pipeline_bundles"] == str(shipped / "bundles")
    assert where["profiles"] == str(shipped / "profiles")

    # SYNPRIV_BUNDLES points at a site's own copy
    env["SYNPRIV_BUNDLES"] = str(tmp_path / "site_bundles")
    moved = subprocess.run(
        [sys.executable, "-c", "from monai_synpriv.locations import bundles_dir; print(bundles_dir())"],
        capture_output=True, text=True, cwd=tmp_path, env=env,
    )
    assert moved.stdout.strip() == str(tmp_path / "site_bundles")
