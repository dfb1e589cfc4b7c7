"""Latent diffusion for the caption-conditioned generator (issue 20): MONAI's AutoencoderKL as the first stage, its
loss, its record (scale factor, settings, weights' hash), cached latents, and the bundle's three steps on real MedPix
images: train_autoencoder.json, train_latent.json, generate.json decoding the sampled latents."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import DATA, REPO, bundle, minilm_package, require
from monai.networks.nets import AutoencoderKL

from monai_synpriv.losses import AutoencoderKLLoss
from monai_synpriv.vlp import EncodeLatentd, LatentDecoder, read_latent_record, write_latent_record

T2I = REPO / "bundles" / "text_to_image_diffusion"


def _tiny_ae() -> AutoencoderKL:
    torch.manual_seed(0)
    return AutoencoderKL(
        spatial_dims=2, in_channels=1, out_channels=1, channels=(8, 8), attention_levels=(False, False),
        latent_channels=2, num_res_blocks=1, norm_num_groups=4, with_encoder_nonlocal_attn=False,
        with_decoder_nonlocal_attn=False,
    )  # fmt: skip


def test_autoencoder_kl_loss_against_the_formula():
    recon, target = torch.rand(2, 1, 4, 4), torch.rand(2, 1, 4, 4)
    mu, sigma = torch.randn(2, 3, 2, 2), torch.rand(2, 3, 2, 2) + 0.5
    kl = (0.5 * (mu**2 + sigma**2 - torch.log(sigma**2) - 1)).flatten(1).sum(1).mean()
    l1 = (recon - target).abs().mean()
    out = AutoencoderKLLoss(kl_weight=0.01)((recon, mu, sigma), target)
    torch.testing.assert_close(out, l1 + 0.01 * kl)
    mse = AutoencoderKLLoss(kl_weight=0.0, reconstruction="mse")((recon, mu, sigma), target)
    torch.testing.assert_close(mse, ((recon - target) ** 2).mean())
    with pytest.raises(TypeError, match="z_sigma"):
        AutoencoderKLLoss()(recon, target)
    with pytest.raises(ValueError, match="reconstruction"):
        AutoencoderKLLoss(reconstruction="l2")


def test_latent_record_encoding_and_decoding(tmp_path):
    """The record's scale factor gives the dataset's latent means unit variance; EncodeLatentd applies it and
    LatentDecoder undoes it; a record of other settings or of replaced weights is refused."""
    ae = _tiny_ae().eval()
    torch.save(ae.state_dict(), tmp_path / "autoencoder.pt")
    data = [{"image": torch.rand(1, 16, 16) * 2 - 1} for _ in range(5)]
    record = write_latent_record(ae, data, tmp_path, settings={"latent_channels": 2})
    assert record["latent_shape"] == [2, 8, 8] and record["n_images"] == 5
    enc = EncodeLatentd("image", ae, record["scale_factor"])
    z = torch.stack([enc(d)["image"] for d in data])
    assert z.shape == (5, 2, 8, 8) and float(z.std()) == pytest.approx(1.0, rel=1e-4)
    with torch.no_grad():
        mu = ae.encode(data[0]["image"][None])[0][0]
        direct = ae.decode(mu[None])
    torch.testing.assert_close(z[0], mu * record["scale_factor"])
    torch.testing.assert_close(LatentDecoder(ae, record["scale_factor"])(z[:1]), direct, rtol=1e-4, atol=1e-5)
    assert read_latent_record(tmp_path, {"latent_channels": 2})["scale_factor"] == record["scale_factor"]
    # the scaled latents' range (what the sampler clips to) and per-channel moments, from the same encodings
    assert record["latent_min"] == pytest.approx(float(z.min()), abs=1e-5)
    assert record["latent_max"] == pytest.approx(float(z.max()), abs=1e-5)
    torch.testing.assert_close(torch.tensor(record["latent_channel_mean"]), z.mean(dim=(0, 2, 3)), atol=1e-5, rtol=0)
    torch.testing.assert_close(torch.tensor(record["latent_channel_std"]), z.std(dim=(0, 2, 3)), atol=1e-5, rtol=1e-4)
    with pytest.raises(ValueError, match=r"other settings \{'latent_channels': \(2, 4\)\}"):
        read_latent_record(tmp_path, {"latent_channels": 4})
    with pytest.raises(ValueError, match="latent_statistics: the dataset is empty"):
        write_latent_record(ae, [], tmp_path)
    with pytest.raises(ValueError, match="one C x H x W image"):
        enc({"image": torch.rand(1, 1, 16, 16)})
    torch.save(_tiny_ae().state_dict() | {"decoder.conv_in.conv.bias": torch.ones(8)}, tmp_path / "autoencoder.pt")
    with pytest.raises(ValueError, match="replaced"):
        read_latent_record(tmp_path)
    with pytest.raises(FileNotFoundError, match="train_autoencoder.json"):
        read_latent_record(tmp_path / "elsewhere")


def test_ddim_clipped_to_the_latent_range_reaches_a_latent_above_one():
    """Why the latent sampler clips to the record's range and not to MONAI's default [-1, 1]. With an oracle denoiser
    (it returns the exact noise for a known target ``x0``), DDIM lands on ``x0`` when the clip range holds it; with
    [-1, 1] a channel lying wholly above 1 (as the third channel of the first 64 px run: mean 1.79, std 0.41) is
    pinned at 1, and the sample is not the target. ``sampler_clip`` reads what a scheduler clips to."""
    from monai.networks.schedulers import DDIMScheduler

    from monai_synpriv.vlp.generation import sampler_clip

    torch.manual_seed(0)
    x0 = torch.cat([torch.randn(1, 2, 4, 4) * 0.9, 1.8 + 0.4 * torch.randn(1, 1, 4, 4)], dim=1)

    def sample(**clip) -> torch.Tensor:
        sched = DDIMScheduler(1000, schedule="scaled_linear_beta", beta_start=0.0015, beta_end=0.0195, **clip)
        sched.set_timesteps(20)
        x = torch.randn(x0.shape, generator=torch.Generator().manual_seed(1))
        for t in sched.timesteps:
            a = sched.alphas_cumprod[t]
            x, _ = sched.step((x - a.sqrt() * x0) / (1 - a).sqrt(), int(t), x)
        return x

    lo, hi = float(x0.min()), float(x0.max())
    torch.testing.assert_close(sample(clip_sample=True, clip_sample_min=lo, clip_sample_max=hi), x0, atol=1e-3, rtol=0)
    torch.testing.assert_close(sample(clip_sample=False), x0, atol=1e-3, rtol=0)
    pinned = sample(clip_sample=True)
    assert float(pinned[:, 2].max()) <= 1.0 + 1e-4 and float((pinned - x0).abs().max()) > 0.5
    assert sampler_clip(DDIMScheduler(10)) == [-1.0, 1.0] and sampler_clip(DDIMScheduler(10, clip_sample=False)) is None
    assert sampler_clip(DDIMScheduler(10, clip_sample_min=lo, clip_sample_max=hi)) == [lo, hi]


def test_bundle_latent_diffusion_three_steps_on_real_images(tmp_path):
    """train_autoencoder.json -> train_latent.json -> generate.json on 6 real MedPix pairs at 32 px: the record sits
    beside the autoencoder's weights, the UNet works on latent channels, generation writes decoded 32 px images with
    the autoencoder's hash in its settings; a latent training with another autoencoder setting stops before work."""
    minilm_package()
    require(DATA / "medpix2_subset")
    models = tmp_path / "models"
    common = ["--bundle_root", ".", "--data_root", str(DATA), "--cache_dir", str(tmp_path / "cache")]
    common += ["--ckpt_dir", str(models), "--output_dir", str(tmp_path / "eval"), "--max_items", "6"]
    common += ["--batch_size", "3", "--image_size", "32", "--ae_channels", "[32,32]", "--lr", "0.001"]
    unet = ["--channels", "[16,32]", "--attention_levels", "[False,True]", "--num_res_blocks", "1"]
    unet += ["--norm_num_groups", "8", "--num_head_channels", "16"]
    # ema_decay as a shared command line gives it (the experiment passes the UNet's settings to both stages): the
    # autoencoder has no EMA, and its saved weights are the trained network's
    bundle("run", "--config_file", "['configs/train.json','configs/train_autoencoder.json']", *common,
           "--max_epochs", "2", "--ema_decay", "0.9", "--save_interval", "1", cwd=T2I)  # fmt: skip
    ae_dir = models / "autoencoder"
    last = torch.load(ae_dir / "checkpoint_epoch=2.pt", weights_only=True)
    saved = torch.load(ae_dir / "autoencoder.pt", weights_only=True)
    assert "ema" not in last and all(torch.equal(saved[k], last["network"][k]) for k in last["network"])
    record = json.loads((ae_dir / "autoencoder.json").read_text())
    assert (ae_dir / "autoencoder.pt").is_file() and record["latent_shape"] == [3, 16, 16] and record["n_images"] == 6
    settings = {"image_size": 32, "ae_channels": [32, 32], "latent_channels": 3, "ae_num_res_blocks": 1}
    assert record["settings"] == settings
    assert not (models / "model.pt").exists()  # the diffusion model's file is left alone
    # the latent training's dataset caches the encoded latents: every transform of its chain is deterministic (a
    # nested Compose counts as random for MONAI's CacheDataset and would leave the encoder running at every step)
    from monai.bundle import ConfigParser
    from monai.transforms import RandomizableTrait, Transform

    parser = ConfigParser()
    parser.read_config([str(T2I / "configs" / c) for c in ("train.json", "train_latent.json")])
    parser.update({"bundle_root": str(T2I), "data_root": str(DATA), "cache_dir": str(tmp_path / "cache")})
    parser.update({"ckpt_dir": str(models), "max_items": 6, "image_size": 32, "ae_channels": [32, 32]})
    dataset = parser.get_parsed_content("train#dataset")
    chain = dataset.transform
    assert chain.get_index_of_first(lambda t: isinstance(t, RandomizableTrait) or not isinstance(t, Transform)) is None
    assert type(chain.transforms[-1]).__name__ == "EncodeLatentd"
    cached = dataset._cache[0]["image"]
    assert type(cached) is torch.Tensor and tuple(cached.shape) == (3, 16, 16)  # the latent, not a MetaTensor
    latent = ["run", "--config_file", "['configs/train.json','configs/train_latent.json']", *common, *unet]
    bundle(*latent, "--max_epochs", "2", cwd=T2I)
    unet_weights = torch.load(models / "model.pt", weights_only=True)
    assert unet_weights["conv_in.conv.weight"].shape[1] == 3 and unet_weights["out.2.conv.weight"].shape[0] == 3
    generate = ["run", "--config_file", "['configs/train.json','configs/train_latent.json','configs/generate.json']"]
    bundle(*generate, *common, *unet, "--num_inference_steps", "2", "--generate_batch_size", "6", cwd=T2I)
    syn = tmp_path / "eval" / "synthetic"
    gen = json.loads((syn / "synthetic_datalist.json").read_text())["generation"]
    assert gen["image_size"] == [32, 32] and gen["latent_shape"] == [3, 16, 16]
    assert gen["sample_clip"] == [record["latent_min"], record["latent_max"]]  # the record's range, not [-1, 1]
    assert gen["autoencoder_sha256"] == record["autoencoder_sha256"]
    from PIL import Image

    pngs = sorted((syn / "images").glob("*.png"))
    images = np.stack([np.asarray(Image.open(p).convert("L"), dtype=np.float64) / 255.0 for p in pngs])
    assert images.shape == (6, 32, 32) and images.std(axis=(1, 2)).min() > 0.0
    # MONAI's inference workflow with the latent overlay writes the very same images and settings
    infer = ["run", "--config_file", "['configs/inference.json','configs/inference_latent.json']", "--bundle_root", "."]
    infer += ["--dataset_dir", str(DATA), "--cache_dir", str(tmp_path / "cache"), "--ckpt_dir", str(models)]
    infer += ["--output_dir", str(tmp_path / "infer"), "--max_items", "6", "--image_size", "32", "--ae_channels", "[32,32]"]
    bundle(*infer, *unet, "--num_inference_steps", "2", "--generate_batch_size", "6", cwd=T2I)
    inferred = tmp_path / "infer" / "synthetic"
    assert json.loads((inferred / "synthetic_datalist.json").read_text())["generation"] == gen
    assert [p.read_bytes() for p in sorted((inferred / "images").glob("*.png"))] == [p.read_bytes() for p in pngs]
    # a record written before the range existed: the sampler does not clip (as LDM samples latents) and says so
    old_record = {k: v for k, v in record.items() if k not in ("latent_min", "latent_max")}
    (ae_dir / "autoencoder.json").write_text(json.dumps(old_record))
    parser = ConfigParser()
    parser.read_config([str(T2I / "configs" / c) for c in ("train.json", "train_latent.json", "generate.json")])
    parser.update({"bundle_root": str(T2I), "data_root": str(DATA), "cache_dir": str(tmp_path / "cache")})
    parser.update({"ckpt_dir": str(models), "max_items": 6, "image_size": 32, "ae_channels": [32, 32]})
    assert parser.get_parsed_content("sampling_scheduler").clip_sample is False
    (ae_dir / "autoencoder.json").write_text(json.dumps(record))
    refused = bundle(*latent, "--latent_channels", "4", "--max_epochs", "3", cwd=T2I, check=False)
    assert refused.returncode != 0 and "other settings" in refused.stderr + refused.stdout
    assert not (models / "checkpoint_epoch=3.pt").exists()
