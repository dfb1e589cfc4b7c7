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
- ``inference_on_sample_data`` is ours: the inference workflow, built in-process from the copied bundle as
  ``run_without_data`` builds it (fake weights in place, made with the same small-network overrides), runs on 2-4
  real public images given as a user gives them (a folder or a datalist JSON, through the config's input override;
  :data:`SAMPLE_RUNS` says which images and which overrides for each bundle), and writes what the bundle promises:
  one output per input, sane (finite embeddings, a full ranking, one cluster per image, synthetic images on the
  input's grid, a not-constant image per caption), and nothing outside its output folder and the bundle. What else
  the inference config needs is made as a user would make it (the clustering bundle's ``models/cluster_model.json``:
  k-means with the library, on the fake network's latents of the same images).

Zoo's ``verify_metadata_format`` (the metadata against MONAI's published schema) is in ``test_bundle_metadata.py``.

:data:`EXPECTED_FAILURES` lists the (bundle, check) cases that fail today, each with the error it fails with. It is a
list that only shrinks: each entry is a strict expected failure, so a bundle fix turns it into an unexpected pass,
which fails the suite until the entry is removed. An entry reads ``"<ExceptionType>: <text>"``: the check must raise
that type (``xfail(raises=...)``), and ``<text>`` must occur in the error or its causes, or the case fails outright;
a case cannot hide behind an entry while failing for another reason.
"""

from __future__ import annotations

import builtins
import csv
import json
import logging
import re
import shutil
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import DATA, REPO, minilm_package, require

BUNDLES = sorted(p.name for p in (REPO / "bundles").iterdir() if (p / "configs" / "metadata.json").is_file())
CHECKS = (
    "necessary_files",
    "preferred_files",
    "version_in_changelog",
    "inference_properties",
    "verify_net_in_out",
    "torchscript_export",
    "run_without_data",
    "inference_on_sample_data",
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

#: the slim ViT of tests/test_bundle_examine.py (MAE encoder, also the EXAMINE bundle's own)
_SLIM_VIT = dict(
    hidden_size=48, mlp_dim=96, num_layers=2, decoder_hidden_size=24, decoder_mlp_dim=48, decoder_num_layers=1
)
#: bundle -> how ``inference_on_sample_data`` runs its inference config: ``sample`` names the real images and the form
#: a user gives them in (:data:`SAMPLE_INPUTS`), ``input`` the config id that takes that folder or datalist (the
#: ``--input``-style override), ``overrides`` the small settings (made part of the fake weights' network too) and
#: ``outputs`` what the run must have written (:data:`OUTPUT_CHECKS`).
SAMPLE_RUNS: dict[str, dict] = {
    # 4 BreastMNIST test images (its default data) in a datalist JSON; the narrow autoencoder of
    # test_bundle_clustering.py; models/cluster_model.json: 2 k-means clusters of the fake network's latents of them
    "contrastive_ae_clustering": dict(
        sample="breastmnist", input="input", outputs="clusters",
        overrides=dict(section="test", latent_size=8, channels=[4, 8, 8], projection_dims=[16, 8]),
    ),
    # the same 4 images ranked, embedded by the bundle's own (slim) MAE encoder
    "examine_assessment": dict(
        sample="breastmnist", input="input", outputs="ranking", overrides=dict(section="test", **_SLIM_VIT)
    ),
    # the same 4 images embedded by the slim ViT
    "mae_pretraining": dict(
        sample="breastmnist", input="input", outputs="embeddings", overrides=dict(section="test", **_SLIM_VIT)
    ),
    # 3 brain-tumour MRI JPEGs (224 px, RGB and greyscale; its downstream data) in a folder; ResNet-10 at 32 px
    "multimodal_ssl": dict(
        sample="brain_tumor_jpegs", input="input", outputs="embeddings", overrides=dict(depth=10, image_size=[32, 32])
    ),
    # 3 MedPix test captions (a datalist JSON of image-text pairs); the tiny denoiser of test_bundle_diffusion.py at
    # 32 px, 3 DDIM steps, one batch; MiniLM from its installed package, offline
    "text_to_image_diffusion": dict(
        sample="medpix_pairs", input="input", outputs="generated",
        overrides=dict(
            generate_sections=["test"], num_inference_steps=3, generate_batch_size=3, channels=[16, 32],
            attention_levels=[False, True], num_res_blocks=1, norm_num_groups=8, num_head_channels=16, image_size=32,
        ),
    ),
    # 3 axial T1c slices of one subject (2D NIfTI, as prepare_multicontrast_slices writes them) in a folder, whose
    # entries carry the key "image" (a prepared datalist's is "A"); the tiny generator of test_bundle_translator.py
    "unpaired_translator": dict(
        sample="t1c_slices", input="input_datalist", outputs="synthetic",
        overrides=dict(input_key="image", ngf=4, num_res_blocks=1, image_size=[32, 32]),
    ),
    # 3 MedPix test images (CT/MR PNGs) in the same datalist JSON; ResNet-10 at 32 px
    "vision_language_pretraining": dict(
        sample="medpix_pairs", input="input", outputs="embeddings",
        overrides=dict(section="test", depth=10, image_size=32),
    ),
}

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
    assert set(SAMPLE_RUNS) == set(BUNDLES), "every bundle needs its SAMPLE_RUNS entry, and only a bundle"
    assert {r["sample"] for r in SAMPLE_RUNS.values()} <= set(SAMPLE_INPUTS)
    assert {r["outputs"] for r in SAMPLE_RUNS.values()} <= set(OUTPUT_CHECKS)


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


def _parser(root: Path, config: Path, overrides: dict | None = None):
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(f=str(config))
    parser.read_meta(f=str(root / "configs" / "metadata.json"))
    parser["bundle_root"] = str(root)
    parser.update(overrides or {})
    return parser


def _fake_weights(root: Path, config: Path, overrides: dict | None = None) -> tuple[torch.nn.Module, Path]:
    """The initial weights of ``network_def`` saved where the config loads its checkpoint (zoo's fake weights);
    ``overrides``: config ids set first (the network sizes the run will be given)."""
    parser = _parser(root, config, overrides)
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


@pytest.fixture(scope="module")
def shared_samples(tmp_path_factory) -> Path:
    """A folder the sample-data cases share, for derived files that are slow to make (the MedMNIST images)."""
    return tmp_path_factory.mktemp("zoo_samples")


@pytest.mark.parametrize("name, check", list(_cases()))
def test_model_zoo_check(name, check, tmp_path, root_logger_kept, monkeypatch, request):
    monkeypatch.delenv("SYNPRIV_DATA", raising=False)  # zoo's CI gives a bundle no data path (conftest.py sets one)
    root = _copy(name, tmp_path)
    reason = EXPECTED_FAILURES.get((name, check))
    extra = [request.getfixturevalue(f) for f in CHECK_FIXTURES.get(check, ())]
    try:
        CHECK_FUNCTIONS[check](name, root, tmp_path, *extra)
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


def _inference_workflow(root: Path, config: Path, **overrides):
    """``monai.bundle.create_workflow`` of the copied bundle's inference config, as zoo's CI builds it."""
    from monai.bundle import create_workflow

    configs = root / "configs"
    return create_workflow(
        workflow_type="inference",
        config_file=str(config),
        meta_file=str(configs / "metadata.json"),
        logging_file=str(configs / "logging.conf"),
        bundle_root=str(root),
        **overrides,
    )


def check_inference_properties(name: str, root: Path, tmp_path: Path) -> None:

    config = _inference_config(root)
    try:
        _fake_weights(root, config)
    except KeyError:
        pass  # no network_def to make weights from (verify_net_in_out reports it); let the workflow say what it lacks
    workflow = _inference_workflow(root, config)
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

    config = _inference_config(root)
    _fake_weights(root, config)
    before = {p for p in root.rglob("*")}
    workflow = _inference_workflow(root, config)
    with pytest.raises(Exception) as info:
        workflow.run()
    assert "--dataset_dir" in _error_text(info.value), _error_text(info.value)
    assert {p for p in root.rglob("*")} - before == set(), "a run without data wrote into the bundle"


def _datalist(folder: Path, section: str, items: list[dict]) -> Path:
    """The user's datalist JSON: ``items`` (absolute paths) under ``section``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "datalist.json").write_text(json.dumps({section: items}, indent=1))
    return folder / "datalist.json"


def _breastmnist(folder: Path, shared: Path) -> tuple[Path, list[dict]]:
    """4 BreastMNIST test images (float NIfTI in [0, 1], as the bundles' default data reads them; prepared once per
    module) in a datalist JSON."""
    from monai_synpriv.data import load_image_list, prepare_medmnist

    prepared = prepare_medmnist(require(DATA / "medmnist" / "breastmnist.npz"), shared / "medmnist")  # reused
    items = load_image_list(prepared, section="test", max_items=4)
    return _datalist(folder, "test", items), items


def _brain_tumor_jpegs(folder: Path, shared: Path) -> tuple[Path, list[dict]]:
    """3 brain-tumour test JPEGs (the first of glioma, meningioma and pituitary that is RGB, greyscale, RGB and not
    a copy of a training file, by index.csv), extracted to a folder as ``<class>/<file>.jpg``."""
    import tarfile

    root = require(DATA / "brain_tumor_mri_4class")
    with open(root / "index.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["split"] == "Testing" and r["identical_in_other_split"] == "0"]
    wanted = [("glioma", "RGB"), ("meningioma", "L"), ("pituitary", "RGB")]
    names = [next(r["path"] for r in rows if (r["label"], r["mode"]) == w) for w in wanted]
    paths = []
    with tarfile.open(root / "brain_tumor_mri_224.tar") as tar:
        for name in names:
            path = folder / "images" / Path(name).parent.name / Path(name).name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(tar.extractfile(name).read())
            paths.append(str(path))
    return folder / "images", [{"image": p} for p in sorted(paths)]  # a folder is read in sorted order


def _medpix_pairs(folder: Path, shared: Path) -> tuple[Path, list[dict]]:
    """3 image-caption pairs of the MedPix test split, evenly spaced, in a datalist JSON (images read in place)."""
    from monai_synpriv.data import load_image_list, prepare_medpix_datalist

    items = load_image_list(prepare_medpix_datalist(require(DATA / "medpix2_subset"))["test"], max_items=3)
    return _datalist(folder, "test", items), items


def _t1c_slices(folder: Path, shared: Path) -> tuple[Path, list[dict]]:
    """3 axial slices with brain, evenly spaced, of one subject's contrast T1, in a folder."""
    from monai_synpriv.data import load_normalized_volume, save_slice, select_slices

    subject = "TCGA-DU-7294"
    volume = load_normalized_volume(require(DATA / "mri_brain_multicontrast" / subject / "t1c.nii.gz"))
    indices = select_slices([volume], axis=2, min_foreground=0.1)  # prepare_multicontrast_slices' default
    chosen = [indices[(2 * i + 1) * len(indices) // 6] for i in range(3)]
    paths = [save_slice(volume, i, folder / "slices" / f"{subject}_t1c_{i:03d}.nii.gz") for i in chosen]
    return folder / "slices", [{"image": p} for p in paths]


#: ``SAMPLE_RUNS[...]["sample"]`` -> ``(folder to write in, shared folder) -> (input path, its items in order)``
SAMPLE_INPUTS = {
    "breastmnist": _breastmnist,
    "brain_tumor_jpegs": _brain_tumor_jpegs,
    "medpix_pairs": _medpix_pairs,
    "t1c_slices": _t1c_slices,
}


def _fit_cluster_model(root: Path, config: Path, overrides: dict, items: list[dict]) -> None:
    """What evaluate.json leaves next to model.pt, made from the sample: k-means (2 clusters) on the latents that
    the bundle's own network (fake weights) and preprocessing give the images, saved as models/cluster_model.json."""
    from monai_synpriv.assessment import EncoderBundle
    from monai_synpriv.evaluation import fit_clusters

    parser = _parser(root, config, overrides)
    encoder = EncoderBundle(root, config, overrides=overrides, require_weights=True)
    latents = encoder.embed([it["image"] for it in items])
    fit_clusters(latents, "kmeans", 2).save(parser.get_parsed_content("cluster_model"))


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _check_embeddings(out: Path, root: Path, items: list[dict]) -> None:
    emb = np.load(out / "embeddings.npy")
    assert emb.ndim == 2 and emb.shape[0] == len(items) and np.isfinite(emb).all(), emb.shape
    assert np.ptp(emb, axis=0).max() > 0, "every image got the same embedding"
    rows = _rows(out / "embeddings.csv")
    assert [(int(r["row"]), r["image"]) for r in rows] == [(i, it["image"]) for i, it in enumerate(items)]


def _check_ranking(out: Path, root: Path, items: list[dict]) -> None:
    _check_embeddings(out, root, items)
    rows = _rows(out / "examine_ranking.csv")
    assert [int(r["rank"]) for r in rows] == list(range(1, len(items) + 1))
    assert sorted(int(r["row"]) for r in rows) == list(range(len(items)))  # every image ranked once
    assert all(r["image"] == items[int(r["row"])]["image"] for r in rows)
    assert all(np.isfinite(float(r["score"])) and np.isfinite(float(r["msv"])) for r in rows), rows


def _check_clusters(out: Path, root: Path, items: list[dict]) -> None:
    from monai_synpriv.evaluation import ClusterModel

    model = ClusterModel.load(root / "models" / "cluster_model.json")
    rows = _rows(out / "cluster_assignments.csv")
    assert [r["image"] for r in rows] == [it["image"] for it in items]
    assert all(0 <= int(r["cluster"]) < model.n_clusters for r in rows), rows
    assert all(0 <= float(r["confidence"]) <= 1 for r in rows), rows


def _check_synthetic(out: Path, root: Path, items: list[dict]) -> None:
    import nibabel as nib

    paired = json.loads((out / "synthetic" / "paired_datalist.json").read_text())
    entries = paired["training"]
    assert paired["missing"] == 0 and [e["image"] for e in entries] == [it["image"] for it in items], paired
    for e in entries:
        src, syn = nib.load(e["image"]), nib.load(e["privileged"])
        assert out / "synthetic" in Path(e["privileged"]).parents
        assert syn.shape == src.shape  # back on the input's grid, not the network's 32 px
        data = syn.get_fdata()
        assert np.isfinite(data).all() and 0 <= data.min() and data.max() <= 1 and data.std() > 0, e["privileged"]


def _check_generated(out: Path, root: Path, items: list[dict]) -> None:
    from PIL import Image

    data = json.loads((out / "synthetic" / "synthetic_datalist.json").read_text())
    generated = sorted((it for k, v in data.items() if k != "generation" for it in v), key=lambda it: it["index"])
    assert [(g["source_image"], g["text"]) for g in generated] == [(it["image"], it["text"]) for it in items]
    assert sorted((out / "synthetic" / "images").iterdir()) == sorted(Path(g["image"]) for g in generated)
    images = []
    for g in generated:
        with Image.open(g["image"]) as im:
            assert im.size == (32, 32) and im.mode == "L", (im.size, im.mode)
            images.append(np.asarray(im, dtype=np.float64) / 255.0)
    assert all(img.std() > 0.05 for img in images), [img.std() for img in images]  # not constant
    assert all(np.abs(a - b).mean() > 0.05 for i, a in enumerate(images) for b in images[i + 1 :])  # not one image


#: ``SAMPLE_RUNS[...]["outputs"]`` -> ``(output folder, bundle, input items)``, asserting what the run wrote
OUTPUT_CHECKS = {
    "embeddings": _check_embeddings,
    "ranking": _check_ranking,
    "clusters": _check_clusters,
    "synthetic": _check_synthetic,
    "generated": _check_generated,
}


def check_inference_on_sample_data(name: str, root: Path, tmp_path: Path, shared: Path) -> None:
    """Ours: the inference workflow of the copied bundle, with fake weights and small settings, on a few real images
    given through its input override, writes one sane output per input and nothing outside its output folder and
    the bundle."""

    run = SAMPLE_RUNS[name]
    config = _inference_config(root)
    overrides = dict(run["overrides"])
    _fake_weights(root, config, overrides)
    source, items = SAMPLE_INPUTS[run["sample"]](tmp_path / "user_data", shared)
    if run["outputs"] == "clusters":
        _fit_cluster_model(root, config, overrides, items)
    if name == "text_to_image_diffusion":
        minilm_package()  # the caption encoder (text_encoder_dir null: the installed all-MiniLM-L6-v2)
    out, cwd = tmp_path / "out", tmp_path / "cwd"
    cwd.mkdir()
    origin = REPO / "bundles" / name
    before = {p: set(p.rglob("*")) for p in (tmp_path, shared, origin)}
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(cwd)  # a relative path written to would land here
        mp.setenv("HF_HUB_OFFLINE", "1")
        workflow = _inference_workflow(root, config, output_dir=str(out), **{run["input"]: str(source)}, **overrides)
        workflow.run()
        workflow.finalize()
    OUTPUT_CHECKS[run["outputs"]](out, root, items)
    new = set(tmp_path.rglob("*")) - before[tmp_path]
    outside = sorted(p for p in new if p != out and out not in p.parents and root not in p.parents)
    assert outside == [], f"{name}: written outside the output folder and the bundle: {outside}"
    for folder in (shared, origin):
        assert set(folder.rglob("*")) == before[folder], f"{name}: the run changed {folder}"


CHECK_FUNCTIONS = {check: globals()[f"check_{check}"] for check in CHECKS}
#: the module fixtures a check takes after (name, root, tmp_path)
CHECK_FIXTURES = {"inference_on_sample_data": ("shared_samples",)}
