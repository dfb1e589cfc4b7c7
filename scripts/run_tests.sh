#!/usr/bin/env bash
# Set everything up (virtual environment in .venv) and run the test suite on CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
exec .venv/bin/python -m pytest tests -q -p no:cacheprovider --durations=15 "$@"
