"""large_files.yml for a trained bundle: MONAI's download_large_files fetches the weights it lists and checks them."""

from __future__ import annotations

import shutil

import pytest
import torch
from conftest import REPO

from monai_synpriv.cli import main
from monai_synpriv.large_files import write_large_files


def test_download_large_files_restores_the_weights_and_refuses_altered_ones(tmp_path, capsys):
    from monai.apps.utils import HashCheckError
    from monai.bundle import download_large_files

    from monai_synpriv.networks import make_resnet_encoder
    from monai_synpriv.utils import write_architecture

    site = tmp_path / "site" / "multimodal_ssl"
    shutil.copytree(REPO / "bundles" / "multimodal_ssl", site, ignore=shutil.ignore_patterns("*.pt", "eval", "cache"))
    with pytest.raises(SystemExit):  # no weights yet: refused, naming the file
        main(["large-files", str(site), "--url-base", "file:///nowhere"])
    assert "models/model.pt not found" in capsys.readouterr().err
    torch.save(make_resnet_encoder(2, 1, 10).state_dict(), site / "models" / "model.pt")
    write_architecture(site / "models" / "model.pt", {"depth": 10})
    hosted = tmp_path / "hosted"
    shutil.copytree(site / "models", hosted / "models")
    assert main(["large-files", str(site), "--url-base", hosted.as_uri()]) == 0
    text = (site / "large_files.yml").read_text()
    assert '"models/model.pt"' in text and '"models/model.network.json"' in text and '"sha256"' in text

    shared = tmp_path / "shared" / "multimodal_ssl"  # the bundle as shared: no weights, only the list
    shutil.copytree(site, shared, ignore=shutil.ignore_patterns("*.pt", "*.network.json"))
    download_large_files(bundle_path=str(shared))
    assert (shared / "models" / "model.pt").read_bytes() == (site / "models" / "model.pt").read_bytes()
    assert (shared / "models" / "model.network.json").is_file()

    (hosted / "models" / "model.pt").write_bytes(b"not the weights")  # altered on the host: the hash refuses it
    again = tmp_path / "again" / "multimodal_ssl"
    shutil.copytree(shared, again, ignore=shutil.ignore_patterns("*.pt", "*.network.json"))
    with pytest.raises(HashCheckError, match="sha256 hash check"):
        download_large_files(bundle_path=str(again))
    assert not (again / "models" / "model.pt").exists()
    with pytest.raises(ValueError, match="hash_type"):
        write_large_files(site, hosted.as_uri(), hash_type="crc32")
