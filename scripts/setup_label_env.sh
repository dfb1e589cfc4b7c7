#!/usr/bin/env bash
# Create (or reuse) the MONAI Label environment in .venv-label and install monai_synpriv[label] into it.
#
# MONAI Label lives in its own environment because it pins what the core package must not (numpy<2, pydicom<3,
# dicomweb-client<0.60, pynetdicom<3) and imports torchvision. torchvision only imports beside its matching torch,
# so the pair goes in first (SYNPRIV_LABEL_TORCH_SPEC / SYNPRIV_LABEL_TORCHVISION_SPEC override it, e.g. a CPU
# pair from another index). MONAI Label's `sam2` dependency is source-only: its isolated build environment ignores
# `pip -c`, so a PIP_CONSTRAINT file pins torch there too (otherwise it would pull another multi-GB torch).
# Re-running is cheap: a stamp file records the install and is redone only when setup.py or this script changes.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV_LABEL:-.venv-label}
PYTHON=${PYTHON:-python3}
TORCH_SPEC=${SYNPRIV_LABEL_TORCH_SPEC:-torch==2.14.1}
TORCHVISION_SPEC=${SYNPRIV_LABEL_TORCHVISION_SPEC:-torchvision==0.29.1}

if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup-label] creating virtual environment in $VENV"
  "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"
export PIP_DISABLE_PIP_VERSION_CHECK=1

stamp="$VENV/.synpriv-label-installed"
if [ -f "$stamp" ] && [ ! setup.py -nt "$stamp" ] && [ ! scripts/setup_label_env.sh -nt "$stamp" ] \
   && [ -x "$VENV/bin/monailabel" ]; then
  echo "[setup-label] environment up to date ($VENV)"
  exit 0
fi

t0=$(date +%s)
# the constraints file pins the torch that is installed, for every pip call and every isolated build below
constraints="$VENV/synpriv-label-constraints.txt"
if ! "$PY" -c "import torch, torchvision" >/dev/null 2>&1; then
  echo "[setup-label] installing $TORCH_SPEC and $TORCHVISION_SPEC first"
  "$PY" -m pip install -q "$TORCH_SPEC" "$TORCHVISION_SPEC" || {
    echo "[setup-label] could not install $TORCH_SPEC + $TORCHVISION_SPEC; install a matching torch/torchvision" \
         "pair into $VENV yourself or set SYNPRIV_LABEL_TORCH_SPEC / SYNPRIV_LABEL_TORCHVISION_SPEC" >&2
    exit 1
  }
fi
"$PY" - "$constraints" <<'EOF'
import sys
from importlib.metadata import version

with open(sys.argv[1], "w") as f:
    f.write(f"torch=={version('torch')}\ntorchvision=={version('torchvision')}\n")
EOF
export PIP_CONSTRAINT="$PWD/$constraints"

echo "[setup-label] installing monai_synpriv[label] (MONAI Label) and pytest"
"$PY" -m pip install -q -e ".[label]" "pytest>=8"
"$PY" -c "import monailabel, monai, torch, torchvision, numpy, monai_synpriv.label.app; print(f'[setup-label] monailabel {monailabel.__version__}, monai {monai.__version__}, torch {torch.__version__}, torchvision {torchvision.__version__}, numpy {numpy.__version__}')"
touch "$stamp"
echo "[setup-label] done in $(( $(date +%s) - t0 )) s ($(du -sh "$VENV" | cut -f1))"
