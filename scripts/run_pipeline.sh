#!/usr/bin/env bash
# The main job: set up, then run the synthetic-privileged-information experiment end to end on the real data in
# ../shared/data (translator -> synthetic privileged modality -> SSL arms x 3 seeds -> probes -> report), logging
# every stage as a nested run of one MLflow parent run in an embedded SQLite store.
#
#   PROFILE=quick (default, ~20 min on a 2-core CPU) | full (paper scale, for a GPU) | tiny (smoke test) | a path
#           to your own profile (your data: docs/pipeline.md "Your own data"; DATA is then your data root)
#   OUT=runs/pipeline_<profile name>   DATA=../shared/data   DEVICE=(cpu|cuda; default: CUDA when available)
# A re-run with the same OUT skips finished stages (training resumes from its last checkpoint).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
PROFILE=${PROFILE:-quick}
NAME=$(basename "$PROFILE" .json)
OUT=$(realpath -m "${OUT:-runs/pipeline_$NAME}")
DATA=$(realpath -m "${DATA:-../shared/data}")
ARGS=(--profile "$PROFILE" --output "$OUT" --data_root "$DATA")
[ -n "${DEVICE:-}" ] && ARGS+=(--device "$DEVICE")
.venv/bin/python -m monai_synpriv.pipeline "${ARGS[@]}"
echo "[pipeline] table: $OUT/report/results.md; plots: $OUT/report/*.png;"
echo "[pipeline] MLflow UI: .venv/bin/mlflow ui --backend-store-uri sqlite:///$OUT/mlruns.db"
