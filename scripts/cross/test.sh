#!/usr/bin/env bash
# `npm run test:cross`: everything these machines can build and run for the other platforms.
#
#   scripts/cross/test.sh          # all parts, every architecture (about an hour on 2 cores)
#   scripts/cross/test.sh --ci     # CI's part: the x64 and arm64 binaries (glibc check), the
#                                  # install path for both, the arm64 smoke suite under qemu,
#                                  # and Node 12 on x64
#   scripts/cross/test.sh PART...  # some of: rust build pack install old
#   scripts/cross/test.sh --arch arm64,ia32 PART...   # only these architectures
#
# Parts:
#   rust     the Rust workspace's tests for aarch64, armv7 and i686, under qemu user-mode
#            emulation (cargo test --target T with a qemu runner; Debian's rustc 1.85)
#   build    the four Linux binaries for glibc 2.17, with the glibc check (build.sh); the
#            check is also shown to reject a binary linked against this machine's glibc
#   pack     npm pack of the root package and the platform packages; the root tarball must
#            hold no .node file, no Rust sources and no tests
#   install  for each architecture, a fresh project with no Rust on PATH installs the two
#            tarballs and runs the smoke suite (node:test; scripts/cross/smoke) in a Node of
#            that architecture: the machine's Node 20 for x64, Debian's Node 18 under qemu for
#            arm64, armhf and i386; for x64 and arm64 also a CommonJS and an ESM script that
#            share a map between two workers, and a strict TypeScript consumer type check
#   old      Debian 11's Node 12 (glibc 2.31, N-API 8) loads the x64 and arm64 packages and
#            passes the smoke suite's worker-sharing part
#
# Prints one PASS/FAIL line per architecture and part at the end; exits non-zero on a failure.
set -uo pipefail
cd "$(dirname "$0")/../.."
REPO=$PWD
source scripts/cross/versions.sh
CROSS=$REPO/target/cross
export CROSS

parts=()
arches="x64 arm64 armv7 ia32"
if [ "${1:-}" = "--arch" ]; then
  arches=${2//,/ }
  shift 2
fi
if [ "${1:-}" = "--ci" ]; then
  parts=(build pack install old)
  arches="x64 arm64"
  CI_MODE=1
else
  parts=("$@")
  [ ${#parts[@]} -eq 0 ] && parts=(rust build pack install old)
  CI_MODE=0
fi

set -e
bash scripts/cross/setup.sh toolchains
set +e

results=()
failed=0
record() { # record NAME STATUS SECONDS
  results+=("$(printf '%-4s %-34s %5s s' "$2" "$1" "$3")")
  [ "$2" = PASS ] || failed=1
}
step() { # step NAME COMMAND...
  local name=$1 start rc
  shift
  echo
  echo "=== cross: $name"
  start=$(date +%s)
  "$@"
  rc=$?
  if [ $rc -eq 0 ]; then record "$name" PASS $(( $(date +%s) - start )); else record "$name" FAIL $(( $(date +%s) - start )); fi
  return 0
}

# A Node of architecture ARCH from a sysroot: qemu for foreign ones; the sysroot's own
# dynamic loader for amd64 (its libc, not the machine's).
node_in() { # node_in SYSROOT DEBARCH ARGS...
  local root=$1 arch=$2
  shift 2
  case $arch in
    amd64) "$root/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2" \
             --library-path "$root/usr/lib/x86_64-linux-gnu:$root/lib/x86_64-linux-gnu" "$root/usr/bin/node" "$@" ;;
    arm64) qemu-aarch64 -L "$root" "$root/usr/bin/node" "$@" ;;
    armhf) qemu-arm -L "$root" "$root/usr/bin/node" "$@" ;;
    i386) qemu-i386 -L "$root" "$root/usr/bin/node" "$@" ;;
  esac
}

