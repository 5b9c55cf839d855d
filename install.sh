#!/usr/bin/env bash
# Create .venv and install sae-difficulty with its test extras.
#   bash install.sh            # CPU torch where the machine offers it, then the project
#   VENV=/path bash install.sh # another venv location
# torch is installed first and on its own, pinned, so that pip does not pull a
# multi-GB CUDA build as a dependency of another package. On a GPU machine, install
# the torch build you want into the venv before running this script: it is kept.
set -euo pipefail
cd "$(dirname "$0")"
VENV=${VENV:-.venv}
TORCH_VERSION=${TORCH_VERSION:-2.13.0}
PYTHON=${PYTHON:-python3}

if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"
"$PY" -m pip install --quiet --upgrade pip wheel setuptools
if ! "$PY" -c "import torch" 2>/dev/null; then
    echo "installing torch==$TORCH_VERSION"
    "$PY" -m pip install --quiet "torch==$TORCH_VERSION"
fi
echo "installing sae-difficulty with its test and slurm extras (versions pinned by constraints.txt)"
"$PY" -m pip install --quiet -c constraints.txt -e ".[test,slurm]"
"$PY" -c "import sae_difficulty, torch, sae_lens, transformer_lens, chronos, zarr; print('sae-difficulty', sae_difficulty.__version__, '| torch', torch.__version__)"
