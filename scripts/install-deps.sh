#!/usr/bin/env bash
# Installs the system packages s2cr needs to build, test and run on Debian 12 / Ubuntu 22.04+:
# runtime libraries and a C toolchain only (no -dev package but the C library's). Installs only
# what is missing; uses apt-get as root or through sudo, otherwise prints the command.
# With --test, also what only the tests use (GDAL's command-line tools, Xvfb, Chromium).
set -euo pipefail

# apt-get as root, through password-less sudo, or not at all.
if [ "$(id -u)" -eq 0 ]; then
  as_root=()
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
  as_root=(sudo)
else
  as_root=(false)
fi
updated=0
update() {
  if [ "$updated" -eq 0 ] && [ "${as_root[0]:-}" != false ]; then
    "${as_root[@]}" apt-get update -qq
    updated=1
  fi
}
installed() {
  dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"
}

# GDAL's runtime library: libgdal32 on Debian 12, libgdal30/34 on Ubuntu 22.04/24.04, libgdal36
# on Debian 13. The build needs no libgdal-dev: scripts/gdal-env.sh points the gdal crate at its
# prebuilt bindings for the library's version (the Makefile does so for every build); where
# libgdal-dev is installed, it is used as it is.
gdal_runtime() {
  local name
  name=$(dpkg-query -W -f='${Package} ${Status}\n' 'libgdal[0-9]*' 2>/dev/null | awk '/install ok installed/ { print $1 }' | sort -V | tail -n1)
  if [ -z "$name" ]; then
    [ -n "$(apt-cache pkgnames libgdal 2>/dev/null)" ] || update
    name=$(apt-cache pkgnames libgdal 2>/dev/null | grep -E '^libgdal[0-9]+$' | sort -V | tail -n1 || true)
  fi
  echo "${name:-libgdal-dev}"
}

packages=(
  # a C compiler and linker (for Rust and the -sys crates), GDAL's runtime library
  build-essential "$(gdal_runtime)"
  # desktop app and GPU code: X11/Wayland client libraries, EGL/GL, Vulkan (with Mesa's
  # software drivers, so wgpu runs without a GPU)
  libxkbcommon-x11-0 libxcursor1 libxrandr2 libxi6 libx11-xcb1 libegl1 libegl-mesa0 libgl1-mesa-dri
  libvulkan1 mesa-vulkan-drivers
)
if [ "${1:-}" = "--test" ]; then
  # the tests compare against GDAL's command-line tools, run the app under Xvfb and render the
  # HTML report in Chromium
  packages+=(gdal-bin xvfb xauth chromium)
fi

missing=()
for p in "${packages[@]}"; do
  installed "$p" || missing+=("$p")
done

if ((${#missing[@]})); then
  echo "Installing missing system packages: ${missing[*]}"
  if [ "${as_root[0]:-}" = false ]; then
    echo "Cannot install packages without root. Run:" >&2
    echo "  sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
  update
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi

if ! command -v cargo >/dev/null; then
  echo "Rust is not installed. Install it from https://rustup.rs (Rust 1.95 or newer), then run this again." >&2
  exit 1
fi
