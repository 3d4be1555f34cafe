#!/usr/bin/env bash
# Set up (if needed) and run the main job on the embedded default data.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
exec .venv/bin/python -m botorch_archsearch "$@"
