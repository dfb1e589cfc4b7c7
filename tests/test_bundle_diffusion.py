"""The text-to-image diffusion bundle's ``configs/inference.json``: generation as MONAI's inference workflow.

On 4 real MedPix test captions and a tiny denoiser with fake (perturbed initial) weights, through the bundle CLI: one
PNG per caption, not constant, and byte for byte what ``train.json`` + ``generate.json`` write for the same captions,
weights and settings (the same datalist too); a rerun regenerates only a lost image, identically. In process: the
workflow builds, and its properties read, without data and without the text encoder's files, and its run stops
naming the data override; the metadata describes ``network_def`` with its three inputs (model-zoo's shape check feeds
one tensor, so ``tests/test_bundle_zoo_checks.py`` leaves this bundle to the check here).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import DATA, REPO, bundle, minilm_package, require, tiny_diffusion_unet

T2I = REPO / "bundles" / "text_to_image_diffusion"
CONFIGS = T2I / "configs"
MEDPIX = DATA / "medpix2_subset"
#: the tiny denoiser of conftest's ``tiny_diffusion_unet`` (Python-style booleans: the CLI keeps `false` a string)
TINY = ["--channels", "[16,32]", "--attention_levels", "[False,True]", "--num_res_blocks", "1"]
TINY += ["--norm_num_groups", "8", "--num_head_channels", "16", "--image_size", "32"]
#: 4 test captions (evenly spaced), 3 DDIM steps, batches of 3 (so two batches: 3 + 1)
GENERATE = ["--generate_sections", "['test']", "--max_items", "4", "--num_inference_steps", "3"]
GENERATE += ["--generate_batch_size", "3"]
N = 4
TINY_OVERRIDES = dict(
    channels=[16, 32], attention_levels=[False, True], num_res_blocks=1, norm_num_groups=8, num_head_channels=16,
    image_size=32,
)


@pytest.fixture(scope="module", autouse=True)
def _offline():
    """No process may reach the Hugging Face hub (MiniLM comes from the installed package); one intra-op thread."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("OMP_NUM_THREADS", "1")
        yield


def _fake_weights(path: Path) -> None:
    """The tiny denoiser's initial weights, perturbed (MONAI zero-initialises the output convolution, which would make
    every sample the same function of its noise whatever the caption)."""
    torch.manual_seed(0)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(tiny_diffusion_unet(384, perturb=True).state_dict(), path)


def _pngs(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted((folder / "images").glob("*.png"))}


def _items(datalist: dict) -> list[dict]:
    return sorted((it for k, v in datalist.items() if k != "generation" for it in v), key=lambda it: it["index"])


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """inference.json and train.json + generate.json run with the same weights, captions and settings."""
    minilm_package()
    require(MEDPIX)
    tmp = tmp_path_factory.mktemp("t2i_inference")
    _fake_weights(tmp / "models" / "model.pt")
    common = ["--bundle_root", ".", "--cache_dir", str(tmp / "cache"), "--ckpt_dir", str(tmp / "models"), *TINY]
    infer = ["run", "--config_file", "configs/inference.json", "--dataset_dir", str(DATA), *common, *GENERATE]
    infer += ["--output_dir", str(tmp / "inference")]
    bundle(*infer, cwd=T2I)
    generate = ["run", "--config_file", "['configs/train.json','configs/generate.json']", "--data_root", str(DATA)]
    generate += [*common, *GENERATE, "--output_dir", str(tmp / "generate")]
    bundle(*generate, cwd=T2I)
    return tmp, infer


def test_inference_writes_one_image_per_caption_as_generate_does(generated):
    from PIL import Image

    from monai_synpriv.data import prepare_medpix_datalist
    from monai_synpriv.vlp import load_pairs

    tmp, _ = generated
    syn, ref = tmp / "inference" / "synthetic", tmp / "generate" / "synthetic"
    sources = load_pairs(prepare_medpix_datalist(MEDPIX), ["test"], max_items=N)
    pngs = _pngs(syn)
    assert list(pngs) == [f"{i:05d}_{Path(s['image']).name.split('.')[0]}.png" for i, s in enumerate(sources)]
    data = json.loads((syn / "synthetic_datalist.json").read_text())
    assert list(data) == ["generation", "test"]
    assert data["generation"]["image_size"] == [32, 32] and data["generation"]["num_inference_steps"] == 3
    assert data["generation"]["checkpoint"] == str(tmp / "models" / "model.pt")
    for i, (item, src) in enumerate(zip(_items(data), sources)):
        assert item["index"] == i and item["synthetic"] is True and item["source_image"] == src["image"]
        assert item["text"] == src["text"] and item["case"] == src["case"] and item["section"] == "test"
        assert Path(item["image"]) == syn / "images" / list(pngs)[i]
    assert (syn / "caption_grid.png").stat().st_size > 0

    images = []
    for name in pngs:
        with Image.open(syn / "images" / name) as im:
            assert im.size == (32, 32) and im.mode == "L"
            images.append(np.asarray(im, dtype=np.float64) / 255.0)
    # not constant: each image varies (std > 0.05, 13 grey levels) and no two images are alike (mean |diff| > 0.05);
    # measured with these fake weights: std 0.26-0.27, closest pair 0.29 apart
    assert all(float(img.std()) > 0.05 for img in images), [float(img.std()) for img in images]
    gaps = [float(np.abs(images[i] - images[j]).mean()) for i in range(N) for j in range(i + 1, N)]
    assert min(gaps) > 0.05, gaps

    # the same files as generate.json's: same bytes, and the same datalist but for the output folder
    assert {k: v[0] for k, v in pngs.items()} == {k: v[0] for k, v in _pngs(ref).items()}
    expected = json.loads((ref / "synthetic_datalist.json").read_text().replace(str(ref), str(syn)))
    assert data == expected


