"""The translator's held-out scores as a markdown table, against the intensity-matched input baselines."""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["translation_report"]

_ROWS = (
    ("SSIM, whole frame", "ssim", "higher"),
    ("SSIM, foreground", "fg_ssim", "higher"),
    ("PSNR (dB)", "psnr", "higher"),
    ("MAE", "mae", "lower"),
)


def translation_report(metrics_json: str | Path, title: str = "Translation quality on held-out aligned pairs") -> str:
    """A markdown table of the translator against the intensity-matched baselines, from evaluate.json's output."""
    data = json.loads(Path(metrics_json).read_text())
    m = data["metrics"]
    lines = [f"### {title}", ""]
    meta = {k: data[k] for k in ("contrast_a", "contrast_b", "image_size", "section") if k in data}
    if meta:
        lines += [", ".join(f"{k}: {v}" for k, v in meta.items()), ""]
    lines += [
        "| metric | translator | input, linear-matched | input, histogram-matched | translator better than both |",
        "|---|---|---|---|---|",
    ]
    for label, key, better in _ROWS:
        t, lin, hist = m.get(key), m.get(f"baseline_linear_{key}"), m.get(f"baseline_hist_{key}")
        if t is None or lin is None or hist is None:
            continue
        wins = all((t > b) if better == "higher" else (t < b) for b in (lin, hist) if b is not None)
        lines.append(f"| {label} ({better} is better) | {t:.4f} | {lin:.4f} | {hist:.4f} | {'yes' if wins else 'no'} |")
    return "\n".join(lines) + "\n"
