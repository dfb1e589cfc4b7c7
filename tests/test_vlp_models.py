"""Vision-language pre-training models, in-process: the MiniLM text encoder against sentence-transformers, length
limits, ConVIRTLoss against an explicit loop formula, DualEncoder freezing, a few ImageTextTrainer steps, a tiny
text-conditioned diffusion model trained on real MedPix images, condition dropout, deterministic sampling and the
resumable synthetic-pair generation."""

from __future__ import annotations

import json
import math
import zlib
from pathlib import Path

import pytest
import torch
from conftest import DATA, minilm_package, require, tiny_diffusion_unet
from torch import nn

from monai_synpriv.data.text import TextTokenizer
from monai_synpriv.engines import ConditionDropoutPrepareBatch, ImageTextTrainer
from monai_synpriv.losses import ConVIRTLoss
from monai_synpriv.networks import BertTextEncoder, DualEncoder, default_pretrained_text_dir, make_resnet_encoder
from monai_synpriv.vlp import generate_synthetic_pairs, load_pairs, sample_images

MEDPIX = DATA / "medpix2_subset"
REFERENCE = Path(__file__).resolve().parent / "data" / "minilm_reference.json"
CAPTIONS = [
    "CT axial chest shows a right pleural effusion.",
    "MR sagittal brain: enhancing glioma in the frontal lobe.",
    "CT coronal abdomen with a hypodense liver mass.",
    "MR axial knee: tear of the medial meniscus.",
    "CT axial head: acute subdural hemorrhage.",
    "MR coronal pelvis with a large uterine fibroid.",
    "CT sagittal spine: burst fracture of L1.",
    "MR axial brain: acute infarct on diffusion.",
]


def _tiny_text_encoder(vocab_size: int = 40, layers: int = 2, max_position: int = 16, **kw) -> BertTextEncoder:
    return BertTextEncoder(vocab_size, hidden_size=16, num_layers=layers, num_heads=2, max_position=max_position, **kw)


@pytest.fixture
def one_thread():
    """Tiny networks gain nothing from a second intra-op thread, and on a busy 2-core machine OpenMP's waiting makes
    them many times slower: run the training tests on one thread (restored afterwards)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ---------------------------------------------------------------------------------------------------------------------
# text encoder


@pytest.fixture(scope="module")
def minilm() -> tuple[BertTextEncoder, TextTokenizer]:
    minilm_package()
    return BertTextEncoder.from_pretrained().eval(), TextTokenizer.from_file(default_pretrained_text_dir())


def test_minilm_matches_sentence_transformers(minilm):
    """Mean pooling + L2 normalisation of the offline-loaded all-MiniLM-L6-v2 equals sentence-transformers' output."""
    encoder, tokenizer = minilm
    ref = json.loads(REFERENCE.read_text())
    assert encoder.pooling == "mean" and encoder.out_features == 384 and encoder.max_position == 512
    tokens = tokenizer(ref["texts"], max_length=256)
    with torch.no_grad():
        emb = nn.functional.normalize(encoder(tokens["input_ids"], tokens["attention_mask"]), dim=-1)
    expected = torch.tensor(ref["embeddings"], dtype=torch.float32)
    assert emb.shape == expected.shape == (len(ref["texts"]), 384)
    torch.testing.assert_close(emb, expected, atol=1e-4, rtol=0)
    # padding does not change an embedding: each text alone gives the same vector as inside the padded batch
    alone = tokenizer(ref["texts"][:1], max_length=256)
    with torch.no_grad():
        one = nn.functional.normalize(encoder(alone["input_ids"], alone["attention_mask"]), dim=-1)
    torch.testing.assert_close(one[0], emb[0], atol=1e-5, rtol=0)


