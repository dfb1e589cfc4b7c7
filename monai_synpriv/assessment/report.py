"""``ExamineAssessment``: embed a datalist, score it with EXAMINE, and write what a labelling team needs.

The encoder is an encoder bundle folder (:class:`~monai_synpriv.assessment.EncoderBundle`), an encoder already in
memory (:class:`NetworkEncoder`: a network, its preprocessing and a weights file, as the assessment bundle defines
them in its own config), or none when the embeddings are given (a ``.npy``, e.g. written by the bundle's evaluator
through :class:`monai_synpriv.handlers.EmbeddingWriter`).

Outputs under ``output_dir`` (each written atomically):

- ``examine_ranking.csv``: ``rank, row, image, msv, score`` (+ the items' scalar fields, e.g. ``label``), best first;
- ``embeddings.npy`` (when computed here) and ``examine_summary.json`` (settings, solver details, timings);
- ``examine_histogram.png``: the distribution of the marginal singular values;
- ``examine_montage.png``: the top- and bottom-ranked images;
- an MLflow run with the settings, summary metrics and every file above.
"""

from __future__ import annotations

import csv
import hashlib
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from torch import nn

from ..utils.io import atomic_path, write_json_atomic
from ..utils.mlflow_log import log_mlflow_run
from .embedding import EncoderBundle, _Encoder
from .examine import ExamineResult, ExamineScorer

__all__ = ["ExamineAssessment", "NetworkEncoder", "write_ranking_csv"]

logger = logging.getLogger(__name__)


def write_ranking_csv(
    path: str | os.PathLike, items: Sequence[dict], result: ExamineResult, image_key: str = "image"
) -> str:
    """Write the ranking (best first) as CSV atomically; returns the path."""
    extra = [k for k in items[0] if k != image_key and isinstance(items[0][k], (int, float, str))]
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["rank", "row", image_key, "msv", "score", *extra])
            for rank, row in enumerate(result.ranking, start=1):
                item = items[int(row)]
                writer.writerow(
                    [
                        rank,
                        int(row),
                        item[image_key],
                        f"{result.msv[row]:.10g}",
                        f"{result.scores[row]:.10g}",
                        *(item.get(k, "") for k in extra),
                    ]
                )
    return str(path)


