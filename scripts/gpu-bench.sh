#!/usr/bin/env bash
# The model benchmark on GPUs, in one run: Burn on wgpu (Vulkan) and on CUDA, PyTorch on CUDA,
# and Burn on the CPU for scale; same shapes and loop as `s2cr bench --what model`.
#
#   scripts/gpu-bench.sh build   builds s2cr-model-bench (Burn only: no GDAL, no GUI) with the
#                                CUDA backend, stripped, into dist/gpu-bench/ (needs Rust and,
#                                once, github.com for Burn's LLVM bundle; not the CUDA toolkit:
#                                the driver is loaded at run time)
#   scripts/gpu-bench.sh run     runs it (and PyTorch, where `python3 -c "import torch"` works
#                                and sees a GPU) on this machine; needs no Rust and no GDAL
#   scripts/gpu-bench.sh         both
#
# What travels is dist/gpu-bench/ (about 20 MB: the binary xz-compressed, and the PyTorch script).
#
# Settings: SIZE (patch side, 256), REPEATS (3), DEVICES (gpu,cuda,cpu), PYTHON (python3),
# FEATURES (cargo features of the build, "cuda"; empty for a wgpu + CPU build),
# LIMIT (seconds per device, 240: a first CUDA run compiles and tunes its kernels),
# CARGO_TARGET_DIR (default: ~/.cache/s2cr/target-gpu, apart from the main build: the cuda
# feature changes Burn's features, and sharing one folder would rebuild Burn each time).
set -euo pipefail
cd "$(dirname "$0")/.."
out=dist/gpu-bench
packed="$out/s2cr-model-bench.xz"
features="${FEATURES-cuda}"
size="${SIZE:-256}"
repeats="${REPEATS:-3}"
limit="${LIMIT:-240}"

build() {
  export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/s2cr/target-gpu}"
  if ! cargo build --release --locked --no-default-features --features "$features" --bin s2cr-model-bench; then
    cat >&2 <<'MSG'
The CUDA build failed. Burn 0.22's CUDA backend links an LLVM 23.1 bundle that its build
script (crate tracel-llvm-bundler) downloads from
https://github.com/tracel-ai/tracel-llvm/releases/download/v23.1.0-4/ into ~/.local/share/tracel/
on first use: build where github.com is reachable, or copy ~/.local/share/tracel/ from a machine
that built it. The CUDA toolkit itself is not needed to build.
MSG
    exit 1
  fi
  mkdir -p "$out"
  tmp="$(mktemp -d)"
  cp "$CARGO_TARGET_DIR/release/s2cr-model-bench" "$tmp/s2cr-model-bench"
  strip "$tmp/s2cr-model-bench" 2>/dev/null || true
  xz -T0 -6 -c "$tmp/s2cr-model-bench" > "$packed.tmp"
  cp scripts/bench_pytorch.py "$out/bench_pytorch.py"
  mv "$packed.tmp" "$packed"
  echo "built $packed (features: ${features:-none}; $(du -h "$tmp/s2cr-model-bench" | cut -f1) stripped, $(du -h "$packed" | cut -f1) packed)"
  echo "carry dist/gpu-bench to the GPU machine and run there: scripts/gpu-bench.sh run"
  rm -rf "$tmp"
}

run() {
  if [ ! -f "$packed" ]; then
    echo "no $packed: run scripts/gpu-bench.sh build first (on a machine with Rust)" >&2
    exit 2
  fi
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  bin="$work/s2cr-model-bench"
  xz -d -c "$packed" > "$bin"
  chmod +x "$bin"
  echo "== machine"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || echo "nvidia-smi: not found"
  echo "CPU: $(nproc) threads, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
  echo "== Burn (s2cr-model-bench), ${size} px patches, batch 1"
  IFS=',' read -r -a devices <<< "${DEVICES:-gpu,cuda,cpu}"
  for d in "${devices[@]}"; do
    # One device a process: a device that hangs or crashes costs its own row only.
    timeout "$limit" "$bin" --size "$size" --repeats "$repeats" --device "$d" \
      || echo "  $d: no figures (exit $?: failed, or over ${limit} s)"
  done
  echo "== PyTorch on CUDA, same shapes and loop"
  py="${PYTHON:-python3}"
  if "$py" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 3)" 2>/dev/null; then
    timeout "$limit" "$py" "$out/bench_pytorch.py" --size "$size" --repeats "$repeats" --device cuda \
      || echo "  PyTorch: no figures (exit $?)"
  else
    echo "  skipped: $py has no PyTorch that sees a CUDA GPU (pip install -r scripts/requirements-bench.txt)"
  fi
}

case "${1:-all}" in
  build) build ;;
  run) run ;;
  all) build && run ;;
  *) echo "usage: scripts/gpu-bench.sh [build|run|all]" >&2; exit 2 ;;
esac