def test_inference_rerun_regenerates_only_a_lost_image(generated):
    tmp, infer = generated
    syn = tmp / "inference" / "synthetic"
    before = _pngs(syn)
    datalist = (syn / "synthetic_datalist.json").read_text()
    lost = syn / "images" / list(before)[-1]  # the second batch's only image
    lost.unlink()
    bundle(*infer, cwd=T2I)
    after = _pngs(syn)
    assert {k: v[0] for k, v in after.items()} == {k: v[0] for k, v in before.items()}  # regenerated identically
    assert {k: v[1] for k, v in after.items() if k != lost.name} == {
        k: v[1] for k, v in before.items() if k != lost.name
    }  # the others were not rewritten
    assert (syn / "synthetic_datalist.json").read_text() == datalist


def _error_chain(exc: BaseException) -> str:
    parts = []
    while exc is not None:
        parts.append(str(exc))
        exc = exc.__cause__ or exc.__context__
    return " <- ".join(parts)


def test_workflow_builds_without_data_or_text_encoder_and_stops_naming_the_data(tmp_path, monkeypatch):
    """What model-zoo's CI does (build the workflow, read its properties) needs neither data nor the MiniLM files:
    the captions are read at run time and the text encoder at the first batch."""
    from monai.bundle import create_workflow
    from monai.engines import SupervisedEvaluator

    from monai_synpriv.vlp import GuidedSamplingInferer, PretrainedTextConditioner

    monkeypatch.delenv("SYNPRIV_DATA", raising=False)
    root = tmp_path / "bundle"
    shutil.copytree(T2I, root, ignore=shutil.ignore_patterns("eval", "cache", "models", "__pycache__"))
    _fake_weights(tmp_path / "model.pt")  # as zoo's CI writes fake weights where the config loads its checkpoint
    workflow = create_workflow(
        workflow_type="inference",
        config_file=str(root / "configs" / "inference.json"),
        meta_file=str(root / "configs" / "metadata.json"),
        bundle_root=str(root),
        ckpt_path=str(tmp_path / "model.pt"),
        text_encoder_dir=str(tmp_path / "no_text_encoder"),
        **TINY_OVERRIDES,
    )
    assert workflow.check_properties() == []
    assert workflow.dataset_dir is None and len(workflow.dataset) == 0
    assert isinstance(workflow.evaluator, SupervisedEvaluator) and isinstance(workflow.inferer, GuidedSamplingInferer)
    conditioner = workflow.parser.get_parsed_content("conditioner")
    assert isinstance(conditioner, PretrainedTextConditioner) and conditioner.context_dim == 384  # nothing loaded
    with pytest.raises(FileNotFoundError, match="no_text_encoder"):
        conditioner(["a caption"])  # the files are needed at the first batch only
    with pytest.raises(Exception) as info:
        workflow.run()
    assert "config key 'dataset_dir' is not set: pass --dataset_dir" in _error_chain(info.value)
    assert "--input <datalist>" in _error_chain(info.value)
    assert not (root / "eval").exists()  # nothing written


def test_metadata_describes_network_def_with_its_three_inputs():
    """monai.bundle.verify_net_in_out on inference.json's network_def, given the timesteps and the caption context
    that the metadata describes next to the noisy image; the context size is the text encoder's."""
    from monai.bundle import ConfigParser, verify_net_in_out

    from monai_synpriv.vlp import PretrainedTextConditioner

    meta = json.loads((CONFIGS / "metadata.json").read_text())
    inputs, outputs = meta["network_data_format"]["inputs"], meta["network_data_format"]["outputs"]
    assert list(inputs) == ["image", "timesteps", "context"]  # DiffusionModelUNet.forward(x, timesteps, context)
    t, c = inputs["timesteps"], inputs["context"]
    extra = {
        "timesteps": torch.tensor([t["value_range"][1]], dtype=getattr(torch, t["dtype"])),
        "context": torch.rand(1, c["num_channels"], *c["spatial_shape"], dtype=getattr(torch, c["dtype"])),
    }
    kwargs = dict(meta_file=str(CONFIGS / "metadata.json"), config_file=str(CONFIGS / "inference.json"))
    verify_net_in_out(net_id="network_def", device="cpu", extra_forward_args=extra, **kwargs)
    parser = ConfigParser()
    parser.read_config(str(CONFIGS / "inference.json"))
    net = parser.get_parsed_content("network_def").eval()
    image = inputs["image"]
    with torch.no_grad():
        out = net(torch.rand(1, image["num_channels"], *image["spatial_shape"]), **extra)
    assert tuple(out.shape) == (1, outputs["pred"]["num_channels"], *outputs["pred"]["spatial_shape"])
    assert parser.get_parsed_content("image_size") == image["spatial_shape"][0] == image["spatial_shape"][1]
    # the context width is that of the encoder the bundle trains with (all-MiniLM-L6-v2)
    minilm_package()
    assert c["spatial_shape"] == [PretrainedTextConditioner().load().context_dim] == [parser["context_dim"]]
