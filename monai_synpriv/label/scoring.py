"""EXAMINE as a MONAI Label scoring method: embed every datastore image, score, write per-image scores."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
from monailabel.datastore.local import LocalDatastore
from monailabel.interfaces.datastore import Datastore
from monailabel.interfaces.tasks.scoring import ScoringMethod
from monailabel.utils.others.generic import name_to_device, strtobool

from monai_synpriv.assessment import EXAMINE_METHODS, examine_scores
from monai_synpriv.assessment.embedding import EncoderBundle, find_bundle_config

__all__ = ["ExamineScoring", "write_image_infos"]

logger = logging.getLogger(__name__)

SCORE_KEYS = ("center", "l2_normalize", "method", "temperature")


def write_image_infos(datastore: Datastore, infos: Mapping[str, Mapping[str, Any]]) -> None:
    """Merge ``infos[image_id]`` into each image's info in the datastore.

    A :class:`LocalDatastore` is written once (reloaded first, so that what the server wrote since this process
    loaded it is kept); any other datastore gets one ``update_image_info`` call per image (its public API, which
    rewrites a local datastore's whole JSON on every call).
    """
    if isinstance(datastore, LocalDatastore) and hasattr(datastore, "_update_datastore_file"):
        datastore._init_from_datastore_file()  # pick up labels/strategy records the server saved meanwhile
        objects = datastore._datastore.objects
        missing = [i for i in infos if i not in objects]
        for image_id, info in infos.items():
            if image_id in objects:
                objects[image_id].image.info.update(info)
        datastore._update_datastore_file()
        if missing:
            logger.warning(f"EXAMINE:: {len(missing)} images vanished from the datastore while scoring: {missing[:5]}")
        return
    for image_id, info in infos.items():
        datastore.update_image_info(image_id, dict(info))


class ExamineScoring(ScoringMethod):
    """Score every image in the datastore with EXAMINE (Huang et al. 2022) on an encoder bundle's embeddings.

    Each image's info gets ``<prefix>_score`` (the EXAMINE score; higher = label first), ``<prefix>_msv`` (the
    marginal change of the largest singular value when that image is removed), ``<prefix>_rank`` (1 = first),
    ``<prefix>_fingerprint`` and ``<prefix>_ts``. Scores are relative to the whole set, so every image (labelled or
    not) is embedded and all are rewritten together; a run is skipped when the fingerprint (encoder config and
    weights, EXAMINE options, image files) is unchanged, so MONAI Label's automatic re-scoring stays cheap.

    Request keys (``POST /scoring/<name>`` JSON body): ``examine_center``, ``examine_l2_normalize``,
    ``examine_method`` (``exact`` or ``first_order``), ``examine_temperature``, ``examine_batch_size``, ``device``,
    ``force`` (recompute even when up to date).

    Args:
        encoder_bundle: the encoder bundle folder (see :mod:`monai_synpriv.assessment.embedding` for the contract).
        encoder_overrides: config ids to override in the encoder bundle.
        encoder_config: the encoder bundle's config file(s) (default: ``configs/inference.json``, ``.yaml``, ``.yml``).
        allow_untrained: score with the encoder's initial weights when its checkpoint is missing (a loud warning);
            by default a missing checkpoint stops the app at start-up, naming the file.
        center, l2_normalize, method, temperature: EXAMINE options (:func:`monai_synpriv.assessment.examine_scores`).
        batch_size: images per forward pass.
        key_prefix: prefix of the keys written into the image info.
        description: shown by ``GET /info``.
    """

    def __init__(
        self,
        encoder_bundle: str | os.PathLike,
        encoder_overrides: Mapping[str, Any] | None = None,
        encoder_config: str | list[str] | None = None,
        allow_untrained: bool = False,
        center: bool = False,
        l2_normalize: bool = False,
        method: str = "exact",
        temperature: float = 1.0,
        batch_size: int = 16,
        key_prefix: str = "examine",
        description: str = "EXAMINE: embed every image with the encoder bundle and score which to label first",
    ) -> None:
        super().__init__(description)
        self.encoder_bundle = os.path.abspath(encoder_bundle)
        self.encoder_config = encoder_config
        self.allow_untrained = bool(allow_untrained)
        if encoder_config is None:
            find_bundle_config(self.encoder_bundle)  # fail at app start, with the path, not at the first scoring
        if method not in EXAMINE_METHODS:
            raise ValueError(f"EXAMINE method must be one of {EXAMINE_METHODS}, got {method!r}.")
        self.encoder_overrides = dict(encoder_overrides or {})
        self.defaults = {"center": center, "l2_normalize": l2_normalize, "method": method, "temperature": temperature}
        self.batch_size = batch_size
        self.key_prefix = key_prefix
        self.key_score = f"{key_prefix}_score"
        self.key_msv = f"{key_prefix}_msv"
        self.key_rank = f"{key_prefix}_rank"
        self.key_fingerprint = f"{key_prefix}_fingerprint"
        self.key_ts = f"{key_prefix}_ts"
        self._encoder: EncoderBundle | None = None
        if not self.allow_untrained:  # a missing checkpoint stops the app now, naming the file
            self.trained = self.encoder("cpu").trained
            self._encoder = None  # the scoring subprocess loads its own copy
        else:
            self.trained = None

    def info(self) -> dict[str, Any]:
        return {
            "description": self.description,
            "encoder_bundle": self.encoder_bundle,
            "encoder_trained": self.trained,
            "options": dict(self.defaults),
            "keys": {"score": self.key_score, "msv": self.key_msv, "rank": self.key_rank},
        }

    def encoder(self, device: str = "cpu") -> EncoderBundle:
        """The encoder bundle, loaded on first use (the server process itself never needs it)."""
        if self._encoder is None or str(self._encoder.device) != str(device):
            self._encoder = EncoderBundle(
                self.encoder_bundle,
                self.encoder_config,
                device=device,
                overrides=self.encoder_overrides,
                require_weights=not self.allow_untrained,
            )
        return self._encoder

    def _options(self, request: Mapping[str, Any]) -> dict[str, Any]:
        opts = dict(self.defaults)
        for k in SCORE_KEYS:  # prefixed: MONAI Label's request already uses "method" for the scoring method's name
            if request.get(f"examine_{k}") is not None:
                opts[k] = request[f"examine_{k}"]
        opts["center"] = bool(strtobool(str(opts["center"])))
        opts["l2_normalize"] = bool(strtobool(str(opts["l2_normalize"])))
        opts["temperature"] = float(opts["temperature"])
        if opts["method"] not in EXAMINE_METHODS:
            raise ValueError(f"EXAMINE method must be one of {EXAMINE_METHODS}, got {opts['method']!r}.")
        return opts

    @staticmethod
    def _files_digest(image_ids: list[str], paths: list[str]) -> str:
        h = hashlib.sha256()
        for image_id, path in zip(image_ids, paths):
            st = os.stat(path)
            h.update(f"{image_id}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        return h.hexdigest()

    def __call__(self, request, datastore: Datastore):
        t0 = time.time()
        image_ids = sorted(datastore.list_images())
        if len(image_ids) < 2:
            summary = {
                "total": len(image_ids),
                "executed": 0,
                "skipped": len(image_ids),
                "reason": "fewer than 2 images",
            }
            logger.warning(f"EXAMINE:: nothing to score: {summary}")
            return summary
        paths = [datastore.get_image_uri(i) for i in image_ids]
        opts = self._options(request)
        device = name_to_device(request.get("device"))  # CUDA where available
        encoder = self.encoder(device)
        fingerprint = hashlib.sha256(
            json.dumps([encoder.fingerprint(), opts, self._files_digest(image_ids, paths)], sort_keys=True).encode()
        ).hexdigest()

        force = bool(strtobool(str(request.get("force", False))))
        infos = {i: datastore.get_image_info(i) for i in image_ids}
        if not force and all(
            info.get(self.key_fingerprint) == fingerprint and info.get(self.key_score) is not None
            for info in infos.values()
        ):
            summary = {"total": len(image_ids), "executed": 0, "skipped": len(image_ids), "fingerprint": fingerprint}
            logger.info(f"EXAMINE:: scores up to date, skipped: {summary}")
            return summary

        logger.info(f"EXAMINE:: embedding {len(image_ids)} images with {self.encoder_bundle} on {device}")
        t_embed = time.time()
        embeddings = encoder.embed(paths, batch_size=int(request.get("examine_batch_size") or self.batch_size))
        t_embed = time.time() - t_embed
        res = examine_scores(embeddings, **opts)
        ranks = np.empty(len(image_ids), dtype=int)
        ranks[res.ranking] = np.arange(1, len(image_ids) + 1)
        ts = int(time.time())
        write_image_infos(
            datastore,
            {
                image_id: {
                    self.key_score: float(res.scores[k]),
                    self.key_msv: float(res.msv[k]),
                    self.key_rank: int(ranks[k]),
                    self.key_fingerprint: fingerprint,
                    self.key_ts: ts,
                }
                for k, image_id in enumerate(image_ids)
            },
        )
        top = [image_ids[k] for k in res.ranking[:5]]
        summary = {
            "total": len(image_ids),
            "executed": len(image_ids),
            "skipped": 0,
            "embedding_dim": int(embeddings.shape[1]),
            "trained_encoder": encoder.trained,
            "options": opts,
            "top": top,
            "fingerprint": fingerprint,
            "latency": {"embed": round(t_embed, 3), "total": round(time.time() - t0, 3)},
        }
        logger.info(f"EXAMINE:: {summary}")
        return summary
