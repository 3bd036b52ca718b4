#!/usr/bin/env bash
# Installs the system packages s2cr needs to build, test and run on Debian 12 / Ubuntu 22.04+.
# Installs only what is missing; uses apt-get as root or through sudo, otherwise prints the command.
# With --test, also what only the tests use (Chromium, to render the HTML report headless).
set -euo pipefail

packages=(
  # build: GDAL headers and pkg-config for the gdal crate, a C compiler for -sys crates
  build-essential pkg-config libgdal-dev
  # tests compare against the GDAL command-line tools
  gdal-bin
  # desktop app and GPU code: X11/Wayland client libraries, EGL/GL, Vulkan (with Mesa's
  # software drivers, so wgpu runs without a GPU), and Xvfb for headless app tests
  libxkbcommon-x11-0 libxcursor1 libxrandr2 libxi6 libx11-xcb1 libegl1 libegl-mesa0 libgl1-mesa-dri
  libvulkan1 mesa-vulkan-drivers xvfb xauth
)
if [ "${1:-}" = "--test" ]; then
  packages+=(chromium)
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]})); then
  echo "Installing missing system packages: ${missing[*]}"
  if [ "$(id -u)" -eq 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
  elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    sudo apt-get update -qq
    sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
  else
    echo "Cannot install packages without root. Run:" >&2
    echo "  sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
fi

if ! command -v cargo >/dev/null; then
  echo "Rust is not installed. Install it from https://rustup.rs (Rust 1.95 or newer), then run this again." >&2
  exit 1
fi
