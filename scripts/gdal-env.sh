#!/usr/bin/env bash
# Prints the environment that lets the gdal-sys crate build against GDAL's runtime library alone
# (Debian's libgdalNN, without libgdal-dev and pkg-config): gdal-sys then takes its prebuilt
# bindings for the installed GDAL's version (GDAL_VERSION) and links the library through a
# `libgdal.so` link made in DIR (GDAL_LIB_DIR). Prints nothing where pkg-config finds GDAL's
# development files (they are used as they are). Used as:  eval "$(bash scripts/gdal-env.sh DIR)"
set -euo pipefail
dir="${1:-target/gdal-link}"
if command -v pkg-config >/dev/null 2>&1 && pkg-config --exists gdal 2>/dev/null; then
  exit 0
fi
lib=$( (/sbin/ldconfig -p 2>/dev/null || ldconfig -p 2>/dev/null || true) | awk '/libgdal\.so\.[0-9]+ .*x86-64|libgdal\.so\.[0-9]+ .*AArch64/ { print $NF; exit }')
if [ -z "$lib" ]; then
  for d in /usr/lib/x86_64-linux-gnu /usr/lib/aarch64-linux-gnu /usr/lib64 /usr/lib /usr/local/lib; do
    lib=$(ls "$d"/libgdal.so.[0-9]* 2>/dev/null | sort | head -n1 || true)
    [ -n "$lib" ] && break
  done
fi
if [ -z "$lib" ]; then
  echo "gdal-env: GDAL's runtime library (libgdal.so.NN) is not installed: run scripts/install-deps.sh" >&2
  exit 1
fi
# The GDAL version: of the Debian package that holds the library, else from the library's name
# (libgdal.so.32.3.6.2).
version=""
if command -v dpkg-query >/dev/null 2>&1; then
  pkg=$(dpkg-query -S "$(readlink -f "$lib")" 2>/dev/null | head -n1 | cut -d: -f1 || true)
  [ -n "$pkg" ] && version=$(dpkg-query -W -f='${Version}' "$pkg" 2>/dev/null | sed -E 's/^[0-9]+://; s/^([0-9]+\.[0-9]+\.[0-9]+).*/\1/')
fi
if ! [[ "$version" =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]]; then
  version=$(basename "$(readlink -f "$lib")" | sed -nE 's/^libgdal\.so\.[0-9]+\.([0-9]+\.[0-9]+\.[0-9]+)$/\1/p')
fi
if ! [[ "$version" =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]]; then
  echo "gdal-env: cannot tell the version of $lib: install libgdal-dev (pkg-config then tells it)" >&2
  exit 1
fi
mkdir -p "$dir"
ln -sfn "$lib" "$dir/libgdal.so"
dir=$(cd "$dir" && pwd)
echo "export GDAL_VERSION=$version GDAL_LIB_DIR=$dir"
