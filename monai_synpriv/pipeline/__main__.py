"""``python -m monai_synpriv.pipeline``: run the synthetic-privileged-information experiment."""

from __future__ import annotations

import argparse
import sys

from .profile import parse_override
from .runner import STAGES, SynPrivPipeline


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m monai_synpriv.pipeline",
        description="Translator -> synthetic privileged modality -> SSL arms x seeds -> probes -> report, on real "
        "data. A re-run with the same --output skips finished stages.",
    )
    parser.add_argument(
        "--profile", default="quick", help="quick (CPU, ~20 min), full (GPU), tiny (tests), or a JSON path"
    )
    parser.add_argument("--output", default="runs/pipeline", help="output folder (default runs/pipeline)")
    parser.add_argument("--data_root", default=None, help="folder of the public sets (default ../shared/data)")
    parser.add_argument(
        "--bundles_dir", default=None, help="folder of the bundles (default: the checkout's or the installed copy)"
    )
    parser.add_argument("--tracking_uri", default=None, help="MLflow URI (default sqlite:///<output>/mlruns.db)")
    parser.add_argument("--experiment_name", default="synpriv_pipeline")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: CUDA when available)")
    parser.add_argument("--until", choices=STAGES, default=None, help="stop after this stage (run again to go on)")
    parser.add_argument("--no_progress", action="store_true", help="no progress bar over the stages")
    parser.add_argument(
        "--translator_weights",
        default=None,
        help="generator weights to use instead of training a translator (translator/models/model.pt of another run)",
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set a profile key (repeatable; the value is JSON or a string): data.contrast_b=t2f (FLAIR as the "
        "privileged modality), seeds=[0,1], ssl_train.max_epochs=4",
    )
    args = parser.parse_args(argv)
    try:
        overrides = dict(parse_override(text) for text in args.overrides)
    except ValueError as err:
        parser.error(str(err))
    pipe = SynPrivPipeline(
        args.profile,
        args.output,
        data_root=args.data_root,
        bundles_dir=args.bundles_dir,
        tracking_uri=args.tracking_uri,
        experiment_name=args.experiment_name,
        device=args.device,
        progress=not args.no_progress,
        until=args.until,
        translator_weights=args.translator_weights,
        overrides=overrides,
    )
    pipe.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
