"""Masked-autoencoder pieces: patch layout, the masked-patch loss, the embedder, and a short real pre-training."""

from __future__ import annotations

import pytest
import torch
from monai.networks.nets import MaskedAutoEncoderViT

from monai_synpriv.losses import MaskedPatchLoss
from monai_synpriv.networks import MAEEmbedder, patchify, unpatchify

TINY = dict(
    in_channels=1,
    hidden_size=48,
    mlp_dim=96,
    num_layers=2,
    num_heads=6,
    decoder_hidden_size=24,
    decoder_mlp_dim=48,
    decoder_num_layers=1,
    decoder_num_heads=6,
)


@pytest.mark.parametrize("shape,patch", [((2, 3, 16, 24), (4, 8)), ((2, 1, 8, 12, 16), 4)])
def test_patchify_round_trip(shape, patch):
    x = torch.rand(shape)
    p = patchify(x, patch)
    assert torch.equal(unpatchify(p, patch, shape[2:]), x)


def test_patchify_follows_the_patch_embedding_token_order():
    """Token t of MONAI's conv patch embedding covers patch t of patchify: a conv whose kernel sums the patch gives
    the same number as summing patchify's vector."""
    x = torch.rand(1, 1, 16, 16)
    conv = torch.nn.Conv2d(1, 1, 4, stride=4, bias=False)
    torch.nn.init.ones_(conv.weight)
    tokens = conv(x).flatten(2).transpose(1, 2)[0, :, 0]  # as PatchEmbeddingBlock flattens
    assert torch.allclose(tokens, patchify(x, 4)[0].sum(-1), atol=1e-5)


def test_patchify_rejects_indivisible_sizes():
    with pytest.raises(ValueError, match="not divisible"):
        patchify(torch.rand(1, 1, 10, 16), 4)


def test_masked_patch_loss_counts_masked_patches_only():
    x = torch.rand(2, 1, 16, 16)
    target = patchify(x, 4)
    mask = torch.zeros(2, 16, dtype=torch.int)
    mask[:, :12] = 1
    pred = target.clone()
    pred[:, 12:] += 5.0  # visible patches wrong: not counted
    assert MaskedPatchLoss(4)((pred, mask), x).item() == pytest.approx(0.0, abs=1e-7)
    pred = target.clone()
    pred[:, :12] += 0.5  # masked patches off by 0.5 everywhere
    assert MaskedPatchLoss(4)((pred, mask), x).item() == pytest.approx(0.25, rel=1e-5)
    with pytest.raises(ValueError, match="do not match"):
        MaskedPatchLoss(8)((pred, mask), x)


def test_embedder_loads_a_pretraining_checkpoint_and_ignores_masking():
    mae = MaskedAutoEncoderViT(img_size=16, patch_size=4, spatial_dims=2, **TINY)
    emb = MAEEmbedder(img_size=16, patch_size=4, spatial_dims=2, **TINY)
    emb.load_state_dict(mae.state_dict())
    emb.eval()
    x = torch.rand(3, 1, 16, 16)
    a, b = emb(x), emb(x)
    assert a.shape == (3, 48) and torch.equal(a, b)  # no random masking at embedding time
    # the embedding is the trained encoder's: patch tokens of mae's own blocks, averaged
    with torch.no_grad():
        tokens = mae.patch_embedding(x)
        tokens = mae.blocks(torch.cat((mae.cls_token.expand(3, -1, -1), tokens), dim=1))
    torch.testing.assert_close(a, tokens[:, 1:].mean(1))
    cls = MAEEmbedder(pooling="cls", img_size=16, patch_size=4, spatial_dims=2, **TINY)
    both = MAEEmbedder(pooling="mean_cls", img_size=16, patch_size=4, spatial_dims=2, **TINY)
    assert cls(x).shape == (3, 48) and both(x).shape == (3, 96) and both.out_features == 96
    with pytest.raises(ValueError, match="pooling"):
        MAEEmbedder(pooling="max", img_size=16, patch_size=4, spatial_dims=2, **TINY)


def test_embedder_3d():
    emb = MAEEmbedder(img_size=16, patch_size=8, spatial_dims=3, **TINY)
    assert emb(torch.rand(2, 1, 16, 16, 16)).shape == (2, 48)


def test_short_real_pretraining_lowers_the_masked_patch_loss():
    """40 steps on real BreastMNIST images: the held-out masked-patch loss (fixed masks) falls by a clear margin."""
    import numpy as np
    from conftest import DATA, require

    data = np.load(require(DATA / "medmnist" / "breastmnist.npz"))
    train = torch.as_tensor(data["train_images"][:256], dtype=torch.float32).unsqueeze(1) / 255.0
    val = torch.as_tensor(data["val_images"][:64], dtype=torch.float32).unsqueeze(1) / 255.0
    torch.manual_seed(0)
    net = MaskedAutoEncoderViT(img_size=28, patch_size=4, spatial_dims=2, **TINY)
    loss_fn = MaskedPatchLoss(4)
    opt = torch.optim.AdamW(net.parameters(), lr=2e-3)

    def held_out() -> float:
        state = torch.random.get_rng_state()
        torch.manual_seed(123)
        with torch.no_grad():
            value = loss_fn(net(val), val).item()
        torch.random.set_rng_state(state)
        return value

    before = held_out()
    for step in range(40):
        batch = train[(step * 32) % 256 : (step * 32) % 256 + 32]
        opt.zero_grad()
        loss_fn(net(batch), batch).backward()
        opt.step()
    after = held_out()
    assert after < 0.6 * before, (before, after)