def test_minilm_length_limit_and_truncation(minilm):
    encoder, tokenizer = minilm
    long_text = " ".join(["effusion"] * 700)
    too_long = tokenizer([long_text], max_length=1000)
    assert too_long["input_ids"].shape[1] > encoder.max_position
    with pytest.raises(ValueError, match=r"longer than this text encoder accepts \(512\)"):
        encoder(too_long["input_ids"], too_long["attention_mask"])
    # the documented path: truncate at the tokenizer, keeping [CLS] ... [SEP]
    cut = tokenizer([long_text, "short caption"], max_length=encoder.max_position, truncation="truncate")
    assert cut["input_ids"].shape == (2, 512) and int(cut["attention_mask"][0].sum()) == 512
    assert int(cut["input_ids"][0, 0]) == tokenizer.token_to_id("[CLS]")
    assert int(cut["input_ids"][0, -1]) == tokenizer.token_to_id("[SEP]")
    with torch.no_grad():
        assert encoder(cut["input_ids"], cut["attention_mask"]).shape == (2, 384)
    assert tokenizer([long_text], max_length=32)["input_ids"].shape == (1, 32)
    with pytest.raises(ValueError, match=r"caption of /data/case7\.png has \d+ tokens, more than max_length=32"):
        tokenizer(["fine", long_text], max_length=32, truncation="error", names=["a.png", "caption of /data/case7.png"])
    with pytest.raises(ValueError, match="text at index 1"):
        tokenizer(["fine", long_text], max_length=32, truncation="error")


