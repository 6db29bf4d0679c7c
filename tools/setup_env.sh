#!/usr/bin/env bash
# Idempotent set-up of the mmltm environment in ./.venv (or $MMLTM_VENV):
# torch 2.14.1 + torchvision 0.29.1, mmengine 0.10.7, mmcv 2.1.0 built from
# source with its ops (cached wheel, see tools/install_mmcv.sh), mmdet 3.3.0,
# mmsegmentation 1.2.2, mmpretrain 1.2.0, the test tools, and mmltm itself
# (editable). A second run finishes in seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${MMLTM_VENV:-.venv}
PY_BOOT=${MMLTM_PYTHON:-python3}
TORCH_SPEC=${MMLTM_TORCH_SPEC:-"torch==2.14.1 torchvision==0.29.1"}

key=$(cat requirements/runtime.txt requirements/tests.txt tools/install_mmcv.sh tools/setup_env.sh setup.py pyproject.toml \
  mmltm/ops/csrc/*.cpp | sha1sum | cut -c1-12)
stamp="$VENV/.mmltm-setup-$key"
# (the kernels are built in place: a `git clean` removes them, so check them too)
if [ -f "$stamp" ] && "$VENV/bin/python" -c 'import os, mmltm, mmcv.ops
from mmltm.ops import fused
assert fused.fused_ops_available() or os.environ.get("MMLTM_WITH_OPS") == "0"' >/dev/null 2>&1; then
  echo "[setup] environment $VENV is up to date"
  exit 0
fi

say() { echo "[setup] $*"; }
if [ ! -x "$VENV/bin/python" ]; then
  ver=$("$PY_BOOT" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
  [ "$ver" = "3.11" ] || say "warning: $PY_BOOT is Python $ver; the stack is verified on 3.11"
  say "creating $VENV"
  "$PY_BOOT" -m venv "$VENV"
fi
PY="$(cd "$VENV" && pwd)/bin/python"
pip_q() {  # quiet pip install; on failure print pip's output and stop
  local out
  if ! out=$("$PY" -m pip install -q "$@" 2>&1); then
    echo "$out" | grep -v "^WARNING: Location" >&2
    say "pip install $* failed"
    exit 1
  fi
}

say "build tools (setuptools<81 keeps pkg_resources for mmcv's setup.py)"
pip_q 'setuptools>=77,<81' wheel ninja
say "torch ($TORCH_SPEC)"
# shellcheck disable=SC2086
pip_q $TORCH_SPEC
"$PY" -c 'import torch, torchvision' || { say "torch install failed"; exit 1; }
pip_q 'mmengine==0.10.7' 'numpy>=2' opencv-python
say "mmcv 2.1.0 with ops"
PYTHON="$PY" bash tools/install_mmcv.sh
say "OpenMMLab libraries and test tools"
pip_q -r requirements/runtime.txt -r requirements/tests.txt
say "mmltm (editable, with its compiled CPU kernels: about a minute)"
# no build isolation: the kernels are built against the torch installed above
pip_q --no-build-isolation --no-deps -e .
# check from outside the checkout, so that it is the installed mmltm that imports
(cd / && "$PY" - <<'PY'
import mmcv, mmdet, mmseg, mmpretrain, mmengine, torch
import mmltm
from mmltm.ops import fused
print(f'[setup] mmltm kernels: {"built" if fused.fused_ops_available() else "NOT built (PyTorch reference code)"}')
print(f'[setup] torch {torch.__version__}, mmengine {mmengine.__version__}, mmcv {mmcv.__version__}, '
      f'mmdet {mmdet.__version__}, mmseg {mmseg.__version__}, mmpretrain {mmpretrain.__version__}, '
      f'mmltm {mmltm.__version__} ({mmltm.__file__})')
PY
)
rm -f "$VENV"/.mmltm-setup-*
touch "$stamp"
say "done"
