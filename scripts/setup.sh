#!/usr/bin/env bash
# Sets up a fresh machine for building and testing concurrent-hamt: checks Node.js and the Rust toolchain,
# installs the Debian packages the scripts use, and fetches every crate (offline builds after).
set -euo pipefail
cd "$(dirname "$0")/.."

for tool in node npm; do
  if ! command -v $tool >/dev/null; then
    echo "setup: $tool not found; install Node.js 20 (with npm) first" >&2
    exit 1
  fi
done
if ! command -v cargo >/dev/null; then
  echo "setup: cargo not found; install Rust with rustup (https://rustup.rs) first" >&2
  exit 1
fi
# The test profile and sanitizer runs need nothing beyond the stable toolchain: the sanitizer
# runtimes ship with rust-std for x86_64-unknown-linux-gnu (enabled with RUSTC_BOOTSTRAP=1).
if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  need=()
  command -v git >/dev/null || need+=(git)
  command -v cc >/dev/null || need+=(gcc)
  if [ ${#need[@]} -gt 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
  fi
fi
cargo fetch --locked
echo "setup: ready ($(cargo --version), $(rustc --version))"
