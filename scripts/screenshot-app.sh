#!/usr/bin/env bash
# Starts the real s2cr desktop app under a virtual X server (Xvfb) and saves a screenshot.
#   scripts/screenshot-app.sh [OUT.png] [s2cr arguments, e.g. gui demo-project]
# Needs xvfb-run (package xvfb) and ImageMagick's `import` (package imagemagick).
# S2CR: the binary to run (default: target/release/s2cr, else target/debug/s2cr).
# WAIT: seconds to let the window draw before the capture (default 8).
set -euo pipefail
out="${1:-docs/screenshots/app.png}"
shift || true
target="${CARGO_TARGET_DIR:-target}"
s2cr="${S2CR:-}"
if [ -z "$s2cr" ]; then
  for c in "$target/release/s2cr" "$target/debug/s2cr"; do
    if [ -x "$c" ]; then s2cr="$c"; break; fi
  done
fi
if [ -z "$s2cr" ] || [ ! -x "$s2cr" ]; then
  echo "no s2cr binary found: build one (cargo build --release) or set S2CR=path" >&2
  exit 1
fi
for tool in xvfb-run import; do
  if ! command -v "$tool" >/dev/null; then
    echo "$tool is missing: sudo apt-get install -y xvfb imagemagick" >&2
    exit 1
  fi
done
mkdir -p "$(dirname "$out")"
# The app runs in the background of the X session; the capture is taken once it has drawn.
xvfb-run -a -s "-screen 0 1280x800x24" bash -c '
  "$0" "${@:2}" &
  pid=$!
  sleep "${WAIT:-8}"
  import -window root "$1"
  kill $pid 2>/dev/null || true
  wait $pid 2>/dev/null || true
' "$s2cr" "$out" "$@"
echo "screenshot written to $out"
