"""``monai-synpriv``: small command-line helpers around the bundles (``python -m monai_synpriv.cli --help``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .evaluation.translation_table import translation_report
from .utils.io import atomic_path

__all__ = ["main", "translation_report"]

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="monai-synpriv", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    rep = sub.add_parser("translation-report", help="markdown table from the translator's evaluation metrics JSON")
    rep.add_argument("metrics_json")
    rep.add_argument("--out", help="also write the table to this file (atomically)")
    lf = sub.add_parser("large-files", help="write a trained bundle's large_files.yml (model-zoo's hosted weights)")
    lf.add_argument("bundle_dir")
    lf.add_argument("--url-base", required=True, help="where the bundle's models/ folder is hosted (https://..., file://...)")
    lf.add_argument("--hash-type", default="sha256", choices=["md5", "sha1", "sha256", "sha512"])
    args = parser.parse_args(argv)
    if args.command == "large-files":
        from .large_files import write_large_files

        try:
            print(write_large_files(args.bundle_dir, args.url_base, hash_type=args.hash_type))
        except (FileNotFoundError, ValueError) as e:
            parser.error(str(e))
        return 0
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
