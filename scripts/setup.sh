#!/usr/bin/env bash
# Create .venv and install the pinned dependencies; quick when nothing changed.
# torch==2.13.0 goes in first (a CPU build here) and torchvision==0.28.0 without its
# dependencies, so nothing pulls the multi-gigabyte CUDA wheels.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
stamp="$VENV/.botorch_archsearch-setup"
want=$(cat requirements/pinned.txt pyproject.toml setup.cfg scripts/setup.sh | sha1sum | cut -d' ' -f1)
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
  exit 0
fi
echo "setup: creating $VENV and installing the pinned dependencies (first run takes a few minutes)" >&2
[[ -x "$VENV/bin/python" ]] || "$PYTHON" -m venv "$VENV"
pip=("$VENV/bin/python" -m pip --disable-pip-version-check -q)
"${pip[@]}" install "torch==2.13.0"
"${pip[@]}" install --no-deps "torchvision==0.28.0"
"${pip[@]}" install -r requirements/pinned.txt
"${pip[@]}" install --no-deps --no-build-isolation -e .
echo "$want" > "$stamp"
