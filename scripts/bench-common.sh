# Sourced by the bench-*.sh scripts: the project environment, a temporary folder `$work`
# removed on exit, and `bench_python_deps MODULES -- PACKAGES`, which installs PyPI packages
# that only benchmarks use (the peers' image decoders) into their own folder, not the venv.
. scripts/env.sh
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
bench_deps=${YOLO3_BENCH_DEPS:-$HOME/.cache/yolo3/bench-deps}
export PYTHONPATH="$bench_deps${PYTHONPATH:+:$PYTHONPATH}"

bench_python_deps() { # import-names... -- pip-packages...
  local modules=() packages=()
  while [ $# -gt 0 ] && [ "$1" != -- ]; do modules+=("$1"); shift; done
  shift
  packages=("$@")
  local imports; imports=$(IFS=,; echo "${modules[*]}")
  if ! "$YOLO3_VENV/bin/python" -c "import $imports" 2>/dev/null; then
    echo "$(basename "$0"): installing ${packages[*]} into $bench_deps" >&2
    "$YOLO3_VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
      --target "$bench_deps" "${packages[@]}"
  fi
}
