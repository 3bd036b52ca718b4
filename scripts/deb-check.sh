#!/usr/bin/env bash
# `make deb-check`: installs the package `make deb` built into a throwaway Debian root
# (debootstrap of bookworm, minbase, from the Debian mirror this machine's apt uses; kept as a
# tarball for the next run),
# runs the embedded demo, the man page and a completion script from /usr/bin there, removes the
# package and checks that none of its files is left. Needs root (chroot, mounts) and Debian's
# mirror. Not part of CI: the release build does not fit beside the test build.
set -euo pipefail
debs="${1:?usage: deb-check.sh TARGET_DIR/debian}"
deb="$(ls -t "$debs"/s2cr_*.deb | head -1)"
# The mirror this machine's apt uses (one-line or deb822 sources), unless S2CR_DEBIAN_MIRROR says.
apt_mirror() {
  { grep -hsE '^deb +(\[[^]]*\] +)?https?://' /etc/apt/sources.list /etc/apt/sources.list.d/*.list | sed -E 's/^deb +(\[[^]]*\] +)?//; s/ .*//'
    grep -hsE '^URIs: *https?://' /etc/apt/sources.list.d/*.sources | sed -E 's/^URIs: *//; s/ .*//'
  } | grep -v -i security | head -1
}
mirror="${S2CR_DEBIAN_MIRROR:-$(apt_mirror)}"
[ -n "$mirror" ] || { echo "deb-check: no Debian mirror in /etc/apt/sources*; set S2CR_DEBIAN_MIRROR" >&2; exit 1; }
cache="${S2CR_DEB_CHECK_ROOT:-$HOME/.cache/s2cr/debootstrap-bookworm.tar}"
root="$(mktemp -d /tmp/s2cr-deb-root.XXXXXX)"

cleanup() {
  for m in dev/pts dev proc; do
    if mountpoint -q "$root/$m"; then
      umount "$root/$m" || umount -l "$root/$m" || true
    fi
  done
  # Never recurse into a mount left under the root (the host's /dev, bind-mounted): refuse, and
  # stay on the root's own file system in any case.
  if findmnt -rn -o TARGET | grep -q "^$root/"; then
    echo "deb-check: something is still mounted under $root; not removing it (unmount it, then remove $root)" >&2
    findmnt -rn -o TARGET | grep "^$root/" >&2
    return
  fi
  rm -rf --one-file-system "$root"
}
trap cleanup EXIT

step() { printf '\n== %s\n' "$*"; }

step "a Debian bookworm root in $root"
command -v debootstrap >/dev/null || apt-get install -y -q debootstrap
if [ -f "$cache" ]; then
  tar -C "$root" -xf "$cache"
else
  debootstrap --variant=minbase bookworm "$root" "$mirror"
  mkdir -p "$(dirname "$cache")"
  tar -C "$root" -cf "$cache" .
fi
mount -t proc proc "$root/proc"
mount --bind /dev "$root/dev"
mount --bind /dev/pts "$root/dev/pts"
cp /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true
echo "deb $mirror bookworm main" > "$root/etc/apt/sources.list"

step "installing $(basename "$deb") with its dependencies"
cp "$deb" "$root/tmp/s2cr.deb"
chroot "$root" apt-get update -q
chroot "$root" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends man-db bash-completion /tmp/s2cr.deb
chroot "$root" dpkg -L s2cr | sort > "$root/tmp/s2cr-files.txt"
echo "$(grep -c . "$root/tmp/s2cr-files.txt") paths installed"

step "s2cr --version and doctor"
chroot "$root" /usr/bin/s2cr --version
chroot "$root" /usr/bin/s2cr doctor --offline

step "the embedded demo from /usr/bin"
chroot "$root" env HOME=/root /usr/bin/s2cr demo --no-gui /root/s2cr-demo

step "man s2cr"
chroot "$root" env MANPAGER=cat man s2cr | head -20

step "bash completion"
completed="$(chroot "$root" bash -c 'source /usr/share/bash-completion/completions/s2cr; complete -p s2cr; COMP_WORDS=(s2cr pre); COMP_CWORD=1; _s2cr s2cr pre s2cr; printf "%s\n" "${COMPREPLY[@]}"')"
echo "$completed"
grep -qx preprocess <<< "$completed" || { echo "deb-check: 's2cr pre<TAB>' did not complete to preprocess" >&2; exit 1; }

step "desktop entry"
grep -E '^(Exec|MimeType|Icon)=' "$root/usr/share/applications/s2cr.desktop"

step "removing the package"
chroot "$root" env DEBIAN_FRONTEND=noninteractive apt-get purge -y -q s2cr
left=0
while read -r path; do
  if [ -f "$root$path" ]; then
    echo "left behind: $path"
    left=1
  fi
done < "$root/tmp/s2cr-files.txt"
if [ "$left" -ne 0 ]; then
  echo "deb-check: files of the package remain after its removal" >&2
  exit 1
fi
echo "no file of the package is left"
echo "deb-check: ok"
