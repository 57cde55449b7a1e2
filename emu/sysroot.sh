#!/usr/bin/env bash
# Builds the sysroot pagesim-emu runs programs in, into DIR (default: emu/target/sysroot):
# the arm64 glibc of Debian's libc6-arm64-cross (/usr/aarch64-linux-gnu/lib, as /lib), and
# dash (/bin/sh) and coreutils (/bin/cat, …) for arm64 from Debian, so that a program's
# system("cat /proc/N/maps") runs the real shell and cat. A complete DIR is kept.
#
# Needs libc6-arm64-cross installed and apt with the arm64 architecture added
# (`dpkg --add-architecture arm64`; tests/kernel/arm64/setup.sh does both).
set -euo pipefail
dir=${1:-$(cd "$(dirname "$0")" && pwd)/target/sysroot}
if [ -x "$dir/bin/sh" ] && [ -x "$dir/bin/cat" ] && [ -e "$dir/lib/libc.so.6" ]; then
  echo "$dir"
  exit 0
fi
if [ ! -e /usr/aarch64-linux-gnu/lib/libc.so.6 ]; then
  echo "sysroot.sh: no /usr/aarch64-linux-gnu/lib/libc.so.6 (Debian package libc6-arm64-cross)" >&2
  exit 1
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
rm -rf "$dir.new" && mkdir -p "$dir.new"
cp -a /usr/aarch64-linux-gnu/lib "$dir.new/lib"
(cd "$work" && apt-get download -q dash:arm64 coreutils:arm64 >/dev/null 2>"$work/err") || {
  cat "$work/err" >&2
  echo "sysroot.sh: apt-get download dash:arm64 coreutils:arm64 failed" >&2
  exit 1
}
for deb in "$work"/*.deb; do
  dpkg-deb -x "$deb" "$dir.new"
done
rm -rf "$dir" && mv "$dir.new" "$dir"
echo "$dir"
