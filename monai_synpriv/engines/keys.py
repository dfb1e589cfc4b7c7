"""Keys and events of the translation trainers."""

from __future__ import annotations

from monai.utils import StrEnum, optional_import

EventEnum, _ = optional_import("ignite.engine", name="EventEnum")

__all__ = ["TranslationKeys", "TranslationIterationEvents"]


class TranslationKeys(StrEnum):
    """Keys of ``engine.state.output`` for the CycleGAN and pix2pix trainers.

    Images: ``real_a``, ``real_b``, ``fake_b`` (G(a)), ``fake_a`` (F(b)), ``rec_a`` (F(G(a))), ``rec_b`` (G(F(b))).
    Losses: ``loss`` (the generators' total, what MONAI's default loggers read), ``loss_g``, ``loss_d``, ``loss_d_a``,
    ``loss_d_b`` and the generator terms prefixed ``loss_`` (``loss_cycle_a``, ``loss_gan_ab``, ...).
    """

    REAL_A = "real_a"
    REAL_B = "real_b"
    FAKE_A = "fake_a"
    FAKE_B = "fake_b"
    REC_A = "rec_a"
    REC_B = "rec_b"
    LOSS = "loss"
    LOSS_G = "loss_g"
    LOSS_D = "loss_d"
    LOSS_D_A = "loss_d_a"
    LOSS_D_B = "loss_d_b"


class TranslationIterationEvents(EventEnum):
    """Events fired inside one translation iteration (in addition to MONAI's ``IterationEvents``)."""

    GENERATORS_COMPLETED = "generators_completed"
    DISCRIMINATORS_COMPLETED = "discriminators_completed"
