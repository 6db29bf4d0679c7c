#!/usr/bin/env bash
# LTM-Swin-T vs Swin-T on a CUDA GPU, in one go (about 5 minutes on a
# recent GPU): backbone latency at 224x224 batch 64 and 800x1333 batch 2
# under fp16 autocast (interleaved, CUDA events), FLOPs ratios, peak memory,
# a 20-iteration toy Mask R-CNN training under AMP with its loss, and the
# torch.compile graph count with compiled latency. The code is
# mmltm/analysis/gpu_check.py; run after the README's set-up:
#
#   bash tools/misc/gpu_check.sh [--runs 20] [--skip-train] [--skip-compile]
#
# On a machine without CUDA it exits with status 2 and says so.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-.venv/bin/python}
if [ ! -x "$PY" ] && ! command -v "$PY" >/dev/null 2>&1; then
  echo "error: no Python at '$PY'; run 'make setup' first or set PYTHON=/path/to/python" >&2
  exit 2
fi
export PYTHONUNBUFFERED=1 PYTHONWARNINGS=ignore
exec "$PY" -m mmltm.analysis.gpu_check "$@"
