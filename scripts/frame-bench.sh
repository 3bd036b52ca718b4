#!/usr/bin/env bash
# Frame times of the desktop app in a real window: the demo project with its real and synthetic
# t1 upsampled to SIDE x SIDE pixels (10980, a Sentinel-2 tile's side; the files say so in their
# metadata), opened side by side under Xvfb at 1280x800, panned and zoomed with xdotool for
# SECS seconds, with `s2cr gui --frame-stats`; once with wgpu (on the software Vulkan adapter,
# lavapipe, where there is no GPU) and once with OpenGL (glow, llvmpipe).
# Prints the median and 99th percentile of the frame time (egui's cpu_usage: layout,
# tessellation, the renderer's submission) and of the interval between frames.
#
#   scripts/frame-bench.sh            # needs: Xvfb, xdotool, gdal-bin, python3, a release build
#                                     # (x11-apps and netpbm for a screenshot of the window)
#   SIDE=4096 SECS=10 RENDERERS=glow scripts/frame-bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET=${CARGO_TARGET_DIR:-target}
S2CR=${S2CR:-$TARGET/release/s2cr}
WORK=${WORK:-$HOME/.cache/s2cr/frame-bench}
SIDE=${SIDE:-10980}
SECS=${SECS:-20}
RENDERERS=${RENDERERS:-"wgpu glow"}
for tool in Xvfb xdotool gdal_translate gdaladdo python3; do
    command -v "$tool" >/dev/null || { echo "frame-bench: $tool is missing (apt-get install xvfb xdotool gdal-bin python3)" >&2; exit 1; }
