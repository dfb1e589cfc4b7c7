"""The arms of the synthetic-privileged-information experiment: which SSL variant trains on which pairs."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ARMS", "RANDOM_INIT", "Arm", "get_arms"]


@dataclass(frozen=True)
class Arm:
    """One arm of the experiment matrix.

    Attributes:
        name: key used in folders, MLflow run names and the report.
        label: human-readable name for tables and plots.
        variant: SSL variant (``siamese``, ``privileged_siamese``, ``tridente``), logged as the bundle's ``variant``.
        encoder_indices: the multi-branch model's encoder (and projector) indices; equal indices share weights.
        branch_keys: the data key each branch reads (``image_2`` is a second view of ``image``).
        pairs: ``downstream`` (primary images only), ``authentic`` (the small real multi-contrast pairs) or
            ``synthetic`` (the downstream images with their translated privileged modality).
    """

    name: str
    label: str
    variant: str
    encoder_indices: tuple[int, ...]
    branch_keys: tuple[str, ...]
    pairs: str

    @property
    def privileged(self) -> bool:
        """Whether the arm sees a privileged modality during pre-training."""
        return "privileged" in self.branch_keys


ARMS: dict[str, Arm] = {
    a.name: a
    for a in (
        Arm("siamese", "Siamese (single modality)", "siamese", (0, 0), ("image", "image_2"), "downstream"),
        Arm(
            "privileged_siamese_authentic",
            "Privileged Siamese, authentic pairs",
            "privileged_siamese",
            (0, 1),
            ("image", "privileged"),
            "authentic",
        ),
        Arm(
            "tridente_authentic",
            "TriDeNT, authentic pairs",
            "tridente",
            (0, 0, 1),
            ("image", "image_2", "privileged"),
            "authentic",
        ),
        Arm(
            "privileged_siamese_synthetic",
            "Privileged Siamese, synthetic pairs",
            "privileged_siamese",
            (0, 1),
            ("image", "privileged"),
            "synthetic",
        ),
        Arm(
            "tridente_synthetic",
            "TriDeNT, synthetic pairs",
            "tridente",
            (0, 0, 1),
            ("image", "image_2", "privileged"),
            "synthetic",
        ),
    )
}

#: The reference row without pre-training: the same encoder, randomly initialised, probed the same way.
RANDOM_INIT = "random_init"


def get_arms(names: list[str] | tuple[str, ...]) -> list[Arm]:
    """The arms named in a profile, in the profile's order.

    Raises:
        ValueError: an unknown arm name (the known ones are listed).
    """
    unknown = [n for n in names if n not in ARMS]
    if unknown:
        raise ValueError(f"unknown arm(s) {unknown} in the pipeline profile; known arms: {sorted(ARMS)}.")
    if not names:
        raise ValueError("the pipeline profile lists no arms.")
    return [ARMS[n] for n in names]