# --- rust --------------------------------------------------------------------------------
rust_tests() { # rust_tests ARCH
  local triple platform debarch qemu _objdump linker gnu env_t
  read -r triple platform debarch qemu _objdump linker <<< "$(target_info "$1")"
  gnu=${linker%-gcc}
  env_t=$(echo "$triple" | tr 'a-z-' 'A-Z_')
  env RUSTC=/usr/bin/rustc "RUSTFLAGS=--sysroot=$CROSS/rust-sysroot/usr" \
    "CARGO_TARGET_${env_t}_LINKER=$linker" \
    "CARGO_TARGET_${env_t}_RUNNER=$qemu -L /usr/$gnu" \
    cargo test --locked --no-fail-fast --target "$triple" --workspace --exclude benches --exclude concurrent-hamt-node \
    --lib --tests --target-dir "$CROSS/cargo"
}

# --- build -------------------------------------------------------------------------------
build_all() {
  local targets
  local targets=$arches
  # shellcheck disable=SC2086
  bash scripts/cross/build.sh $targets || return 1
  # The check must be able to fail: the development build (linked by gcc against this
  # machine's glibc 2.36) needs newer symbols, and is rejected.
  local dev=concurrent-hamt.linux-x64-gnu.node newest
  if [ -f "$dev" ]; then
    newest=$(objdump -T "$dev" | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -n 1)
    if [ "$(printf '%s\n%s\n' "$newest" "$GLIBC_MAX" | sort -V | tail -n 1)" = "$GLIBC_MAX" ]; then
      echo "cross: the glibc check would pass the gcc-built $dev (GLIBC_$newest): it cannot fail?" >&2
      return 1
    fi
    echo "cross: the glibc check rejects the gcc-built development binary (needs GLIBC_$newest): it can fail"
  fi
}

# --- pack --------------------------------------------------------------------------------
pack_all() {
  local dir=$CROSS/pack a platform files
  rm -rf "$dir"
  mkdir -p "$dir"
  if [ ! -f index.js ] || [ ! -f index.d.ts ]; then
    echo "cross: index.js/index.d.ts are not built: run npm install (or npm run build) first" >&2
    return 1
  fi
  # --ignore-scripts: pack what is built (`prepare` would rebuild everything).
  npm pack --silent --ignore-scripts --pack-destination "$dir" >/dev/null || return 1
  files=$(tar tzf "$dir"/concurrent-hamt-[0-9]*.tgz) || return 1
  echo "cross: the root package holds:"
  echo "$files" | sed 's/^/  /'
  if echo "$files" | grep -E '\.node$|\.rs$|Cargo\.toml|__test__|\.test\.|/src/|/scripts/|/crates/|/benches/'; then
    echo "cross: FAIL the root tarball holds a binary, Rust sources, scripts or tests (above)" >&2
    return 1
  fi
  for f in package/index.js package/index.d.ts package/binding.js package/binding.d.ts package/package.json; do
    echo "$files" | grep -qx "$f" || { echo "cross: FAIL the root tarball lacks $f" >&2; return 1; }
  done
  for a in $arches; do
    read -r _ platform _ <<< "$(target_info "$a")"
    if [ ! -f "npm/$platform/concurrent-hamt.$platform.node" ]; then
      echo "cross: npm/$platform has no binary: run the build part first" >&2
      return 1
    fi
    npm pack --silent --ignore-scripts --pack-destination "$dir" "./npm/$platform" >/dev/null || return 1
  done
  ls -la "$dir"
}

# --- install -----------------------------------------------------------------------------
# A PATH with Node and npm and a shell, and no Rust toolchain.
norust_path() {
  local bin=$CROSS/norust-bin t
  mkdir -p "$bin"
  for t in node npm npx sh bash env tar gzip qemu-aarch64 qemu-arm qemu-i386; do
    ln -sf "$(command -v $t)" "$bin/$t"
  done
  echo "$bin"
}

