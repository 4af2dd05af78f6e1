#!/usr/bin/env bash
# Private apt roots for foreign packages (sourced by the cross scripts).
#
# `dpkg --add-architecture` breaks `apt-get update` on these machines (the security index of
# the foreign architectures fails), so foreign .debs come from a private apt root instead: its
# own source list (the machine's own Debian mirror and keyring, read from its apt sources), its
# own lists and cache, and the architectures it needs. Nothing is installed with dpkg: the
# packages are downloaded and unpacked (`dpkg -x`) into sysroots under target/cross.
#
#   apt_root SUITE ARCHS             # sets up target/cross/apt/SUITE and runs apt-get update
#   apt_fetch SUITE DIR PKG[=V]...   # downloads PKG:ARCH (as given) into DIR
#   unpack DIR SYSROOT               # dpkg -x every .deb of DIR into SYSROOT

CROSS=${CROSS:-$PWD/target/cross}

mirror_uri() {
  local uri=""
  if [ -f /etc/apt/sources.list.d/debian.sources ]; then
    uri=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources)
  fi
  if [ -z "$uri" ] && [ -f /etc/apt/sources.list ]; then
    uri=$(awk '$1 == "deb" {for (i = 2; i <= NF; i++) if ($i ~ /^(http|https|file):/) {print $i; exit}}' /etc/apt/sources.list)
  fi
  if [ -z "$uri" ]; then
    echo "cross: cannot read the Debian mirror from /etc/apt/sources.list.d/debian.sources or /etc/apt/sources.list" >&2
    return 1
  fi
  echo "$uri"
}

apt_root() {
  local suite=$1 archs=$2 root=$CROSS/apt/$1
  if [ -f "$root/updated" ]; then
    return 0
  fi
  local uri keyring=/usr/share/keyrings/debian-archive-keyring.gpg
  uri=$(mirror_uri)
  mkdir -p "$root/lists/partial" "$root/cache/archives/partial" "$root/etc"
  # An empty package status: candidates come from this root's lists only, never from what the
  # machine has installed (which would shadow bullseye's amd64 packages, for instance).
  : > "$root/status"
  echo "deb [arch=$archs signed-by=$keyring] $uri $suite main" > "$root/etc/sources.list"
  local list="" a
  for a in ${archs//,/ }; do list="$list \"$a\";"; done
  cat > "$root/etc/apt.conf" <<CONF
Dir::Etc::SourceList "$root/etc/sources.list";
Dir::Etc::SourceParts "$root/etc/no-parts";
Dir::State::Lists "$root/lists";
Dir::Cache "$root/cache";
Dir::State::status "$root/status";
APT::Architectures {$list };
APT::Sandbox::User "root";
CONF
  echo "cross: apt-get update for $suite ($archs) in $root"
  APT_CONFIG=$root/etc/apt.conf apt-get update -qq
  touch "$root/updated"
}

apt_fetch() {
  local suite=$1 dir=$2
  shift 2
  mkdir -p "$dir"
  (cd "$dir" && APT_CONFIG=$CROSS/apt/$suite/etc/apt.conf apt-get download -qq "$@") || {
    echo "cross: could not download from $suite: $* (is that version still served? see scripts/cross/versions.sh)" >&2
    return 1
  }
}

unpack() {
  local dir=$1 sysroot=$2 deb
  mkdir -p "$sysroot"
  for deb in "$dir"/*.deb; do
    dpkg -x "$deb" "$sysroot"
  done
}