done
[ -x "$S2CR" ] || { echo "frame-bench: no $S2CR; run cargo build --release first (or set S2CR)" >&2; exit 1; }
mkdir -p "$WORK"
PROJECT="$WORK/demo-upsampled-$SIDE"
if [ ! -f "$PROJECT/.upsampled" ]; then
    rm -rf "$WORK/demo" "$PROJECT"
    "$S2CR" -q demo --no-gui "$WORK/demo"
    cp -r "$WORK/demo" "$PROJECT"
    # The pair the app opens side by side, upsampled (bilinear) with overviews, as a tile-sized
    # layer would be read: from its overviews at display size.
    REAL=$(ls "$PROJECT"/preprocessed/*/S2.tif | sort | tail -1)
    for f in "$REAL" "$PROJECT/outputs/demo/synthetic_S2_t1.tif"; do
        echo "upsampling $f to $SIDE x $SIDE"
        gdal_translate -q -outsize "$SIDE" "$SIDE" -r bilinear -co TILED=YES -co COMPRESS=DEFLATE -co PREDICTOR=3 -co BIGTIFF=YES -co NUM_THREADS=ALL_CPUS \
            -mo "S2CR_NOTE=the demo's 256 x 256 image upsampled to $SIDE x $SIDE for a frame-time benchmark; not data" "$f" "$f.big.tif"
        mv "$f.big.tif" "$f"
        gdaladdo -q -r average --config COMPRESS_OVERVIEW DEFLATE --config GDAL_NUM_THREADS ALL_CPUS "$f" 2 4 8 16 32 64
    done
    touch "$PROJECT/.upsampled"
fi
summarise() {
    python3 - "$1" "$2" <<'PY'
import csv, statistics, sys
path, label = sys.argv[1], sys.argv[2]
rows = [r for r in csv.DictReader(open(path)) if r.get("frame_ms") and r.get("interval_ms")]
# The interaction only: frames after the first 8 s (the window opening and the layers loading).
rows = [r for r in rows if float(r["seconds"]) >= 8.0]
if len(rows) < 10:
    sys.exit(f"{label}: only {len(rows)} frames recorded in {path}")
def q(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]
frame = [float(r["frame_ms"]) for r in rows]
interval = [float(r["interval_ms"]) for r in rows]
print(f"{label}: {len(rows)} frames; frame time median {statistics.median(frame):.1f} ms, p99 {q(frame, 99):.1f} ms; "
      f"interval median {statistics.median(interval):.1f} ms ({1000 / statistics.median(interval):.0f} fps), p99 {q(interval, 99):.1f} ms")
PY
}
APP=""; XVFB=""; STATE=""
cleanup() {
    if [ -n "$APP" ]; then kill "$APP" 2>/dev/null || true; fi
    if [ -n "$XVFB" ]; then kill "$XVFB" 2>/dev/null || true; fi
    if [ -n "$STATE" ]; then rm -rf "$STATE"; fi
    APP=""; XVFB=""; STATE=""
}
trap cleanup EXIT
failed=0
for renderer in $RENDERERS; do
    # A display number no X server uses.
    DISPLAY_NUM=90
    while [ -e "/tmp/.X11-unix/X$DISPLAY_NUM" ] || [ -e "/tmp/.X$DISPLAY_NUM-lock" ]; do DISPLAY_NUM=$((DISPLAY_NUM + 1)); done
    Xvfb ":$DISPLAY_NUM" -screen 0 1280x800x24 -nolisten tcp >/dev/null 2>&1 &
    XVFB=$!
    sleep 1
    kill -0 "$XVFB" 2>/dev/null || { echo "frame-bench: Xvfb :$DISPLAY_NUM did not start" >&2; exit 1; }
    # The app's remembered state (recent projects, window) stays out of the user's.
    STATE=$(mktemp -d)
    CSV="$WORK/frames-$renderer-$SIDE.csv"
    DISPLAY=":$DISPLAY_NUM" XDG_DATA_HOME="$STATE" XDG_CONFIG_HOME="$STATE" WGPU_BACKEND=${WGPU_BACKEND:-vulkan} \
        "$S2CR" gui "$PROJECT" --offline --renderer "$renderer" --frame-stats "$CSV" >"$WORK/app-$renderer.log" 2>&1 &
    APP=$!
    export DISPLAY=":$DISPLAY_NUM"
    WIN=$(timeout 30 xdotool search --sync --name sent2-cloud-remover | head -1) || { echo "frame-bench: the window did not open ($renderer); see $WORK/app-$renderer.log" >&2; exit 1; }
    xdotool windowsize "$WIN" 1280 800 windowmove "$WIN" 0 0
    xdotool windowfocus "$WIN" 2>/dev/null || true
    sleep 8
    if command -v xwd >/dev/null && command -v xwdtopnm >/dev/null && command -v pnmtopng >/dev/null; then
        xwd -root -silent | xwdtopnm 2>/dev/null | pnmtopng >"$WORK/window-$renderer-$SIDE-start.png" 2>/dev/null || true
    fi
    # Pan in circles in the left pane, zoom in and out with the wheel, for SECS seconds.
    END=$((SECONDS + SECS))
    CX=700; CY=380
    # A circle of 12 points around (CX, CY), computed once.
    mapfile -t CIRCLE < <(python3 -c "import math; [print(int($CX + 60 * math.cos(a * math.pi / 6)), int($CY + 60 * math.sin(a * math.pi / 6))) for a in range(12)]")
    # Each drag goes round the circle back to where it started, clockwise and counter-clockwise
    # in turn (what egui drops of a drag's start and what inertia adds at its end cancel out),
    # so the view stays over the layers.
    mapfile -t REVERSED < <(printf '%s\n' "${CIRCLE[@]:1}" | tac)
    xdotool mousemove ${CIRCLE[0]}
    TURN=0
    while [ $SECONDS -lt $END ]; do
        xdotool mousedown 1
        if [ $((TURN % 2)) = 0 ]; then PATH_POINTS=("${CIRCLE[@]:1}"); else PATH_POINTS=("${REVERSED[@]}"); fi
        TURN=$((TURN + 1))
        for p in "${PATH_POINTS[@]}" "${CIRCLE[0]}"; do
            xdotool mousemove $p
            sleep 0.02
        done
        # Slow to a stop before letting go (a few 1 px moves): no inertia carries the view away.
        for _ in 1 2 3 4; do
            xdotool mousemove_relative 1 0; sleep 0.04
            xdotool mousemove_relative -- -1 0; sleep 0.04
        done
        xdotool mouseup 1
        [ -n "${NO_ZOOM:-}" ] || xdotool click 4 click 4 click 5 click 5
        # Back over the layers (the Home key zooms to the area): drags and wheel zooms do not
        # quite cancel out, and a view that drifted off the layers would draw less.
        xdotool key Home
        sleep 0.05
    done
    # What the window showed, to look at (xwd and netpbm, when installed).
    if command -v xwd >/dev/null && command -v xwdtopnm >/dev/null && command -v pnmtopng >/dev/null; then
        xwd -root -silent | xwdtopnm 2>/dev/null | pnmtopng >"$WORK/window-$renderer-$SIDE.png" 2>/dev/null && echo "screenshot: $WORK/window-$renderer-$SIDE.png"
    fi
    if ! kill -0 "$APP" 2>/dev/null; then
        echo "frame-bench: the app ended during the run ($renderer); see $WORK/app-$renderer.log" >&2
        failed=1
    fi
    # Closing the window lets the app write its last frames.
    xdotool windowclose "$WIN" 2>/dev/null || true
    for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$APP" 2>/dev/null || break; sleep 0.5; done
    cleanup
    summarise "$CSV" "$renderer ($SIDE x $SIDE layers, side by side, 1280x800)" || failed=1
done
exit $failed
