"""``python -m monai_synpriv.label init-app DIR``: write a MONAI Label app folder for ExamineLabelApp."""

from __future__ import annotations

import argparse

from . import init_app_dir


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m monai_synpriv.label", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("init-app", help="write DIR/main.py for `monailabel start_server --app DIR`")
    p.add_argument("app_dir")
    args = parser.parse_args(argv)
    path = init_app_dir(args.app_dir)
    print(f"MONAI Label app folder ready: {path.resolve()}")
    print(f"start: monailabel start_server --app {path.resolve()} --studies <images> --conf encoder_bundle <bundle>")


if __name__ == "__main__":
    main()