def test_scratch_text_encoder_length_limit_and_pooling():
    enc = _tiny_text_encoder(max_position=16, dropout=0.0).eval()
    with pytest.raises(ValueError, match=r"17 tokens .* accepts \(16\)"):
        enc(torch.ones(2, 17, dtype=torch.long))
    ids = torch.tensor([[2, 5, 6, 3, 0, 0], [2, 7, 3, 0, 0, 0]])
    with torch.no_grad():
        pooled = enc(ids)  # mask derived from pad_id 0
        states = enc.token_states(ids)
        # trailing padding is ignored: the same text without padding gives the same embedding
        torch.testing.assert_close(enc(ids[:1, :4])[0], pooled[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(pooled[1], states[1, :3].mean(0), atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="divisible"):
        BertTextEncoder(40, hidden_size=10, num_heads=3)
    with pytest.raises(ValueError, match="pooling"):
        BertTextEncoder(40, hidden_size=16, num_heads=2, pooling="max")


# ---------------------------------------------------------------------------------------------------------------------
# ConVIRT loss


def _convirt_by_loops(u: torch.Tensor, v: torch.Tensor, tau: float, w: float) -> tuple[float, float, float]:
    """The ConVIRT loss written out: cosine similarities, then a log-sum-exp per row (i2t) and per column (t2i)."""
    u_rows = [[float(x) for x in row] for row in u.double()]
    v_rows = [[float(x) for x in row] for row in v.double()]

    def unit(row):
        n = math.sqrt(sum(x * x for x in row))
        return [x / n for x in row]

    u_rows, v_rows = [unit(r) for r in u_rows], [unit(r) for r in v_rows]
    b = len(u_rows)
    s = [[sum(a * c for a, c in zip(u_rows[i], v_rows[j])) / tau for j in range(b)] for i in range(b)]
    i2t = sum(-s[i][i] + math.log(sum(math.exp(s[i][k]) for k in range(b))) for i in range(b)) / b
    t2i = sum(-s[j][j] + math.log(sum(math.exp(s[k][j]) for k in range(b))) for j in range(b)) / b
    return w * i2t + (1 - w) * t2i, i2t, t2i


def test_convirt_loss_matches_loop_formula():
    g = torch.Generator().manual_seed(0)
    u, v = torch.randn(6, 5, generator=g) * 3, torch.randn(6, 5, generator=g)  # not normalised: the loss does it
    v[2] = u[2] + 0.1 * v[2]  # one well-aligned pair so the two directions differ clearly
    loss = ConVIRTLoss()
    assert loss.temperature == 0.1 and loss.image_to_text_weight == 0.75
    terms = loss.terms(u, v)
    total, i2t, t2i = _convirt_by_loops(u, v, 0.1, 0.75)
    assert terms["total"].item() == pytest.approx(total, rel=1e-5)
    assert terms["image_to_text"].item() == pytest.approx(i2t, rel=1e-5)
    assert terms["text_to_image"].item() == pytest.approx(t2i, rel=1e-5)
    assert abs(i2t - t2i) > 1e-3  # i2t and t2i are not swapped by accident
    assert loss(u, v).item() == pytest.approx(total, rel=1e-5)
    # other weight, and the temperature given as a tensor (a learnable one): same formula, gradient reaches it
    tau = torch.tensor(0.05, requires_grad=True)
    out = ConVIRTLoss(temperature=0.3, image_to_text_weight=0.4)(u, v, tau)
    assert out.item() == pytest.approx(_convirt_by_loops(u, v, 0.05, 0.4)[0], rel=1e-5)
    out.backward()
    assert tau.grad is not None and torch.isfinite(tau.grad)
    # a float temperature at call time overrides the constructor's
    assert loss(u, v, 0.2).item() == pytest.approx(_convirt_by_loops(u, v, 0.2, 0.75)[0], rel=1e-5)


def test_convirt_loss_rejects_bad_input():
    loss = ConVIRTLoss()
    with pytest.raises(ValueError, match="at least 2 pairs"):
        loss(torch.randn(1, 4), torch.randn(1, 4))
    with pytest.raises(ValueError, match=r"\(3, 4\) and \(3, 5\)"):
        loss(torch.randn(3, 4), torch.randn(3, 5))
    with pytest.raises(ValueError, match=r"\(3, 4\) and \(2, 4\)"):
        loss(torch.randn(3, 4), torch.randn(2, 4))
    with pytest.raises(ValueError, match="B x D"):
        loss(torch.randn(3, 4, 1), torch.randn(3, 4, 1))
    with pytest.raises(ValueError, match="temperature"):
        ConVIRTLoss(temperature=0.0)
    with pytest.raises(ValueError, match="image_to_text_weight"):
        ConVIRTLoss(image_to_text_weight=1.5)


# ---------------------------------------------------------------------------------------------------------------------
# dual encoder


def _dual(**kw) -> DualEncoder:
    image_encoder = nn.Sequential(nn.Flatten(), nn.Linear(64, 12), nn.Dropout(0.5))
    return DualEncoder(image_encoder, _tiny_text_encoder(layers=2), image_features=12, embed_dim=6, **kw)


def test_dual_encoder_unit_norm_outputs():
    torch.manual_seed(0)
    net = _dual().eval()
    images, ids = torch.randn(4, 1, 8, 8), torch.randint(5, 40, (4, 7))
    img, txt = net(images, ids, torch.ones_like(ids))
    assert img.shape == txt.shape == (4, 6)
    torch.testing.assert_close(img.norm(dim=1), torch.ones(4))
    torch.testing.assert_close(txt.norm(dim=1), torch.ones(4))
    assert net.encode_image(images).shape == (4, 12)
    assert isinstance(net.log_logit_scale, torch.Tensor) and not isinstance(net.log_logit_scale, nn.Parameter)
    assert "log_logit_scale" in net.state_dict() and "log_logit_scale" not in dict(net.named_parameters())
    assert net.temperature.item() == pytest.approx(0.1, rel=1e-6)


def test_dual_encoder_frozen_text_encoder():
    net = _dual(trainable_text_layers=0)
    assert all(not p.requires_grad for p in net.text_encoder.parameters())
    assert all(p.requires_grad for p in net.image_encoder.parameters())
    assert all(p.requires_grad for p in net.text_projection.parameters())
    net.train()
    assert net.training and net.image_encoder.training and net.text_projection.training
    assert not net.text_encoder.training and not any(m.training for m in net.text_encoder.modules())
    ids = torch.randint(5, 40, (3, 7))
    img, txt = net(torch.randn(3, 1, 8, 8), ids)
    (img.sum() + txt.sum()).backward()
    assert all(p.grad is None for p in net.text_encoder.parameters())
    assert net.text_projection.net[0].weight.grad is not None
    net.eval()
    assert not net.text_encoder.training


def test_dual_encoder_last_layer_trainable():
    net = _dual(trainable_text_layers=1)
    trainable = {n for n, p in net.text_encoder.named_parameters() if p.requires_grad}
    last = {n for n, _ in net.text_encoder.named_parameters() if n.startswith("layers.layers.1.")}
    assert trainable == last and trainable
    net.train()
    # only the fine-tuned layer trains (dropout on); the frozen embeddings and lower layer stay in eval mode
    assert net.text_encoder.layers.layers[1].training
    assert not net.text_encoder.layers.layers[0].training and not net.text_encoder.embedding_dropout.training
    everything = _dual()
    assert all(p.requires_grad for p in everything.text_encoder.parameters())
    with pytest.raises(ValueError, match=r"\[0, 2\]"):
        _dual(trainable_text_layers=3)


def test_dual_encoder_learned_temperature():
    net = _dual(learn_temperature=True, temperature=0.07)
    assert isinstance(net.log_logit_scale, nn.Parameter) and net.log_logit_scale.requires_grad
    assert "log_logit_scale" in dict(net.named_parameters())
    assert net.temperature.item() == pytest.approx(0.07, rel=1e-5)
    with torch.no_grad():
        net.log_logit_scale.fill_(10.0)  # clamped at 1/100 as CLIP does
    assert net.temperature.item() == pytest.approx(0.01, rel=1e-5)
    with pytest.raises(ValueError, match="temperature"):
        _dual(temperature=0.0)


# ---------------------------------------------------------------------------------------------------------------------
# image-text trainer


def test_image_text_trainer_lowers_loss_on_fixed_batch(one_thread):
    from ignite.engine import Events
    from monai.utils import set_determinism

    set_determinism(seed=0)
    try:
        tokenizer = TextTokenizer.fit(CAPTIONS, vocab_size=200, min_frequency=1)
        tokens = tokenizer(CAPTIONS, max_length=32)
        batch = {
            "image": torch.rand(8, 1, 32, 32),
            "text_ids": tokens["input_ids"],
            "text_mask": tokens["attention_mask"],
        }
        text = BertTextEncoder(
            tokenizer.vocab_size, hidden_size=32, num_layers=1, num_heads=2, max_position=32, dropout=0.0
        )
        net = DualEncoder(make_resnet_encoder(2, 1, 10), text, image_features=512, embed_dim=32)
        loss = ConVIRTLoss()
        trainer = ImageTextTrainer(
            "cpu", 3, [batch], net, torch.optim.Adam(net.parameters(), 1e-3), loss, grad_clip_norm=1.0
        )
        seen: list[float] = []
        trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda e: seen.append(float(e.state.output[0]["loss"])))
        trainer.run()
    finally:
        set_determinism(seed=None)
    assert len(seen) == 3 and trainer.state.iteration == 3
    # the first iteration's loss is the loss before any step; the same batch afterwards scores lower
    with torch.no_grad():
        net.train()  # batch statistics, as in training (dropout is 0)
        after = loss(*net(batch["image"], batch["text_ids"], batch["text_mask"])).item()
    assert seen[0] == pytest.approx(math.log(8), rel=0.3)  # near chance at the start
    assert after < 0.8 * seen[0] and seen[-1] < seen[0]
    # the documented output: decollated per sample, with the losses, temperature and the image embedding
    out = trainer.state.output
    assert isinstance(out, list) and len(out) == 8
    assert set(out[0]) == {"embedding", "loss", "loss_image_to_text", "loss_text_to_image", "temperature"}
    assert out[0]["embedding"].shape == (32,) and float(out[0]["temperature"]) == pytest.approx(0.1, rel=1e-5)
    total = 0.75 * float(out[0]["loss_image_to_text"]) + 0.25 * float(out[0]["loss_text_to_image"])
    assert float(out[0]["loss"]) == pytest.approx(total, rel=1e-5)
    assert {"epoch_loss", "epoch_loss_image_to_text", "epoch_loss_text_to_image"} <= set(trainer.state.metrics)
    with pytest.raises(KeyError, match="text_mask"):
        bad = {k: v for k, v in batch.items() if k != "text_mask"}
        ImageTextTrainer("cpu", 1, [bad], net, torch.optim.SGD(net.parameters(), 0.0), loss).run()


# ---------------------------------------------------------------------------------------------------------------------
# text-conditioned diffusion


def _medpix_images(n: int, size: int = 32) -> torch.Tensor:
    """``n`` real MedPix training images loaded as the diffusion bundle's ``train#load`` does, scaled to [-1, 1]."""
    from monai import transforms as mt

    from monai_synpriv.data import prepare_medpix_datalist
    from monai_synpriv.transforms import AsGrayscaled

    items = prepare_medpix_datalist(require(MEDPIX))["training"]
    load = mt.Compose(
        [
            mt.LoadImaged("image", reader="PILReader", image_only=True, ensure_channel_first=True),
            AsGrayscaled("image"),
            mt.EnsureTyped("image", dtype=torch.float32, track_meta=False),
            mt.Resized("image", size, size_mode="longest", mode="area"),
            mt.ResizeWithPadOrCropd("image", [size, size]),
            mt.ScaleIntensityd("image", minv=-1.0, maxv=1.0),
        ]
    )
    step = len(items) // n
    images = [torch.as_tensor(load(dict(items[i * step]))["image"]) for i in range(n)]
    return torch.stack([x.as_tensor() if hasattr(x, "as_tensor") else x for x in images])


def test_diffusion_unet_learns_on_medpix(one_thread):
    """20 steps of MONAI's SupervisedTrainer + DiffusionInferer + ConditionDropoutPrepareBatch on 8 real images lower
    the noise-prediction error measured on a fixed set of (noise, timestep) draws, and its samples then differ by
    caption (from the same noise), where the untrained UNet's do not."""
    from monai.engines import SupervisedTrainer
    from monai.inferers import DiffusionInferer
    from monai.networks.schedulers import DDIMScheduler, DDPMScheduler
    from monai.utils import set_determinism

    images = _medpix_images(8)
    assert images.shape == (8, 1, 32, 32) and images.min() == -1.0 and images.max() == 1.0
    set_determinism(seed=0)
    try:
        dim = 16
        g = torch.Generator().manual_seed(1)
        contexts = torch.randn(8, 1, dim, generator=g)
        reps = 4  # evaluation set: every image with 4 fixed (noise, timestep) draws
        eval_noise = torch.randn(8 * reps, 1, 32, 32, generator=g)
        eval_t = torch.randint(0, 1000, (8 * reps,), generator=g)
        unet, scheduler = tiny_diffusion_unet(dim), DDPMScheduler(num_train_timesteps=1000)

        def eval_mse() -> float:
            unet.eval()
            with torch.no_grad():
                noisy = scheduler.add_noise(images.repeat(reps, 1, 1, 1), eval_noise, eval_t)
                return nn.functional.mse_loss(unet(noisy, eval_t, contexts.repeat(reps, 1, 1)), eval_noise).item()

        before = eval_mse()
        ctx = torch.cat([contexts[:2], contexts[:1]])  # two captions' conditions, then the first again

        def draw() -> torch.Tensor:  # the same starting noise (index 0) for all three
            unet.eval()
            return sample_images(unet, DDIMScheduler(1000), ctx, [0, 0, 0], (1, 32, 32), seed=0, num_inference_steps=5)

        untrained = draw()
        trainer = SupervisedTrainer(
            device="cpu",
            max_epochs=20,
            train_data_loader=[{"image": images, "context": contexts}],
            network=unet,
            optimizer=torch.optim.Adam(unet.parameters(), 1e-3),
            loss_function=nn.MSELoss(),
            inferer=DiffusionInferer(scheduler),
            prepare_batch=ConditionDropoutPrepareBatch(1000, drop_prob=0.1, generator=torch.Generator().manual_seed(2)),
        )
        trainer.run()
        after = eval_mse()
        drawn = draw()
    finally:
        set_determinism(seed=None)
    assert before == pytest.approx(1.0, abs=0.1)  # zero-initialised output layer: predicts 0 for unit noise
    assert after < 0.9 * before, (before, after)
    # the untrained UNet (zero output layer) ignores the caption: one image for all; the trained one's samples
    # differ by caption (measured 6e-3 mean absolute difference after these 20 steps), and the same caption with the
    # same noise still gives the same image
    assert (untrained[0] - untrained[1]).abs().max().item() < 1e-5
    by_caption = (drawn[0] - drawn[1]).abs().mean().item()
    assert by_caption > 1e-3, by_caption
    torch.testing.assert_close(drawn[0], drawn[2], atol=1e-4, rtol=0)


def test_condition_dropout_prepare_batch():
    batch = {"image": torch.randn(4, 1, 8, 8), "context": torch.randn(4, 1, 5)}
    images, target, args, kwargs = ConditionDropoutPrepareBatch(1000, drop_prob=1.0)(batch)
    assert torch.equal(images, batch["image"]) and args == ()
    assert torch.equal(target, kwargs["noise"]) and target.shape == images.shape  # the target is the noise
    t = kwargs["timesteps"]
    assert t.shape == (4,) and t.dtype == torch.long and 0 <= t.min() and t.max() < 1000
    assert torch.equal(kwargs["condition"], torch.full((4, 1, 5), -1.0))
    filled = ConditionDropoutPrepareBatch(1000, drop_prob=1.0, fill_value=0.5)(batch)[3]["condition"]
    assert torch.equal(filled, torch.full((4, 1, 5), 0.5))
    kept = ConditionDropoutPrepareBatch(1000, drop_prob=0.0)(batch)[3]["condition"]
    assert torch.equal(kept, batch["context"])
    # in between: whole samples are dropped or kept, reproducibly with a generator
    big = {"image": torch.randn(64, 1, 4, 4), "context": torch.randn(64, 1, 5)}
    half = [
        ConditionDropoutPrepareBatch(10, drop_prob=0.5, generator=torch.Generator().manual_seed(3))(big)[3]["condition"]
        for _ in range(2)
    ]
    assert torch.equal(half[0], half[1])
    dropped = (half[0] == -1.0).all(dim=(1, 2))
    kept_rows = (half[0] == big["context"]).all(dim=(1, 2))
    assert bool((dropped | kept_rows).all()) and 10 < int(dropped.sum()) < 54
    with pytest.raises(KeyError, match="'context'"):
        ConditionDropoutPrepareBatch(1000)({"image": batch["image"]})
    with pytest.raises(KeyError, match="'caption_emb'"):
        ConditionDropoutPrepareBatch(1000, condition_name="caption_emb")(batch)
    with pytest.raises(ValueError, match="drop_prob"):
        ConditionDropoutPrepareBatch(1000, drop_prob=1.5)


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction", "sample"])
def test_prepare_batch_target_follows_the_schedulers_prediction_type(prediction_type):
    """The target against the direct formulas: noise, v = sqrt(abar_t) eps - sqrt(1 - abar_t) x0, or x0, with abar_t
    the scheduler's cumulative alpha at each sample's own timestep."""
    from monai.networks.schedulers import DDPMScheduler

    sched = DDPMScheduler(100, schedule="scaled_linear_beta", beta_start=0.0015, beta_end=0.0195,
                          prediction_type=prediction_type)  # fmt: skip
    batch = {"image": torch.randn(6, 1, 4, 4), "context": torch.randn(6, 1, 3)}
    images, target, _, kw = ConditionDropoutPrepareBatch(100, drop_prob=0.0, scheduler=sched)(batch)
    abar = torch.cumprod(1.0 - sched.betas, 0)[kw["timesteps"]].view(-1, 1, 1, 1)
    expected = {
        "epsilon": kw["noise"],
        "v_prediction": abar.sqrt() * kw["noise"] - (1.0 - abar).sqrt() * images,
        "sample": images,
    }[prediction_type]
    torch.testing.assert_close(target, expected, rtol=1e-5, atol=1e-6)
    if prediction_type != "epsilon":
        assert not torch.allclose(target, kw["noise"])
    with pytest.raises(ValueError, match="differs from the scheduler's 100"):
        ConditionDropoutPrepareBatch(1000, scheduler=sched)


# ---------------------------------------------------------------------------------------------------------------------
# sampling and synthetic pairs


def test_sampling_is_deterministic_and_batch_independent(one_thread):
    from monai.networks.schedulers import DDIMScheduler

    torch.manual_seed(0)
    dim = 8
    unet = tiny_diffusion_unet(dim, perturb=True)
    context = torch.randn(3, 1, dim)

    def draw(ctx, indices, seed):
        return sample_images(
            unet, DDIMScheduler(1000), ctx, indices, (1, 16, 16), seed=seed, guidance_scale=3.0, num_inference_steps=3
        )

    a = draw(context, [0, 1, 2], 5)
    assert a.shape == (3, 1, 16, 16) and a.min() >= -1.0 and a.max() <= 1.0
    assert torch.equal(a, draw(context, [0, 1, 2], 5))
    other_seed = draw(context, [0, 1, 2], 6)
    assert all(not torch.allclose(a[i], other_seed[i]) for i in range(3))
    assert not torch.allclose(a[0], a[1])  # every item has its own noise
    alone = draw(context[2:], [2], 5)
    # the same noise and condition give the same image whatever the batch; float32 convolutions may take another
    # oneDNN algorithm for another batch size (seen: 1.7e-5 apart on one CPU), while other noise differs by O(1)
    torch.testing.assert_close(alone[0], a[2], atol=1e-4, rtol=0)
    assert not torch.allclose(draw(context[:1], [2], 5), alone)  # the condition matters
    with pytest.raises(ValueError, match="2 indices for 3 contexts"):
        draw(context, [0, 1], 5)


class FakeConditioner:
    """Captions -> fixed pseudo-random B x 1 x D contexts (one per caption string); records what it was asked."""

    def __init__(self, dim: int = 8) -> None:
        self.dim = dim
        self.calls: list[list[str]] = []

    def __call__(self, texts, names=None) -> torch.Tensor:
        assert names is not None and len(names) == len(texts)
        self.calls.append(list(texts))
        rows = [
            torch.randn(1, self.dim, generator=torch.Generator().manual_seed(zlib.crc32(t.encode()))) for t in texts
        ]
        return torch.stack(rows)


@pytest.fixture(scope="module")
def generator_net() -> nn.Module:
    torch.manual_seed(0)
    return tiny_diffusion_unet(8, perturb=True)


SECTIONS = ["training", "training", "training", "validation", "test"]


def _items() -> list[dict]:
    return [
        {
            "image": f"/data/medpix/MPX{i}_case.png",
            "text": CAPTIONS[i],
            "case": f"c{i // 2}",
            "modality": i % 2,
            "section": SECTIONS[i],
        }
        for i in range(5)
    ]


def _synthetic_items(datalist: dict) -> list[dict]:
    return sorted((it for k, v in datalist.items() if k != "generation" for it in v), key=lambda it: it["index"])


def _generate(net, out, **kw):
    from monai.networks.schedulers import DDIMScheduler

    args = dict(image_shape=(1, 16, 16), seed=3, num_inference_steps=3, batch_size=3, progress=False)
    return generate_synthetic_pairs(
        net, DDIMScheduler(1000), kw.pop("items", _items()), kw.pop("cond"), out, **args | kw
    )


def _pngs(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((folder / "images").glob("*.png"))}


def test_generation_resumes_to_identical_files(generator_net, tmp_path, one_thread):
    full_cond = FakeConditioner()
    full = _generate(generator_net, tmp_path / "full", cond=full_cond)
    reference = _pngs(tmp_path / "full")
    assert list(reference) == [f"{i:05d}_MPX{i}_case.png" for i in range(5)]
    assert full_cond.calls == [CAPTIONS[:3], CAPTIONS[3:5]]
    assert full["generation"]["seed"] == 3 and full["generation"]["num_inference_steps"] == 3
    saved = json.loads((tmp_path / "full" / "synthetic_datalist.json").read_text())
    assert saved == full
    # each synthetic pair is filed under the section of its caption, so the case-level split carries over
    assert {k: [it["index"] for it in v] for k, v in saved.items() if k != "generation"} == {
        "training": [0, 1, 2],
        "validation": [3],
        "test": [4],
    }
    for i, item in enumerate(_synthetic_items(saved)):
        src = _items()[i]
        assert item["index"] == i and item["synthetic"] is True and item["source_image"] == src["image"]
        assert (item["text"], item["case"], item["modality"]) == (src["text"], src["case"], src["modality"])
        assert Path(item["image"]).is_file() and Path(item["image"]).parent == tmp_path / "full" / "images"

    # interrupted after the first batch (2 items), then resumed with batches of 3: same bytes
    cond = FakeConditioner()
    _generate(generator_net, tmp_path / "resumed", cond=cond, max_items=2)
    assert len(_pngs(tmp_path / "resumed")) == 2
    resumed = _generate(generator_net, tmp_path / "resumed", cond=cond)
    assert cond.calls == [CAPTIONS[:2], CAPTIONS[2:5]]  # nothing generated twice
    assert _pngs(tmp_path / "resumed") == reference
    assert [it["index"] for it in _synthetic_items(resumed)] == list(range(5))

    # a lost last file (killed while writing it) is regenerated alone, identically
    last = tmp_path / "resumed" / "images" / "00004_MPX4_case.png"
    last.unlink()
    cond.calls.clear()
    _generate(generator_net, tmp_path / "resumed", cond=cond)
    assert cond.calls == [CAPTIONS[4:5]] and _pngs(tmp_path / "resumed") == reference

    # a complete output: a rerun generates nothing and changes nothing
    cond.calls.clear()
    again = _generate(generator_net, tmp_path / "resumed", cond=cond)
    assert cond.calls == [] and _pngs(tmp_path / "resumed") == reference and again == resumed


def test_generation_refuses_mixed_settings_and_empty_captions(generator_net, tmp_path, one_thread):
    _generate(generator_net, tmp_path / "out", cond=FakeConditioner(), max_items=1)
    with pytest.raises(ValueError, match=r"other settings \{'seed': \(3, 4\)\}"):
        _generate(generator_net, tmp_path / "out", cond=FakeConditioner(), seed=4)
    with pytest.raises(ValueError, match="guidance_scale"):
        _generate(generator_net, tmp_path / "out", cond=FakeConditioner(), guidance_scale=1.5)
    items = _items()
    items[2]["text"] = "   "
    cond = FakeConditioner()
    with pytest.raises(ValueError, match=r"item 2 \(/data/medpix/MPX2_case\.png\): empty"):
        _generate(generator_net, tmp_path / "empty", cond=cond, items=items)
    assert cond.calls == [] and not (tmp_path / "empty").exists()  # refused before any work


def test_generation_identifies_the_checkpoint_by_content_not_path(generator_net, tmp_path, one_thread):
    ckpt = tmp_path / "models" / "model.pt"
    ckpt.parent.mkdir()
    torch.save(generator_net.state_dict(), ckpt)
    (tmp_path / "elsewhere").symlink_to(tmp_path / "models")
    _generate(generator_net, tmp_path / "out", cond=FakeConditioner(), max_items=1, checkpoint=str(ckpt))
    # the same weights reached by another path (a symlink, a moved bundle): resumed, not refused
    cond = FakeConditioner()
    _generate(generator_net, tmp_path / "out", cond=cond, max_items=2, checkpoint=str(tmp_path / "elsewhere/model.pt"))
    assert cond.calls == [CAPTIONS[1:2]]
    # other weights under the same path: refused, named by their hashes
    torch.save({k: v + 1 for k, v in generator_net.state_dict().items()}, ckpt)
    with pytest.raises(ValueError, match=r"other settings \{'checkpoint_sha256': \('[0-9a-f]{64}', '[0-9a-f]{64}'\)\}"):
        _generate(generator_net, tmp_path / "out", cond=FakeConditioner(), checkpoint=str(ckpt))


# ---------------------------------------------------------------------------------------------------------------------
# pairs


def test_load_pairs_checks_items(tmp_path):
    items = []
    for i in range(4):
        (tmp_path / f"img{i}.png").write_bytes(b"")
        items.append({"image": str(tmp_path / f"img{i}.png"), "text": CAPTIONS[i], "modality": i % 2})
    assert load_pairs(items) == items
    picked = load_pairs({"training": items[:2], "test": items[2:]}, ["training", "test"], max_items=2)
    assert picked == [{**items[0], "section": "training"}, {**items[2], "section": "test"}]  # evenly spaced, tagged
    path = tmp_path / "datalist.json"
    path.write_text(json.dumps({"training": items}))
    assert [it["text"] for it in load_pairs(path)] == CAPTIONS[:4]

    missing = [*items[:2], {"image": str(tmp_path / "gone.png"), "text": "CT"}]
    with pytest.raises(FileNotFoundError, match=r"item 2: image .*gone\.png not found"):
        load_pairs(missing)
    empty = [*items[:3], {**items[3], "text": " "}]
    with pytest.raises(ValueError, match=r"item 3 \(.*img3\.png\): empty caption"):
        load_pairs(empty)
    with pytest.raises(ValueError, match=r"img1\.png.*empty caption"):
        load_pairs([items[0], {**items[1], "text": None}])
    with pytest.raises(KeyError, match="'text'"):
        load_pairs([{"image": items[0]["image"]}])
    with pytest.raises(KeyError, match="validation"):
        load_pairs({"training": items}, ["training", "validation"])
    with pytest.raises(FileNotFoundError, match="nowhere.json"):
        load_pairs(tmp_path / "nowhere.json")
