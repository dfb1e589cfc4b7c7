"""The unpaired translator bundle as a MONAI Label infer task: returns the synthetic (privileged) modality."""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Callable

import nibabel as nib
import numpy as np
import torch
from fastapi import HTTPException
from monai.bundle import ConfigParser
from monai.data import MetaTensor
from monai.data.utils import to_affine_nd
from monai.inferers import Inferer, SimpleInferer
from monai.transforms import Compose, SaveImaged
from monai.utils import convert_to_numpy
from monailabel.tasks.infer.basic_infer import BasicInferTask

from monai_synpriv.assessment.embedding import find_bundle_config
from monai_synpriv.inferers import AutocastInferer
from monai_synpriv.transforms import SaveToPathd

__all__ = ["TRANSLATION", "TranslatorInferTask", "TranslatorWeightsMissing"]

logger = logging.getLogger(__name__)

TRANSLATION = "translation"
"""The infer task type: not one of MONAI Label's segmentation-style types, so clients do not treat the output as a
label map."""

# the translator's inference.json writes files itself; in MONAI Label the task's writer does
_WRITERS = (SaveToPathd, SaveImaged)


class TranslatorWeightsMissing(HTTPException):
    """The translator bundle has no trained weights (answered as HTTP 503 with the reason)."""

    def __init__(self, detail: str) -> None:
        super().__init__(status_code=503, detail=detail)


