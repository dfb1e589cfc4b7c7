#!/usr/bin/env bash
# Set everything up (virtual environment in .venv) and run the test suite on CPU.
# The test files run on pytest-xdist workers (--dist loadfile: a file's module fixtures stay in one worker), one per
# core up to 4 (SYNPRIV_TEST_WORKERS overrides; 0 runs in-process), each with one torch thread: ~110 tests start bundle
# subprocesses that spend ~5 s single-threaded importing torch/MONAI, which a second worker overlaps.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
cores=$(nproc 2>/dev/null || echo 2)
workers=${SYNPRIV_TEST_WORKERS:-$(( cores < 4 ? cores : 4 ))}
if [ "$workers" -gt 0 ]; then
  export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} MKL_NUM_THREADS=${MKL_NUM_THREADS:-1}
  exec .venv/bin/python -m pytest tests -q -p no:cacheprovider --durations=15 -n "$workers" --dist loadfile "$@"
fi
exec .venv/bin/python -m pytest tests -q -p no:cacheprovider --durations=15 "$@"
