#!/usr/bin/env bash
# `npm run build:cross [-- TARGET...]`: the prebuilt binaries of the npm package, for glibc
# 2.17 and newer, each placed in its platform package under npm/:
#
#   x64    x86_64-unknown-linux-gnu        npm/linux-x64-gnu      rustup's stable rustc
#   arm64  aarch64-unknown-linux-gnu       npm/linux-arm64-gnu    Debian's rustc 1.85
#   armv7  armv7-unknown-linux-gnueabihf   npm/linux-arm-gnueabihf    (with the foreign std
#   ia32   i686-unknown-linux-gnu          npm/linux-ia32-gnu          from a sysroot)
#
# Linked by zig (cargo-zigbuild, through napi build -x) against glibc 2.17, as napi-rs's own
# packages are; then every binary is checked: no GLIBC_ symbol version newer than 2.17.
# Installs what it needs first (scripts/cross/setup.sh toolchains).
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/cross/versions.sh
CROSS=$PWD/target/cross

bash scripts/cross/setup.sh toolchains
export PATH=$CROSS/venv/bin:$PATH
targets=("$@")
[ ${#targets[@]} -eq 0 ] && read -r -a targets <<< "$TARGETS"

# The newest GLIBC_ version FILE needs, checked against GLIBC_MAX.
check_glibc() {
  local file=$1 objdump=$2 newest
  newest=$($objdump -T "$file" | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -n 1)
  if [ -z "$newest" ]; then
    echo "cross: $file: no GLIBC_ symbol versions found (not a glibc binary?)" >&2
    return 1
  fi
  if [ "$(printf '%s\n%s\n' "$newest" "$GLIBC_MAX" | sort -V | tail -n 1)" != "$GLIBC_MAX" ]; then
    echo "cross: FAIL $file needs GLIBC_$newest, newer than GLIBC_$GLIBC_MAX" >&2
    $objdump -T "$file" | grep -E "GLIBC_$newest" >&2 || true
    return 1
  fi
  echo "cross: glibc check passed: $(basename "$file") needs at most GLIBC_$newest (limit $GLIBC_MAX)"
}

for t in "${targets[@]}"; do
  read -r triple platform _ _ objdump _ <<< "$(target_info "$t")"
  out=$CROSS/out/$t
  rm -rf "$out"
  mkdir -p "$out"
  start=$(date +%s)
  if [ "$t" = x64 ]; then
    # rustup's toolchain; a target dir of its own (the zig-linked build must not replace the
    # development build in target/release).
    env_args=()
    target_dir=$CROSS/cargo-x64
  else
    # Debian's rustc 1.85: RUSTFLAGS reach only the target's crates (with --target), so build
    # scripts and proc-macros use Debian's own x86_64 std.
    env_args=(RUSTC=/usr/bin/rustc "RUSTFLAGS=--sysroot=$CROSS/rust-sysroot/usr")
    target_dir=$CROSS/cargo
  fi
  echo "=== cross: building $platform ($triple, glibc $GLIBC_MAX)"
  env "${env_args[@]}" node_modules/.bin/napi build --platform --release -x \
    --target "$triple.$GLIBC_MAX" \
    --manifest-path crates/node/Cargo.toml --package-json-path package.json \
    --target-dir "$target_dir" --output-dir "$out" --no-js --dts "$out/binding.d.ts"
  file=$out/concurrent-hamt.$platform.node
  if [ ! -f "$file" ]; then
    echo "cross: napi build made no $file" >&2
    ls -la "$out" >&2
    exit 1
  fi
  check_glibc "$file" "$objdump"
  cp "$file" "npm/$platform/"
  echo "cross: $platform built in $(( $(date +%s) - start )) s -> npm/$platform/$(basename "$file")"
done
