#!/usr/bin/env bash
# Installs what the cross builds and tests need on a new machine (idempotent):
#
#   scripts/cross/setup.sh toolchains     # gcc cross linkers, qemu-user, rustc 1.85 with the
#                                         # foreign std in a sysroot, zig + cargo-zigbuild
#   scripts/cross/setup.sh node18 ARCH    # Debian's Node 18 for arm64|armhf|i386, unpacked
#   scripts/cross/setup.sh node12 ARCH    # Debian 11's Node 12 for amd64|arm64, unpacked
#
# Everything lands under target/cross (see apt.sh for why nothing foreign goes through dpkg).
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/cross/versions.sh
source scripts/cross/apt.sh

toolchains() {
  local need=()
  for p in qemu-user gcc-aarch64-linux-gnu gcc-arm-linux-gnueabihf gcc-i686-linux-gnu \
           libc6-dev-arm64-cross libc6-dev-armhf-cross libc6-dev-i386-cross python3-venv; do
    dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
  done
  if [ "$(dpkg-query -W -f='${Version}' rustc-web 2>/dev/null)" != "$RUSTC_WEB_VERSION" ]; then
    need+=("rustc-web=$RUSTC_WEB_VERSION" "libstd-rust-web-dev=$RUSTC_WEB_VERSION")
  fi
  if [ ${#need[@]} -gt 0 ]; then
    echo "cross: apt-get install ${need[*]}"
    apt-get update -qq
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"; then
      echo "cross: could not install ${need[*]}: if rustc-web $RUSTC_WEB_VERSION is no longer served by bookworm, pin another 1.85 build in scripts/cross/versions.sh" >&2
      exit 1
    fi
  fi
  local v
  v=$(/usr/bin/rustc --version 2>/dev/null | awk '{print $2}')
  if [ "$v" != "$RUSTC_WEB_RELEASE" ]; then
    echo "cross: /usr/bin/rustc is '$v', expected $RUSTC_WEB_RELEASE (Debian's rustc-web $RUSTC_WEB_VERSION)" >&2
    exit 1
  fi
  if [ ! -d "$CROSS/rust-sysroot/usr/lib/rustlib/aarch64-unknown-linux-gnu" ] ||
     [ ! -d "$CROSS/rust-sysroot/usr/lib/rustlib/armv7-unknown-linux-gnueabihf" ] ||
     [ ! -d "$CROSS/rust-sysroot/usr/lib/rustlib/i686-unknown-linux-gnu" ]; then
    apt_root bookworm arm64,armhf,i386
    for a in arm64 armhf i386; do
      rm -rf "$CROSS/debs/rust-$a"
      apt_fetch bookworm "$CROSS/debs/rust-$a" "libstd-rust-web-dev:$a=$RUSTC_WEB_VERSION"
      unpack "$CROSS/debs/rust-$a" "$CROSS/rust-sysroot"
    done
  fi
  if [ ! -x "$CROSS/venv/bin/cargo-zigbuild" ]; then
    python3 -m venv "$CROSS/venv"
    if ! "$CROSS/venv/bin/pip" install -q "ziglang==$ZIGLANG_VERSION" "cargo-zigbuild==$CARGO_ZIGBUILD_VERSION"; then
      echo "cross: PyPI did not serve ziglang $ZIGLANG_VERSION / cargo-zigbuild $CARGO_ZIGBUILD_VERSION: update scripts/cross/versions.sh" >&2
      exit 1
    fi
  fi
}

node18() {
  local a=$1 root=$CROSS/node18-$1
  [ -x "$root/usr/bin/node" ] && return 0
  apt_root bookworm arm64,armhf,i386
  local pkgs=("nodejs:$a=$NODE18_VERSION" "libnode108:$a=$NODE18_VERSION")
  for p in libbrotli1 libc-ares2 libc6 libgcc-s1 libicu72 libnghttp2-14 libssl3 libstdc++6 libuv1 zlib1g; do
    pkgs+=("$p:$a")
  done
  # Architecture-independent, and each fatal when missing ("Cannot load externalized builtin").
  pkgs+=(node-acorn node-cjs-module-lexer node-undici)
  rm -rf "$CROSS/debs/node18-$a"
  apt_fetch bookworm "$CROSS/debs/node18-$a" "${pkgs[@]}"
  unpack "$CROSS/debs/node18-$a" "$root"
}

node12() {
  local a=$1 root=$CROSS/node12-$1
  [ -x "$root/usr/bin/node" ] && return 0
  apt_root bullseye amd64,arm64
  local pkgs=("nodejs:$a=$NODE12_VERSION" "libnode72:$a=$NODE12_VERSION")
  for p in libbrotli1 libc-ares2 libc6 libgcc-s1 libicu67 libnghttp2-14 libssl1.1 libstdc++6 libuv1 zlib1g; do
    pkgs+=("$p:$a")
  done
  rm -rf "$CROSS/debs/node12-$a"
  apt_fetch bullseye "$CROSS/debs/node12-$a" "${pkgs[@]}"
  unpack "$CROSS/debs/node12-$a" "$root"
}

case "${1:-}" in
  toolchains) toolchains ;;
  node18) node18 "$2" ;;
  node12) node12 "$2" ;;
  *) echo "usage: $0 toolchains | node18 ARCH | node12 ARCH" >&2; exit 2 ;;
esac
