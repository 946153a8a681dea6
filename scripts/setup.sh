#!/usr/bin/env bash
# Installs what yolo3 needs beyond the Rust toolchain: libtorch, taken from the PyPI wheel
# torch==2.13.0 (the version tch 0.26 binds), in a virtual environment kept outside the
# checkout so that every clone and CI run on this machine reuses it; and h5py there, for the
# tests' keras .h5 fixtures (reading .h5 needs no HDF5 library: yolo3 reads it in Rust).
#
# Also FFmpeg for video (crates/yolo3-video): Debian's libav*-dev packages, pkg-config and
# libclang (ffmpeg-sys-next generates its bindings with bindgen), and the ffmpeg program, which
# the video tests use to make a lossless test video; installed with apt-get when missing.
#
#   YOLO3_VENV   where the environment lives (default: ~/.cache/yolo3/venv)
#
# Idempotent: when the right torch is already importable it only prints where it is.
set -euo pipefail

TORCH_VERSION=2.13.0
FFMPEG_PACKAGES=(libavcodec-dev libavformat-dev libavutil-dev libswscale-dev libavdevice-dev
  libavfilter-dev libswresample-dev pkg-config libclang-dev ffmpeg)

have_ffmpeg() {
  command -v ffmpeg >/dev/null && command -v pkg-config >/dev/null &&
    pkg-config --exists libavcodec libavformat libavutil libswscale libavdevice &&
    ls /usr/lib/llvm-*/lib/libclang.so* >/dev/null 2>&1
}
if ! have_ffmpeg; then
  echo "setup: installing FFmpeg's libraries with apt-get (${FFMPEG_PACKAGES[*]})" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update -q >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q "${FFMPEG_PACKAGES[@]}" >&2
  have_ffmpeg || { echo "setup: FFmpeg's development files are still missing" >&2; exit 1; }
fi
venv=${YOLO3_VENV:-$HOME/.cache/yolo3/venv}
python=${PYTHON:-python3}

have_torch() {
  [ -x "$venv/bin/python" ] &&
    "$venv/bin/python" -c "import torch,numpy,sys; sys.exit(0 if torch.__version__.split('+')[0]=='$TORCH_VERSION' else 1)" 2>/dev/null
}

if ! have_torch; then
  echo "setup: installing torch==$TORCH_VERSION into $venv (about 3.5 GB, once per machine)" >&2
  mkdir -p "$(dirname "$venv")"
  [ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
  # The wheel's CPU library links against its CUDA runtime packages, so install with
  # dependencies; the same install then also runs on a GPU.
  "$venv/bin/pip" install --quiet --disable-pip-version-check "torch==$TORCH_VERSION" numpy
  have_torch || { echo "setup: torch $TORCH_VERSION is still not importable from $venv" >&2; exit 1; }
fi
# h5py for scripts/gen-keras-h5.py, which writes the keras-yolo3 .h5 test fixtures.
if ! "$venv/bin/python" -c "import h5py" 2>/dev/null; then
  echo "setup: installing h5py into $venv (test fixtures of keras .h5 weights)" >&2
  "$venv/bin/pip" install --quiet --disable-pip-version-check h5py
fi
# onnxruntime for the tests of `yolo3 export --format onnx` (scripts/onnx_case_check.py).
if ! "$venv/bin/python" -c "import onnxruntime" 2>/dev/null; then
  echo "setup: installing onnxruntime into $venv (tests of the ONNX export)" >&2
  "$venv/bin/pip" install --quiet --disable-pip-version-check onnxruntime
fi
"$venv/bin/python" -c "import torch, os; print('setup: libtorch', torch.__version__, 'at', os.path.join(os.path.dirname(torch.__file__), 'lib'))" >&2
