# Pinned versions of everything the cross builds and tests fetch (sourced by the scripts).
# When Debian or PyPI stops serving one, the scripts fail naming it: update it here.

# Debian bookworm main: rustc 1.85 (the crates' rust-version) with the foreign std.
RUSTC_WEB_VERSION=1.85.0+dfsg3-1~deb12u3
RUSTC_WEB_RELEASE=1.85.0
# Debian bookworm main: Node 18 for arm64, armhf and i386 (N-API 9), run under qemu.
NODE18_VERSION=18.20.4+dfsg-1~deb12u2
# Debian bullseye main: Node 12 (glibc 2.31, N-API 8), for the old-distribution check.
NODE12_VERSION=12.22.12~dfsg-1~deb11u4
# PyPI: zig and cargo-zigbuild, to link against glibc 2.17.
ZIGLANG_VERSION=0.17.1
CARGO_ZIGBUILD_VERSION=0.24.1
# The newest glibc symbol version a binary may need.
GLIBC_MAX=2.17

# Rust target, npm platform, Debian architecture, qemu, cross objdump, linker.
TARGETS="x64 arm64 armv7 ia32"
target_info() {
  case $1 in
    x64) echo "x86_64-unknown-linux-gnu linux-x64-gnu amd64 qemu-x86_64 objdump x86_64-linux-gnu-gcc" ;;
    arm64) echo "aarch64-unknown-linux-gnu linux-arm64-gnu arm64 qemu-aarch64 aarch64-linux-gnu-objdump aarch64-linux-gnu-gcc" ;;
    armv7) echo "armv7-unknown-linux-gnueabihf linux-arm-gnueabihf armhf qemu-arm arm-linux-gnueabihf-objdump arm-linux-gnueabihf-gcc" ;;
    ia32) echo "i686-unknown-linux-gnu linux-ia32-gnu i386 qemu-i386 i686-linux-gnu-objdump i686-linux-gnu-gcc" ;;
    *) echo "cross: unknown target '$1' (one of: $TARGETS)" >&2; return 1 ;;
  esac
}