class NetworkEncoder(_Encoder):
    """An encoder given as objects rather than as a bundle folder: a network, its preprocessing and a weights file,
    with :class:`~monai_synpriv.assessment.EncoderBundle`'s interface (``network``, ``preprocessing``,
    :meth:`embed_items`, :meth:`fingerprint` and the provenance attributes), so :class:`ExamineAssessment` takes either.

    The EXAMINE assessment bundle builds one from its own config (``network``, ``preprocessing``, ``ckpt_path``) in
    ``initialize``: the bundle is self-contained, its encoder's weights are its ``models/model.pt``.

    Weights: ``ckpt_path`` is loaded into ``network`` (in place). Without the file the encoder refuses
    (``require_weights``, the default) or keeps the network's weights as given, with a loud
    :class:`~monai_synpriv.assessment.UntrainedEncoderWarning` (the bundle seeds the RNG with its ``seed`` before
    building ``network_def``, so that two runs embed alike).

    Attributes:
        network: the encoder on ``device``, in eval mode (the object given, weights loaded).
        preprocessing: the transform given.
        bundle_dir: the bundle that defines the encoder (as given; provenance only), or None.
        weights_path: the weights file loaded or looked for (None when ``ckpt_path`` is None).
        ckpt_path: the weights file loaded (absolute), None when untrained.
        trained: whether weights were loaded.
        weights_sha256: SHA-256 of the weights file, None when untrained.

    Args:
        network: an ``nn.Module`` mapping ``(B, C, *spatial)`` to ``(B, D)`` embeddings.
        preprocessing: dict transforms mapping ``{image_key: path}`` to the network's input under ``image_key``.
        ckpt_path: a state-dict file of ``network`` (``{"model": ...}`` wrappers accepted), or None for none.
        device: where the network runs.
        require_weights: raise when ``ckpt_path`` is not a file instead of embedding with the network's initial
            weights.
        image_key: the key ``preprocessing`` reads and writes.
        bundle_dir: the bundle defining the encoder, for provenance and messages.
        source: what messages name as the encoder (default: ``<bundle_dir> network_def``).

    Raises:
        TypeError: ``network`` is not an ``nn.Module``.
        FileNotFoundError: no weights file while ``require_weights`` (the message names the file).
        RuntimeError: the weights file is not a state dict of ``network``.
    """

    def __init__(
        self,
        network: nn.Module,
        preprocessing: Any,
        ckpt_path: str | os.PathLike | None = None,
        device: str | torch.device = "cpu",
        require_weights: bool = True,
        image_key: str = "image",
        bundle_dir: str | os.PathLike | None = None,
        source: str | None = None,
    ) -> None:
        if not isinstance(network, nn.Module):
            raise TypeError(f"the encoder network must be an nn.Module, got {type(network).__name__}.")
        self.bundle_dir = Path(bundle_dir).resolve() if bundle_dir is not None else None
        self.source = source or (f"{self.bundle_dir} network_def" if self.bundle_dir is not None else "network_def")
        self.device = torch.device(device)
        self.image_key = image_key
        self.preprocessing = preprocessing
        ckpt = None if ckpt_path is None else os.path.abspath(ckpt_path)
        self.network = self._load_weights(
            network,
            Path(ckpt) if ckpt is not None else None,
            require_weights,
            what=self.source,
            untrained=(
                f"ENCODER {self.source} HAS NO WEIGHTS ({ckpt or 'ckpt_path is None'}): embedding with the network's "
                "INITIAL (random) weights. EXAMINE scores from an untrained encoder only reflect raw image statistics; "
                "train the encoder first for meaningful scores."
            ),
        )

    def fingerprint(self) -> str:
        """Identifies what the embeddings depend on: the network's class and every parameter and buffer (names,
        shapes, values), so equal weights give equal fingerprints whether loaded from a file or initial."""
        h = hashlib.sha256(f"{type(self.network).__module__}.{type(self.network).__qualname__}".encode())
        for name, tensor in sorted(self.network.state_dict().items()):
            t = tensor.detach().cpu().contiguous()
            h.update(f"{name}{tuple(t.shape)}{t.dtype}".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
        return h.hexdigest()


def _check_embeddings(path: str | os.PathLike, n: int) -> Path:
    """``path`` as a ``Path`` once it is a ``.npy`` of ``n`` rows (memory-mapped: nothing is read)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"embeddings file not found: {path}")
    shape = np.load(path, mmap_mode="r").shape
    if len(shape) != 2 or shape[0] != n:
        raise ValueError(f"embeddings {path} have shape {shape}: expected ({n}, d), one row per datalist item.")
    return path


def _provenance(encoder: Any) -> dict[str, str]:
    """What the summary and MLflow record about the encoder that computed the embeddings."""
    bundle_dir = getattr(encoder, "bundle_dir", None)
    return {
        "encoder_bundle": str(bundle_dir) if bundle_dir is not None else "none",
        "encoder_checkpoint": getattr(encoder, "ckpt_path", None) or "untrained",
        "encoder_weights_sha256": getattr(encoder, "weights_sha256", None) or "untrained",
        "encoder_fingerprint": encoder.fingerprint(),
    }


class ExamineAssessment:
    """Rank a datalist's images for labelling with EXAMINE.

    Args:
        items: datalist entries (``{image_key: path, ...}``), in the order of ``embeddings`` when those are given.
        output_dir: where the ranking, pictures and summary go.
        encoder_bundle: an encoder bundle folder (see :mod:`monai_synpriv.assessment.embedding`), loaded when the
            images are embedded. One of ``encoder_bundle``, ``encoder`` and ``embeddings`` is needed.
        encoder_config: its config file(s), relative to the bundle.
        encoder_overrides: config ids to override in the encoder bundle (e.g. ``{"ckpt_path": ...}``).
        encoder: an encoder already loaded instead of ``encoder_bundle``: a :class:`NetworkEncoder` (a network, its
            preprocessing and weights, as the assessment bundle defines them), an
            :class:`~monai_synpriv.assessment.EncoderBundle`, or any object with ``preprocessing``,
            ``embed_items(items, batch_size=, precision=)``, ``fingerprint()``, ``ckpt_path`` and
            ``weights_sha256``. Its preprocessing also shows the images of the montage. With ``embeddings`` (here or
            in :meth:`run`), it is taken as what computed them (provenance) and embeds nothing.
        embeddings: a ``.npy`` of precomputed embeddings, one row per item (memory-mapped and streamed).
        require_weights: refuse an encoder bundle without trained weights (False: warn and use initial weights).
        method, center, l2_normalize, temperature, chunk_size: :class:`ExamineScorer` settings.
        device: where the encoder runs.
        batch_size: images per embedding batch.
        precision: ``fp32``, ``bf16``, ``fp16`` or ``auto``: the encoder's autocast (CPU or CUDA).
        montage_count: images in each of the top and bottom rows of the montage.
        image_key: the image key of ``items``.
        orientation: how the montage shows 2D arrays (``"medical"`` or ``"picture"``).
        tracking_uri: MLflow tracking URI; None logs nothing (default in the bundle: SQLite under output_dir).
        experiment_name, run_name: MLflow experiment and run names.
        params: extra parameters to log (dataset name, datalist ...).

    Raises:
        ValueError / FileNotFoundError at construction for a bad scorer setting, an empty datalist, a missing
        encoder bundle or embeddings file, or embeddings whose row count differs from the datalist; nothing is
        computed or written before these checks pass.
    """

    def __init__(
        self,
        items: Sequence[dict],
        output_dir: str | os.PathLike,
        encoder_bundle: str | os.PathLike | None = None,
        encoder_config: str | list[str] = "configs/inference.json",
        encoder_overrides: dict | None = None,
        encoder: Any | None = None,
        embeddings: str | os.PathLike | None = None,
        require_weights: bool = True,
        method: str = "exact",
        center: bool = False,
        l2_normalize: bool = False,
        temperature: float = 1.0,
        chunk_size: int = 8192,
        device: str | torch.device = "cpu",
        batch_size: int = 64,
        precision: str = "fp32",
        montage_count: int = 8,
        image_key: str = "image",
        orientation: str = "medical",
        tracking_uri: str | None = None,
        experiment_name: str = "examine_assessment",
        run_name: str | None = None,
        params: dict[str, Any] | None = None,
    ) -> None:
        self.items = list(items)
        if not self.items:
            raise ValueError("the datalist to assess is empty.")
        for i, item in enumerate(self.items):
            if image_key not in item:
                raise KeyError(f"datalist entry {i} has no key {image_key!r} (keys: {sorted(item)}).")
        self.scorer = ExamineScorer(
            method=method, center=center, l2_normalize=l2_normalize, temperature=temperature, chunk_size=chunk_size
        )
        if embeddings is None and encoder_bundle is None and encoder is None:
            raise ValueError(
                "give an encoder_bundle (or a loaded encoder) to embed the images, or precomputed embeddings (.npy)."
            )
        if encoder_bundle is not None and encoder is not None:
            raise ValueError("give an encoder_bundle or a loaded encoder, not both.")
        if embeddings is not None:
            _check_embeddings(embeddings, len(self.items))
        if encoder_bundle is not None and embeddings is None:
            files = [encoder_config] if isinstance(encoder_config, (str, os.PathLike)) else list(encoder_config)
            for f in files:
                p = Path(f) if Path(f).is_absolute() else Path(encoder_bundle) / f
                if not p.is_file():
                    raise FileNotFoundError(f"encoder bundle config not found: {p}")
        if orientation not in ("medical", "picture"):
            raise ValueError(f"orientation must be 'medical' or 'picture', got {orientation!r}.")
        self.output_dir = Path(output_dir)
        self.encoder_bundle = encoder_bundle
        self.encoder_config = encoder_config
        self.encoder_overrides = dict(encoder_overrides or {})
        self.encoder = encoder
        self.embeddings = embeddings
        self.require_weights = require_weights
        self.device = device
        self.batch_size = batch_size
        self.precision = precision
        self.montage_count = int(montage_count)
        self.image_key = image_key
        self.orientation = orientation
        self.tracking_uri = tracking_uri
        self.experiment_name = experiment_name
        self.run_name = run_name
        self.params = dict(params or {})
        self.result: ExamineResult | None = None
        self.files: dict[str, str] = {}
        if encoder is not None:
            self._preprocessing = encoder.preprocessing

    # -- steps ------------------------------------------------------------------------------------------------
    def embed(self, embeddings: str | os.PathLike | None = None) -> tuple[str, dict]:
        """Embeddings path and provenance: ``embeddings`` (given to :meth:`run`: computed by ``encoder``), the
        constructor's ``.npy``, or the encoder's embeddings written here as ``embeddings.npy``."""
        if embeddings is not None:
            path = _check_embeddings(embeddings, len(self.items))
            info = _provenance(self.encoder) if self.encoder is not None else {}
            return str(path), {**info, "embeddings_source": str(path)}
        if self.embeddings is not None:
            return str(self.embeddings), {"embeddings_source": str(self.embeddings)}
        encoder = self.encoder
        if encoder is None:
            encoder = EncoderBundle(
                self.encoder_bundle,
                self.encoder_config,
                device=self.device,
                overrides=self.encoder_overrides,
                require_weights=self.require_weights,
                image_key=self.image_key,
            )
        start = time.perf_counter()
        emb = encoder.embed_items(self.items, batch_size=self.batch_size, precision=self.precision)
        path = self.output_dir / "embeddings.npy"
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                np.save(f, emb)
        info = {**_provenance(encoder), "embedding_seconds": round(time.perf_counter() - start, 3)}
        self._preprocessing = encoder.preprocessing
        return str(path), info

    def _load_for_display(self, rows: Sequence[int]) -> list[np.ndarray]:
        from monai.transforms import LoadImage

        transform = getattr(self, "_preprocessing", None)
        loader = LoadImage(image_only=True, ensure_channel_first=True)
        out = []
        for r in rows:
            item = self.items[int(r)]
            img = transform(dict(item))[self.image_key] if transform is not None else loader(item[self.image_key])
            arr = np.asarray(img, dtype=np.float32)
            lo, hi = np.percentile(arr, (1, 99))
            out.append(np.clip((arr - lo) / (hi - lo), 0, 1) if hi > lo else np.zeros_like(arr))
        return out

    def pictures(self, result: ExamineResult) -> dict[str, str]:
        """Histogram of the MSV and a montage of the top- and bottom-ranked images."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from ..visualize import save_figure, save_image_grid

        fig, ax = plt.subplots(figsize=(6, 3.5))
        ax.hist(result.msv, bins=min(60, max(10, len(result.msv) // 10)), color="tab:blue")
        ax.set_xlabel("marginal singular value (s1(X) - s1(X without the image))")
        ax.set_ylabel("images")
        ax.set_title(f"EXAMINE ({result.method}), n = {len(result.msv)}")
        hist = save_figure(fig, self.output_dir / "examine_histogram.png")
        plt.close(fig)
        k = max(1, min(self.montage_count, len(result.ranking) // 2 or 1))
        top, bottom = result.ranking[:k], result.ranking[::-1][:k]
        rows = [self._load_for_display(top), self._load_for_display(bottom)]
        montage = save_image_grid(
            rows,
            self.output_dir / "examine_montage.png",
            row_titles=[f"top {k} (label first)", f"bottom {k}"],
            column_titles=[f"#{i + 1}" for i in range(k)],
            title="EXAMINE ranking: most and least informative images",
            orientation=self.orientation,
        )
        return {"histogram": hist, "montage": montage}

    def log_mlflow(self, summary: dict) -> str | None:
        """Log the settings, summary metrics and output files into a new MLflow run; returns its id."""
        return log_mlflow_run(
            self.tracking_uri,
            self.experiment_name,
            self.run_name,
            params={**summary["settings"], **self.params},
            metrics=summary["metrics"],
            files=[p for p in self.files.values() if Path(p).suffix != ".npy"],
            artifact_path="examine",
            artifact_root=self.output_dir,
            tags={"method": "examine"},
        )

    def run(self, embeddings: str | os.PathLike | None = None) -> dict:
        """Embed, score, write the ranking and pictures, log to MLflow; returns the summary.

        Args:
            embeddings: a ``.npy`` of this datalist's embeddings computed since construction by ``encoder``, one row
                per item (the assessment bundle's evaluator writes ``output_dir/embeddings.npy`` with
                :class:`monai_synpriv.handlers.EmbeddingWriter`, then passes it here); default: the constructor's
                ``embeddings``, else the encoder embeds the items here.

        Raises:
            FileNotFoundError / ValueError: ``embeddings`` is missing or has not one row per item.
        """
        self.output_dir.mkdir(parents=True, exist_ok=True)
        emb_path, provenance = self.embed(embeddings)
        start = time.perf_counter()
        result = self.scorer.score(emb_path, progress=True)
        seconds = time.perf_counter() - start
        self.result = result
        self.files["ranking"] = write_ranking_csv(
            self.output_dir / "examine_ranking.csv", self.items, result, self.image_key
        )
        if embeddings is not None or self.embeddings is None:
            self.files["embeddings"] = emb_path
        self.files.update(self.pictures(result))
        q = np.quantile(result.msv, [0.5, 0.9, 0.99])
        summary = {
            "settings": {
                "method": self.scorer.method,
                "center": self.scorer.center,
                "l2_normalize": self.scorer.l2_normalize,
                "temperature": self.scorer.temperature,
                **provenance,
            },
            "metrics": {
                "n_images": result.info["n"],
                "embedding_dim": result.info["d"],
                "top_singular_value": result.singular_value,
                "msv_median": q[0],
                "msv_p90": q[1],
                "msv_p99": q[2],
                "msv_max": float(result.msv.max()),
                "scoring_seconds": seconds,
            },
            "solver": result.info,
            "top": [self.items[int(r)][self.image_key] for r in result.ranking[: self.montage_count]],
        }
        self.files["summary"] = str(self.output_dir / "examine_summary.json")
        write_json_atomic(self.files["summary"], summary)
        summary["mlflow_run_id"] = self.log_mlflow(summary)
        if summary["mlflow_run_id"]:
            write_json_atomic(self.files["summary"], summary)
        logger.info("EXAMINE ranking of %d images written to %s", len(self.items), self.files["ranking"])
        return summary
