#!/usr/bin/env bash
# Fetches the three Debian arm64 kernels the arm64 cross-check boots (tests/kernel/arm64.rs)
# into DIR (default: ${XDG_CACHE_HOME:-$HOME/.cache}/pagesim/arm64-kernels):
#
#   DIR/<name>/vmlinuz        the kernel image
#   DIR/<name>/modules/*.ko   the modules the guest loads (virtio-mmio, virtio-blk, ext4 and
#                             what they depend on), decompressed
#   DIR/<name>/modules/order  their load order
#   DIR/<name>/release        the kernel release string
#   DIR/<name>/wanted         the module list it was fetched with
#
# for <name> in 6.1 (bookworm's linux-image-arm64), 6.12 and 6.12-16k (linux-image-6.12-arm64
# and linux-image-6.12-arm64-16k, in bookworm-security and bookworm-backports). A kernel
# already in DIR is kept (the cache), unless PAGESIM_ARM64_REFRESH=1.
#
# Needs apt with the arm64 architecture added (`dpkg --add-architecture arm64`) and the
# bookworm-backports or bookworm-security suite; binutils' strings and xz.
set -euo pipefail

dir=${1:-${XDG_CACHE_HOME:-$HOME/.cache}/pagesim/arm64-kernels}
mkdir -p "$dir"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The modules each guest loads, besides their dependencies (those built in are skipped).
# ext4's crc32c is a soft dependency (a crypto algorithm looked up by name), so it is named
# here. virtio_console carries the driver's requests (built in since 6.12, a module in 6.1).
wanted="virtio_mmio virtio_blk virtio_console crc32c_generic ext4"

fetch() { # name meta-package
  local name=$1 meta=$2
  # A cached kernel counts only if it was fetched with the same module list.
  if [ -s "$dir/$name/vmlinuz" ] && [ -s "$dir/$name/modules/order" ] &&
    [ "$(cat "$dir/$name/wanted" 2>/dev/null)" = "$wanted" ] && [ "${PAGESIM_ARM64_REFRESH:-0}" != 1 ]; then
    echo "arm64 kernel $name: cached ($(cat "$dir/$name/release"))"
    return
  fi
  local image
  image=$(apt-cache depends "$meta:arm64" 2>/dev/null | awk '/Depends: linux-image-/ {print $2; exit}')
  image=${image%:arm64}
  if [ -z "$image" ]; then
    echo "arm64 kernel $name: apt knows no package $meta:arm64 (is the arm64 architecture added and the suite in the sources?)" >&2
    return 1
  fi
  # The unsigned package holds the same image without the signed EFI stub's wrapper package.
  local pkg="$image-unsigned"
  apt-cache show "$pkg:arm64" >/dev/null 2>&1 || pkg=$image
  echo "arm64 kernel $name: downloading $pkg"
  (cd "$work" && rm -f ./*.deb && apt-get download -q "$pkg:arm64" >/dev/null 2>"$work/err") || {
    cat "$work/err" >&2
    echo "arm64 kernel $name: the download of $pkg:arm64 failed" >&2
    return 1
  }
  rm -rf "$work/x" && mkdir "$work/x"
  dpkg-deb -x "$work"/*.deb "$work/x"
  local release
  release=$(ls "$work/x/lib/modules")
  local mods="$work/x/lib/modules/$release/kernel"
  rm -rf "$dir/$name.new" && mkdir -p "$dir/$name.new/modules"
  cp "$work/x/boot/vmlinuz-$release" "$dir/$name.new/vmlinuz"
  echo "$release" >"$dir/$name.new/release"
  echo "$wanted" >"$dir/$name.new/wanted"
  # Resolve dependencies from each module's .modinfo (depends=a,b), depth first, so that
  # every module comes after what it needs.
  declare -A done=()
  local order=()
  add() {
    local m=$1 f
    [ -n "${done[$m]:-}" ] && return 0
    done[$m]=1
    f=$(find "$mods" -name "$m.ko" -o -name "$m.ko.xz" -o -name "$m.ko.zst" | head -1)
    if [ -z "$f" ]; then
      # Built in (no module file): nothing to load.
      return 0
    fi
    local out="$dir/$name.new/modules/$m.ko"
    case $f in
      *.xz) xz -dc "$f" >"$out" ;;
      *.zst) zstd -qdc "$f" >"$out" ;;
      *) cp "$f" "$out" ;;
    esac
    local deps
    deps=$(strings -a "$out" | sed -n 's/^depends=//p' | head -1)
    for d in ${deps//,/ }; do
      add "${d//-/_}"
    done
    order+=("$m.ko")
  }
  for m in $wanted; do add "$m"; done
  printf '%s\n' "${order[@]}" >"$dir/$name.new/modules/order"
  rm -rf "${dir:?}/$name" && mv "$dir/$name.new" "$dir/$name"
  echo "arm64 kernel $name: $release, modules: ${order[*]}"
}

fetch 6.1 linux-image-arm64
fetch 6.12 linux-image-6.12-arm64
fetch 6.12-16k linux-image-6.12-arm64-16k
echo "$dir"
