"""``monai-synpriv``: small command-line helpers around the bundles (``python -m monai_synpriv.cli --help``)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .utils.io import atomic_path

__all__ = ["main", "translation_report"]

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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="monai-synpriv", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    rep = sub.add_parser("translation-report", help="markdown table from the translator's evaluation metrics JSON")
    rep.add_argument("metrics_json")
    rep.add_argument("--out", help="also write the table to this file (atomically)")
    args = parser.parse_args(argv)
    if args.command == "translation-report":
        if not Path(args.metrics_json).is_file():
            parser.error(f"metrics file not found: {args.metrics_json} (run the bundle's evaluate.json first)")
        table = translation_report(args.metrics_json)
        print(table)
        if args.out:
            with atomic_path(args.out) as tmp:
                Path(tmp).write_text(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
