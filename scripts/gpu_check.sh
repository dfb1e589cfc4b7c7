#!/usr/bin/env bash
# GPU check (issue 19): on a machine with one CUDA GPU, run the tests on CUDA and the reduced paper-scale profile
# (configs/pipeline/gpu_check.json), and write what was measured to benchmarks/results/gpu_check.json.
#
#   VENV=.venv (an environment whose torch is a CUDA build: SYNPRIV_TORCH_SPEC / docs/installation.md)
#   DATA=../shared/data   OUT=runs/gpu_check   LIMIT=480 (seconds for the profile; it stops there, resumable)
# Not yet run on a GPU: no session so far was lent one. Record its numbers in docs/benchmarks.md when it is.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
PY=${VENV:-.venv}/bin/python
OUT=$(realpath -m "${OUT:-runs/gpu_check}")
DATA=$(realpath -m "${DATA:-../shared/data}")
LIMIT=${LIMIT:-480}
"$PY" - <<'PYEOF'
import sys, torch
if not torch.cuda.is_available():
    sys.exit(f"gpu_check: torch {torch.__version__} sees no CUDA device; install a CUDA build into the environment "
             "(SYNPRIV_TORCH_SPEC, docs/installation.md) on a machine with a GPU.")
print(f"gpu_check: {torch.cuda.get_device_name(0)}, torch {torch.__version__}, bf16={torch.cuda.is_bf16_supported()}")
PYEOF
mkdir -p "$OUT" benchmarks/results
start=$(date +%s)
# the suite on the GPU machine: the bundles pick cuda:0 where it exists, so the bundle tests exercise the CUDA path
"$PY" -m pytest tests -q -p no:cacheprovider -x --junitxml "$OUT/tests.xml" -k "bundle or trainer or precision" \
    > "$OUT/tests.log" 2>&1 && tests_rc=0 || tests_rc=$?
tests_s=$(( $(date +%s) - start ))
start=$(date +%s)
timeout "$LIMIT" "$PY" -m monai_synpriv.pipeline --profile gpu_check --output "$OUT/pipeline" --data_root "$DATA" \
    --device cuda > "$OUT/pipeline.log" 2>&1 && pipe_rc=0 || pipe_rc=$?
pipe_s=$(( $(date +%s) - start ))
"$PY" - "$OUT" "$tests_rc" "$tests_s" "$pipe_rc" "$pipe_s" <<'PYEOF'
import json, os, sys, torch, datetime
out, tests_rc, tests_s, pipe_rc, pipe_s = sys.argv[1], *map(int, sys.argv[2:])
state_path = os.path.join(out, "pipeline", "pipeline_state.json")
state = json.load(open(state_path)) if os.path.isfile(state_path) else {}
record = {
    "date": datetime.datetime.now().isoformat(timespec="seconds"),
    "device": torch.cuda.get_device_name(0),
    "torch": torch.__version__,
    "tests": {"returncode": tests_rc, "seconds": tests_s, "log": os.path.join(out, "tests.log")},
    "pipeline": {"returncode": pipe_rc, "seconds": pipe_s, "timed_out": pipe_rc == 124,
                 "stage_seconds": {k: v.get("seconds") for k, v in state.get("stages", {}).items()}},
}
path = "benchmarks/results/gpu_check.json"
with open(path + ".tmp", "w") as f:
    json.dump(record, f, indent=2)
os.replace(path + ".tmp", path)
print(json.dumps(record, indent=2))
PYEOF
echo "[gpu_check] tests rc=$tests_rc (${tests_s}s), pipeline rc=$pipe_rc (${pipe_s}s); logs under $OUT"
