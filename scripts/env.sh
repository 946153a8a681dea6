# Source this file (after scripts/setup.sh ran) so that plain `cargo build`, `cargo test` and
# `cargo bench` find libtorch:   . scripts/env.sh
#
# tch's build script asks the environment's python where torch is (LIBTORCH_USE_PYTORCH).
# The link flags bake that library folder into every binary as an rpath, so `yolo3` runs
# without LD_LIBRARY_PATH, and keep libtorch_cuda linked even though no symbol of it is used
# directly (otherwise `--device cuda` finds no CUDA on a GPU machine; tch-rs issue 980).
YOLO3_VENV=${YOLO3_VENV:-$HOME/.cache/yolo3/venv}
if [ ! -x "$YOLO3_VENV/bin/python" ]; then
  echo "env.sh: no environment at $YOLO3_VENV; run scripts/setup.sh first" >&2
  return 1 2>/dev/null || exit 1
fi
export YOLO3_VENV
export VIRTUAL_ENV="$YOLO3_VENV"
case ":$PATH:" in *":$YOLO3_VENV/bin:"*) ;; *) export PATH="$YOLO3_VENV/bin:$PATH" ;; esac
export LIBTORCH_USE_PYTORCH=1
YOLO3_TORCH_LIB=$("$YOLO3_VENV/bin/python" -c "import torch, os; print(os.path.join(os.path.dirname(torch.__file__), 'lib'))")
export YOLO3_TORCH_LIB
export RUSTFLAGS="-C link-arg=-Wl,--no-as-needed -C link-arg=-Wl,-rpath,$YOLO3_TORCH_LIB"
# Doctests are linked by rustdoc, which reads its own variable.
export RUSTDOCFLAGS="$RUSTFLAGS"
