#!/usr/bin/env bash
# Install mmcv==2.1.0 with its compiled ops into the active Python environment.
#
# mmcv 2.1.0 ships no wheel for torch 2.14, so it is built from the sdist.
# Two fixes make that build work with this stack:
#   * torch 2.14's headers need C++20, and mmcv's setup.py hard-codes
#     -std=c++14 / -std=c++17 (for both the host compiler and nvcc);
#   * mmcv's setup.py imports pkg_resources, which setuptools >= 81 dropped.
# The build takes ~17 minutes on 2 cores, so the wheel is cached, keyed by
# (mmcv version, torch version, python tag, CPU/CUDA), under
#   ${MMLTM_CACHE_DIR:-~/.cache/mmltm}/wheels/<key>/
# A wheel is never reused across torch versions: the key holds torch.__version__.
#
# Optional: MMLTM_WHEELHOUSE=<dir> names a folder with a prebuilt wheel; it is
# used only if the folder's name or its TORCH_VERSION file names the installed
# torch version, and only if the ops then import and run; otherwise we build.
set -euo pipefail

MMCV_VERSION=2.1.0
PY=${PYTHON:-python}
# absolute path (without resolving a venv's symlink) since the build cd's away
case "$PY" in */*) PY="$(cd "$(dirname "$PY")" && pwd)/$(basename "$PY")";; *) PY=$(command -v "$PY");; esac

torch_ver=$("$PY" -c 'import torch; print(torch.__version__)')
py_tag=$("$PY" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')
if [ -n "${FORCE_CUDA:-}" ] || "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null && command -v nvcc >/dev/null 2>&1; then
  flavour="cuda$("$PY" -c 'import torch; print(torch.version.cuda)')"
  export FORCE_CUDA=1
else
  flavour=cpu
fi
key="mmcv${MMCV_VERSION}-torch${torch_ver}-${py_tag}-${flavour}"
cache_root=${MMLTM_CACHE_DIR:-$HOME/.cache/mmltm}
cache_dir="$cache_root/wheels/$key"

ops_work() {
  "$PY" - <<'PY'
import torch
import mmcv
from mmcv.ops import nms, RoIAlign
assert mmcv.__version__ == '2.1.0', mmcv.__version__
boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 10., 10.], [20., 20., 30., 30.]])
scores = torch.tensor([0.9, 0.8, 0.7])
dets, keep = nms(boxes, scores, 0.5)
assert keep.tolist() == [0, 2], keep
RoIAlign((2, 2), 1.0)(torch.rand(1, 1, 8, 8), torch.tensor([[0., 0., 0., 4., 4.]]))
PY
}

if "$PY" -c 'import mmcv, sys; sys.exit(0 if mmcv.__version__ == "2.1.0" else 1)' 2>/dev/null && ops_work 2>/dev/null; then
  echo "[install_mmcv] mmcv ${MMCV_VERSION} with ops already installed (torch ${torch_ver})"
  exit 0
fi

install_wheel() {  # $1 = wheel path
  "$PY" -m pip install --no-deps --force-reinstall "$1" >/dev/null
  ops_work
}

# 1. an optional wheelhouse named by the user / CI
if [ -n "${MMLTM_WHEELHOUSE:-}" ] && [ -d "${MMLTM_WHEELHOUSE}" ]; then
  wh_torch=""
  [ -f "$MMLTM_WHEELHOUSE/TORCH_VERSION" ] && wh_torch=$(cat "$MMLTM_WHEELHOUSE/TORCH_VERSION")
  case "$(basename "$MMLTM_WHEELHOUSE")" in *"torch${torch_ver%%+*}"*) wh_torch=${wh_torch:-$torch_ver};; esac
  wheel=$(ls "$MMLTM_WHEELHOUSE"/mmcv-${MMCV_VERSION}-${py_tag}-*.whl 2>/dev/null | head -n1 || true)
  if [ -n "$wheel" ] && [ "${wh_torch%%+*}" = "${torch_ver%%+*}" ]; then
    echo "[install_mmcv] trying wheelhouse wheel $wheel"
    if install_wheel "$wheel"; then echo "[install_mmcv] done (wheelhouse)"; exit 0; fi
    echo "[install_mmcv] wheelhouse wheel does not work with torch ${torch_ver}; building instead"
  else
    echo "[install_mmcv] MMLTM_WHEELHOUSE=$MMLTM_WHEELHOUSE has no mmcv ${MMCV_VERSION} wheel for torch ${torch_ver}; ignoring it"
  fi
fi

# 2. our own cache
wheel=$(ls "$cache_dir"/mmcv-${MMCV_VERSION}-*.whl 2>/dev/null | head -n1 || true)
if [ -n "$wheel" ]; then
  echo "[install_mmcv] using cached wheel $wheel"
  if install_wheel "$wheel"; then echo "[install_mmcv] done (cache)"; exit 0; fi
  echo "[install_mmcv] cached wheel is broken; rebuilding"
  rm -f "$wheel"
fi

# 3. build from source
echo "[install_mmcv] building mmcv ${MMCV_VERSION} from source for torch ${torch_ver} (${flavour}); this takes ~17 min on 2 cores"
"$PY" -m pip install 'setuptools>=77,<81' wheel ninja >/dev/null
build_dir=$(mktemp -d)
trap 'rm -rf "$build_dir"' EXIT
"$PY" -m pip download --no-deps --no-binary :all: --no-build-isolation "mmcv==${MMCV_VERSION}" -d "$build_dir" >/dev/null
tar -xzf "$build_dir"/mmcv-${MMCV_VERSION}.tar.gz -C "$build_dir"
src="$build_dir/mmcv-${MMCV_VERSION}"
sed -i -e 's/-std=c++14/-std=c++20/g' -e 's/-std=c++17/-std=c++20/g' "$src/setup.py"
grep -q -- '-std=c++20' "$src/setup.py" || { echo "[install_mmcv] could not patch -std in setup.py" >&2; exit 1; }
mkdir -p "$cache_dir"
(cd "$src" && MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-$(nproc)} "$PY" -m pip wheel --no-build-isolation --no-deps . -w "$build_dir/out")
wheel=$(ls "$build_dir"/out/mmcv-*.whl | head -n1)
cp "$wheel" "$cache_dir/"
echo "$torch_ver" > "$cache_dir/TORCH_VERSION"
install_wheel "$cache_dir/$(basename "$wheel")"
echo "[install_mmcv] done (built and cached in $cache_dir)"