install_project() { # install_project ARCH -> prints the project directory
  local a=$1 platform debarch proj force=()
  read -r _ platform debarch _ <<< "$(target_info "$a")"
  # A foreign architecture's package is installed with --force: npm checks `cpu` against this
  # machine, and its --cpu option does not apply to packages given as files.
  [ "$a" = x64 ] || force=(--force)
  proj=$CROSS/projects/$a
  rm -rf "$proj"
  mkdir -p "$proj"
  cp -r scripts/cross/smoke "$proj/smoke"
  cp scripts/cross/consumer/* examples/consumer/*.mts examples/consumer/*.cts "$proj/"
  (
    cd "$proj" || exit 1
    export PATH
    PATH=$(norust_path)
    if command -v cargo >/dev/null || command -v rustc >/dev/null; then
      echo "cross: a Rust toolchain is still on PATH" >&2
      exit 1
    fi
    echo '{ "name": "fresh-project", "version": "1.0.0", "private": true }' > package.json
    npm install --no-audit --no-fund --loglevel=error "${force[@]}" \
      "$CROSS"/pack/concurrent-hamt-[0-9]*.tgz "$CROSS/pack/concurrent-hamt-$platform-"*.tgz
  ) >&2 || return 1
  echo "$proj"
}

install_test() { # install_test ARCH
  local a=$1 debarch proj tsc=$REPO/node_modules/.bin/tsc
  read -r _ _ debarch _ <<< "$(target_info "$a")"
  proj=$(install_project "$a") || return 1
  local run
  if [ "$a" = x64 ]; then
    run=(node)
  else
    bash scripts/cross/setup.sh node18 "$debarch" || return 1
    run=(node_in "$CROSS/node18-$debarch" "$debarch")
  fi
  (
    cd "$proj" || exit 1
    PATH=$(norust_path)
    "${run[@]}" -e 'const {Hamt} = require("concurrent-hamt"); console.log(`loaded on Node ${process.version} ${process.arch}: ${new Hamt([[1, 2]]).get(1) === 2 ? "ok" : "WRONG"}`)' || exit 1
    # Run directly (node:test reports in-process): `node --test` would spawn process.execPath,
    # which the machine cannot execute without qemu.
    "${run[@]}" smoke/suite.test.js || exit 1
    if [ "$a" = x64 ] || [ "$a" = arm64 ]; then
      "${run[@]}" cjs.js || exit 1
      "${run[@]}" esm.mjs || exit 1
      "$tsc" -p tsconfig.json || exit 1
      echo "cross: the TypeScript consumer type-checks against the installed package"
    fi
  )
}

# --- old ---------------------------------------------------------------------------------
old_test() { # old_test ARCH (x64 or arm64): Debian 11's Node 12
  local a=$1 debarch proj=$CROSS/projects/$1
  read -r _ _ debarch _ <<< "$(target_info "$a")"
  [ -d "$proj/node_modules/concurrent-hamt" ] || proj=$(install_project "$a") || return 1
  bash scripts/cross/setup.sh node12 "$debarch" || return 1
  (cd "$proj" && node_in "$CROSS/node12-$debarch" "$debarch" smoke/node12.js)
}

for part in "${parts[@]}"; do
  case $part in
    rust)
      for a in arm64 armv7 ia32; do
        [[ " $arches " == *" $a "* ]] && step "$a: Rust workspace tests (qemu)" rust_tests "$a"
      done ;;
    build) step "binaries for glibc $GLIBC_MAX + glibc check" build_all ;;
    pack) step "npm pack + tarball contents" pack_all ;;
    install)
      for a in $arches; do step "$a: fresh-project install + smoke" install_test "$a"; done ;;
    old)
      for a in x64 arm64; do
        [[ " $arches " == *" $a "* ]] || continue
        [ "$CI_MODE" = 1 ] && [ "$a" = arm64 ] && continue
        step "$a: Node 12 (Debian 11) sharing" old_test "$a"
      done ;;
    *) echo "cross: unknown part '$part'" >&2; exit 2 ;;
  esac
done

echo
echo "=== cross: results"
printf '%s\n' "${results[@]}"
exit $failed
