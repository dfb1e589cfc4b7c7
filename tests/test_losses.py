import pytest
import torch

from monai_synpriv.losses import CycleGANGeneratorLoss, DiscriminatorLoss, Pix2PixGeneratorLoss


def test_discriminator_lsgan_value():
    real = torch.tensor([[[[1.0, 0.5], [0.0, 2.0]]]])
    fake = torch.tensor([[[[0.0, 0.5], [1.0, -1.0]]]])
    # 0.5 * (mean((real - 1)^2) + mean(fake^2)) = 0.5 * ((0 + .25 + 1 + 1) / 4 + (0 + .25 + 1 + 1) / 4)
    expected = 0.5 * (2.25 / 4 + 2.25 / 4)
    assert DiscriminatorLoss()(real, fake).item() == pytest.approx(expected)
    # MONAI's PatchDiscriminator returns every feature map: the loss must use the last one only
    assert DiscriminatorLoss()([torch.full_like(real, 9.0), real], [fake]).item() == pytest.approx(expected)


def test_cyclegan_generator_terms_by_hand():
    loss = CycleGANGeneratorLoss(lambda_cycle=10.0, lambda_identity=0.5)
    ones, zeros = torch.ones(1, 1, 2, 2), torch.zeros(1, 1, 2, 2)
    real_a, real_b = zeros, ones
    rec_a = torch.full((1, 1, 2, 2), 0.1)  # |rec_a - a| = 0.1 -> 10 * 0.1 = 1.0
    rec_b = torch.full((1, 1, 2, 2), 0.8)  # |rec_b - b| = 0.2 -> 2.0
    idt_a = torch.full((1, 1, 2, 2), 0.2)  # 5 * 0.2 = 1.0
    idt_b = torch.full((1, 1, 2, 2), 0.6)  # 5 * 0.4 = 2.0
    d_fake_b = torch.full((1, 1, 2, 2), 0.5)  # (0.5 - 1)^2 = 0.25
    d_fake_a = zeros  # (0 - 1)^2 = 1
    t = loss(d_fake_b, d_fake_a, real_a, real_b, rec_a, rec_b, idt_a, idt_b)
    assert t["gan_ab"].item() == pytest.approx(0.25)
    assert t["gan_ba"].item() == pytest.approx(1.0)
    assert t["cycle_a"].item() == pytest.approx(1.0)
    assert t["cycle_b"].item() == pytest.approx(2.0)
    assert t["identity_a"].item() == pytest.approx(1.0)
    assert t["identity_b"].item() == pytest.approx(2.0)
    assert t["total"].item() == pytest.approx(7.25)


def test_cyclegan_identity_off_and_validation():
    loss = CycleGANGeneratorLoss(lambda_identity=0.0)
    x = torch.rand(1, 1, 4, 4)
    t = loss(x, x, x, x, x, x)
    assert t["identity_a"].item() == 0 and t["cycle_a"].item() == 0
    with pytest.raises(ValueError, match="idt_a"):
        CycleGANGeneratorLoss()(x, x, x, x, x, x)
    with pytest.raises(ValueError, match=">= 0"):
        CycleGANGeneratorLoss(lambda_cycle=-1)


def test_pix2pix_loss_by_hand():
    fake = torch.full((1, 1, 2, 2), 0.25)
    target = torch.zeros(1, 1, 2, 2)
    logits = torch.ones(1, 1, 2, 2)  # fooled discriminator: gan term 0
    t = Pix2PixGeneratorLoss(lambda_l1=100.0)(logits, fake, target)
    assert t["gan"].item() == pytest.approx(0.0)
    assert t["l1"].item() == pytest.approx(25.0)
    assert t["total"].item() == pytest.approx(25.0)
