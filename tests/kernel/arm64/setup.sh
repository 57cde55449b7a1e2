#!/usr/bin/env bash
# Prepares a Debian machine for the arm64 cross-check (tests/kernel/arm64.rs): adds the arm64
# architecture and the bookworm-backports suite to apt, installs qemu-system-aarch64, the
# aarch64 cross compiler with its glibc (the guest's /init and the exec-stop programs) and
# mkfs.ext4 (the guest's file disk), then fetches the three kernels with fetch-kernels.sh
# into DIR (its default when DIR is not given). Needs root and apt. Exits non-zero, with the
# reason on stderr, when anything cannot be installed or downloaded.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

need=(qemu-system-aarch64 aarch64-linux-gnu-gcc mkfs.ext4 strings xz zstd)
missing=()
for tool in "${need[@]}"; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
[ -e /usr/aarch64-linux-gnu/lib/libc.a ] || missing+=(libc6-dev-arm64-cross)

if ! command -v apt-get >/dev/null 2>&1; then
  if [ ${#missing[@]} -gt 0 ]; then
    echo "arm64 setup: no apt-get here, and ${missing[*]} are missing" >&2
    exit 1
  fi
else
  if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    dpkg --add-architecture arm64
  fi
  # bookworm's 6.12 kernels live in bookworm-backports (and bookworm-security).
  if ! grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
    cat >/etc/apt/sources.list.d/pagesim-backports.sources <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  fi
  apt-get update -qq || {
    echo "arm64 setup: apt-get update failed" >&2
    exit 1
  }
  if [ ${#missing[@]} -gt 0 ]; then
    echo "arm64 setup: installing what provides ${missing[*]}"
    pkgs=(qemu-system-arm gcc-aarch64-linux-gnu libc6-dev-arm64-cross e2fsprogs binutils xz-utils zstd)
    # A machine whose qemu-utils came from bookworm-backports needs qemu-system-arm from
    # there too (the versions must match).
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${pkgs[@]}" \
      >/dev/null 2>&1 ||
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        -t bookworm-backports "${pkgs[@]}" >/dev/null || {
      echo "arm64 setup: apt-get install of ${pkgs[*]} failed" >&2
      exit 1
    }
  fi
fi
"$here/fetch-kernels.sh" "$@"