class TranslatorInferTask(BasicInferTask):
    """Synthesise the privileged modality of one image with a translator bundle (``bundles/unpaired_translator``).

    Runs the bundle's own ``preprocessing``, ``network_def`` (+ ``models/model.pt``), ``inferer`` and
    ``postprocessing`` (masking by the input, ``Invertd`` back to the input's grid; its file writer is dropped) and
    writes the synthetic image as float32 NIfTI on the input's grid and affine. Type ``"translation"``: the output is
    an image, not a label map.

    Without its weights (the bundle's ``ckpt_path``, by default ``models/model.pt``) the task is not valid (absent
    from ``GET /info``) and ``/infer/<name>`` answers HTTP 503 saying so, unless ``allow_untrained`` (testing only):
    then it runs the network's initial weights (seed ``seed``), says so in its description and in every result
    (``"untrained": true``).

    Args:
        bundle_dir: the translator bundle folder.
        allow_untrained: run without trained weights (the output is meaningless; for tests).
        overrides: bundle config ids to set (e.g. ``{"to_grayscale": True, "normalize_inputs": True}``).
        seed: seeds the initial weights when running untrained.
    """

    def __init__(
        self,
        bundle_dir: str | os.PathLike,
        allow_untrained: bool = False,
        overrides: Mapping[str, Any] | None = None,
        seed: int = 0,
    ) -> None:
        self.bundle_dir = Path(bundle_dir).resolve()
        self.config_path = find_bundle_config(self.bundle_dir)
        self.allow_untrained = allow_untrained
        self.overrides = dict(overrides or {})

        parser = ConfigParser()
        parser.read_config(str(self.config_path))
        parser["bundle_root"] = str(self.bundle_dir)
        for k, v in self.overrides.items():
            parser[k] = v
        # the bundle's own ckpt_path (after overrides), else the model-zoo default models/model.pt
        ckpt = parser.get_parsed_content("ckpt_path") if "ckpt_path" in parser else None
        self.weights_path = Path(ckpt) if ckpt else self.bundle_dir / "models" / "model.pt"
        self.trained = self.weights_path.is_file()
        for key in ("network_def", "preprocessing"):
            if key not in parser:
                raise KeyError(f"{self.config_path} defines no '{key}': not a translator bundle for this task.")
        metadata: dict[str, Any] = {}
        meta_path = self.bundle_dir / "configs" / "metadata.json"
        if meta_path.is_file():
            metadata = json.loads(meta_path.read_text())
        spatial_dims = int(parser.get("spatial_dims", 2))

        network = None
        if self.trained or allow_untrained:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                network = parser.get_parsed_content("network_def")
        # the same parsed objects every call: postprocessing's Invertd refers to this preprocessing instance
        self._pre = parser.get_parsed_content("preprocessing")
        inferer = parser.get_parsed_content("inferer") if "inferer" in parser else SimpleInferer()
        # the bundle's precision setting (bf16 on an AMX CPU with "auto"), as in the bundle's own inference
        self._inferer = AutocastInferer(inferer, str(parser.get("precision", "fp32")))
        self._post = parser.get_parsed_content("postprocessing") if "postprocessing" in parser else []

        name = metadata.get("name", self.bundle_dir.name)
        if self.trained:
            description = f"{name}: synthetic privileged modality ({self.weights_path})"
        elif allow_untrained:
            description = f"UNTRAINED WEIGHTS (testing only, output meaningless): {name}"
        else:
            description = f"NOT AVAILABLE, no trained weights ({self.weights_path} missing): {name}"
        super().__init__(
            path=str(self.weights_path) if self.trained else None,
            network=network,
            type=TRANSLATION,
            labels=None,
            dimension=spatial_dims,
            description=description,
            load_strict=True,
        )
        self.version = metadata.get("version")
        if not self.trained:
            msg = self.missing_weights_message()
            if allow_untrained:
                logger.warning(f"{msg} RUNNING WITH UNTRAINED WEIGHTS (translator_allow_untrained): testing only.")
            else:
                logger.warning(f"{msg} The translator infer task is disabled.")

    def missing_weights_message(self) -> str:
        return (
            f"translator bundle {self.bundle_dir} has no trained weights: {self.weights_path} not found. Train it "
            "(python -m monai.bundle run --config_file <bundle>/configs/train.json --bundle_root <bundle>, see "
            "bundles/unpaired_translator/docs/README.md) or copy a trained models/model.pt there and restart; "
            "for tests only, --conf translator_allow_untrained true runs the initial weights."
        )

    def is_valid(self) -> bool:
        return self.trained or self.allow_untrained

    def info(self) -> dict[str, Any]:
        i = super().info()
        i.update(
            {
                "version": self.version,
                "bundle": str(self.bundle_dir),
                "trained": self.trained,
                "output": "synthetic image (float32 NIfTI on the input's grid)",
            }
        )
        return i

    def __call__(self, request, callbacks=None):
        if not self.is_valid():
            raise TranslatorWeightsMissing(self.missing_weights_message())
        return super().__call__(request, callbacks)

    @staticmethod
    def _as_list(c) -> list:
        return list(c.transforms) if isinstance(c, Compose) else list(c or [])

    def pre_transforms(self, data=None) -> Sequence[Callable]:
        return self._as_list(self._pre)

    def inferer(self, data=None) -> Inferer:
        return self._inferer

    def post_transforms(self, data=None) -> Sequence[Callable]:
        return [t for t in self._as_list(self._post) if not isinstance(t, _WRITERS)]

    def writer(self, data: dict[str, Any], extension=None, dtype=None) -> tuple[str, dict[str, Any]]:
        pred = data[self.output_label_key]
        arr = convert_to_numpy(pred, dtype=np.float32)  # (C, *spatial) on the input's grid
        spatial = arr.ndim - 1
        # the input's affine (Invertd restored its grid), as the 4x4 NIfTI wants it
        affine = (
            convert_to_numpy(pred.affine, dtype=np.float64) if isinstance(pred, MetaTensor) else np.eye(spatial + 1)
        )
        affine = to_affine_nd(3, affine) if spatial < 3 else affine
        fd, out = tempfile.mkstemp(suffix=".nii.gz")
        os.close(fd)
        # one channel -> a plain 2D/3D image; several -> channels last (NIfTI's 5th dimension convention aside)
        data = arr[0] if arr.shape[0] == 1 else np.moveaxis(arr, 0, -1)
        nib.Nifti1Image(data, affine).to_filename(out)
        result = {
            "untrained": not self.trained,
            "shape": list(arr.shape[1:]),
            "channels": int(arr.shape[0]),
            "min": float(arr.min()),
            "max": float(arr.max()),
        }
        if not self.trained:
            result["warning"] = "UNTRAINED WEIGHTS: this synthetic image is meaningless (testing only)"
        return out, result
