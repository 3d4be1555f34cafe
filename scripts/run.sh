#!/usr/bin/env bash
# Set up (if needed) and run the main job (the Hydra app; no arguments: the demo on digits).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
# libgomp busy-waits by default; on a shared 2-core machine that makes small LSTM steps 10-40x slower.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
exec .venv/bin/python -m botorch_archsearch "$@"
