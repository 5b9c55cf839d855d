#!/usr/bin/env bash
# Run every benchmark in bench/ and write bench/results/*.json.
#
#   bash bench/run_all.sh            # CPU benchmarks, CI config end to end (about 40 minutes on 2 cores)
#   FULL=1 bash bench/run_all.sh     # also the default config end to end with --cores 2 (about 1 hour more)
#   QUICK=1 bash bench/run_all.sh    # fewer repeats and sizes (a smoke run, about 15 minutes)
#
# Run it on an otherwise idle machine: every number is a ratio against a reference
# measured back to back in the same process, but a busy machine still widens them.
# On a GPU machine, gpu_paper_scale.py runs the Pythia-410M-shaped model on cuda.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
export HF_HUB_OFFLINE=1 PYTHONHASHSEED=0
QUICK_FLAG=()
REPEATS=5
if [[ "${QUICK:-0}" == "1" ]]; then
  QUICK_FLAG=(--quick)
  REPEATS=3
fi

echo "== load before: $(cut -d' ' -f1-3 /proc/loadavg)"
"$PY" bench/cache_read.py "${QUICK_FLAG[@]}"
"$PY" bench/sae_training.py "${QUICK_FLAG[@]}"
"$PY" bench/extraction.py --repeats "$REPEATS"
"$PY" bench/startup.py
"$PY" bench/end_to_end.py --config ci --cores 2 1 --timeout 3600
"$PY" bench/end_to_end.py --config ci --cores 2 --worker off on --name end_to_end_ci_worker --timeout 3600
"$PY" bench/incremental.py --from-run /tmp/sae-bench/e2e/ci-c2 --repeats "$REPEATS"
if [[ "${FULL:-0}" == "1" ]]; then
  "$PY" bench/end_to_end.py --config config --cores 2 --timeout 5400
fi
if "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  "$PY" bench/gpu_paper_scale.py --size pythia-410m
else
  "$PY" bench/gpu_paper_scale.py --size reduced --repeats 2
fi
echo "== load after: $(cut -d' ' -f1-3 /proc/loadavg)"
ls -1 bench/results/*.json
