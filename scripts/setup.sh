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
# For distributed training (crates/yolo3-dist) the C++ shim includes c10d's headers, which the
# wheel ships without those of the libraries they name: Gloo's headers from Debian's
# libgloo-dev (the shim only passes Gloo's objects by pointer; the code is libtorch's own), and
# for the NCCL backend CUDA's CCCL and CRT headers from PyPI (nvidia-cuda-cccl, nvidia-cuda-crt)
# at the CUDA runtime version the wheel brought.
#
#   YOLO3_VENV   where the environment lives (default: ~/.cache/yolo3/venv)
#
# Idempotent: when the right torch is already importable it only prints where it is.
set -euo pipefail

TORCH_VERSION=2.13.0
SYSTEM_PACKAGES=(libavcodec-dev libavformat-dev libavutil-dev libswscale-dev libavdevice-dev
  libavfilter-dev libswresample-dev pkg-config libclang-dev ffmpeg libgloo-dev)

have_system_packages() {
  command -v ffmpeg >/dev/null && command -v pkg-config >/dev/null &&
    pkg-config --exists libavcodec libavformat libavutil libswscale libavdevice &&
    ls /usr/lib/llvm-*/lib/libclang.so* >/dev/null 2>&1 && [ -f /usr/include/gloo/algorithm.h ]
}
if ! have_system_packages; then
  echo "setup: installing FFmpeg's libraries and Gloo's headers with apt-get (${SYSTEM_PACKAGES[*]})" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update -q >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q "${SYSTEM_PACKAGES[@]}" >&2
  have_system_packages || { echo "setup: FFmpeg's or Gloo's development files are still missing" >&2; exit 1; }
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
# CUDA's CCCL and CRT headers, which c10d's NCCL header needs through ATen's CUDA headers; the
# version is the CUDA runtime's that torch brought (13.0.x -> 13.0.*).
cuda_runtime=$("$venv/bin/python" -c "import importlib.metadata as m; print(m.version('nvidia-cuda-runtime'))" 2>/dev/null || true)
if [ -n "$cuda_runtime" ] && ! "$venv/bin/python" -c "import importlib.metadata as m; m.version('nvidia-cuda-cccl'); m.version('nvidia-cuda-crt')" 2>/dev/null; then
  series=$(echo "$cuda_runtime" | cut -d. -f1,2)
  echo "setup: installing CUDA's header packages $series.* into $venv (the NCCL backend of distributed training)" >&2
  "$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps "nvidia-cuda-cccl==$series.*" "nvidia-cuda-crt==$series.*"
fi
"$venv/bin/python" -c "import torch, os; print('setup: libtorch', torch.__version__, 'at', os.path.join(os.path.dirname(torch.__file__), 'lib'))" >&2
