#!/usr/bin/env bash
# The GPU path end to end (issue 21): see benchmarks/gpu_check.py. Runs from any folder; one JSON line last.
#   benchmarks/gpu_check.sh                  on the GPU machine
#   benchmarks/gpu_check.sh --fetch-wheels   beforehand, where PyPI is reachable (wheels for an offline GPU machine)
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${PYTHON:-python3}" benchmarks/gpu_check.py "$@"
