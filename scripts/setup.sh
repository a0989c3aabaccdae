#!/usr/bin/env bash
# scanscope setup: installs everything a fresh Debian machine of this project's kind lacks to
# build, test and demo scanscope. Idempotent: when everything is present it only checks (seconds).
#
#   scripts/setup.sh            # as root (apt-get needs it)
#
# What it installs:
#   * Debian packages: real scanners (nmap, masscan, zmap, hping3), traffic tools (netsniff-ng,
#     tcpreplay, tcpdump), iproute2, bpftool, pkg-config/libelf for tooling; the clients the
#     responder tests talk to it with (hydra, openssl, ssh, mariadb, redis-cli, mosquitto_pub, psql)
#     and an sshd the pass-through test runs in a lab namespace (never started on the host).
#   * rust-src for the nightly toolchain (the eBPF crate is built with -Z build-std=core).
#   * bpf-linker, built against the nightly's own libLLVM (see shared notes/toolchain.md).
#   * qemu-system-x86, cpio and two older kernels (Linux 5.15 and 6.1, scripts/fetch-kernels.sh):
#     tests/tests/kernels.rs boots them to check the XDP program on the kernels it supports;
#     tests/tests/powerloss.rs boots 6.1 (with e2fsprogs for its disk image) to cut its power.
#   * softflowd (a real NetFlow/IPFIX exporter reading the lab's capture) and nfdump (nfcapd, the
#     reference collector the NetFlow test compares with; tests/tests/netflow.rs).
#   * Python packages used by tests and examples to read the lake: duckdb, pandas, pyarrow, chdb;
#     mmdb-writer (a test writes its MMDB with it); ja4plus (the responder test's independent JA4). dnsmasq answers the test's reverse DNS.
set -euo pipefail

log() { printf '[setup] %s\n' "$*"; }
die() { printf '[setup] ERROR: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- Debian packages
APT_PKGS=(nmap masscan zmap hping3 netsniff-ng tcpreplay tcpdump iproute2 bpftool ethtool dnsmasq-base
          qemu-system-x86 cpio e2fsprogs binutils
          hydra openssl openssh-client openssh-server mariadb-client redis-tools mosquitto-clients
          postgresql-client chromium softflowd nfdump)
missing=()
for p in "${APT_PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  [ "$(id -u)" = 0 ] || die "need root to apt-get install: ${missing[*]}"
  log "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq || die "apt-get update failed"
  # Packages must not start services on this host (openssh-server's sshd: the responder test
  # starts its own in a lab namespace): policy-rc.d refuses every start during the install.
  policy=/usr/sbin/policy-rc.d
  had_policy=0; [ -e "$policy" ] && had_policy=1
  [ "$had_policy" = 1 ] || { printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod +x "$policy"; }
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || { [ "$had_policy" = 1 ] || rm -f "$policy"; die "apt-get install failed"; }
  [ "$had_policy" = 1 ] || rm -f "$policy"
else
  log "Debian packages present"
fi

# ---------------------------------------------------------------- Rust toolchains
command -v rustup >/dev/null || die "rustup not found: this machine kind ships one Rust toolchain by rustup"
rustup toolchain list | grep -q '^nightly' || die "the nightly toolchain is not installed (rustup toolchain install nightly)"
if ! rustup component list --toolchain nightly --installed | grep -q '^rust-src'; then
  log "adding rust-src to nightly"
  rustup component add rust-src --toolchain nightly
else
  log "nightly rust-src present"
fi

# ---------------------------------------------------------------- bpf-linker
LLVM_MAJOR=$(rustc +nightly -vV | sed -n 's/^LLVM version: \([0-9]*\).*/\1/p')
[ -n "$LLVM_MAJOR" ] || die "cannot read the nightly's LLVM version"
PREFIX=${BPF_LINKER_LLVM_PREFIX:-$HOME/.cache/bpf-linker-llvm}
SYSROOT=$(rustc +nightly --print sysroot)
LIB=$(ls "$SYSROOT"/lib/libLLVM.so.* 2>/dev/null | head -1 || true)
[ -n "$LIB" ] || die "the nightly toolchain has no libLLVM.so.* under $SYSROOT/lib"
mkdir -p "$PREFIX/lib"
ln -sf "$LIB" "$PREFIX/lib/libLLVM.so"
ln -sf "$LIB" "$PREFIX/lib/$(basename "$LIB")"
if ! bpf-linker --version >/dev/null 2>&1; then
  log "building bpf-linker against the nightly's LLVM $LLVM_MAJOR (about a minute)"
  LLVM_PREFIX=$PREFIX cargo install --locked bpf-linker --no-default-features --features "llvm-$LLVM_MAJOR" \
    || LLVM_PREFIX=$PREFIX cargo install bpf-linker --no-default-features --features "llvm-$LLVM_MAJOR" \
    || die "cargo install bpf-linker failed"
  bpf-linker --version >/dev/null || die "bpf-linker installed but does not run"
else
  log "bpf-linker present: $(bpf-linker --version)"
fi

# ---------------------------------------------------------------- Python readers
# duckdb, pandas, pyarrow, chdb (embedded ClickHouse) read the lake in tests and examples/;
# mmdb-writer writes the test's GeoIP/ASN database; playwright drives Debian's chromium in the
# console's browser test (its bundled driver only: no browser download).
PLAYWRIGHT=1.65.2
if ! python3 -c 'import duckdb, pandas, pyarrow, chdb, mmdb_writer, ja4plus, playwright' 2>/dev/null \
   || [ "$(python3 -c 'from importlib.metadata import version; print(version("playwright"))' 2>/dev/null)" != "$PLAYWRIGHT" ]; then
  log "installing duckdb, pandas, pyarrow, chdb, mmdb-writer, ja4plus, playwright $PLAYWRIGHT"
  python3 -m pip install -q --disable-pip-version-check duckdb pandas pyarrow chdb mmdb-writer ja4plus \
    "playwright==$PLAYWRIGHT" || die "pip install failed"
else
  log "duckdb/pandas/pyarrow/chdb/mmdb-writer/ja4plus/playwright present"
fi

# ---------------------------------------------------------------- older kernels for the VM test
bash "$(dirname "$0")/fetch-kernels.sh" || die "fetching the test kernels failed"

# ---------------------------------------------------------------- kernel facts (warn only)
[ -r /sys/kernel/btf/vmlinux ] || log "WARNING: no /sys/kernel/btf/vmlinux: this kernel has no BTF"
log "done"
