#!/usr/bin/env bash
# Fetches the older kernels `tests/tests/kernels.rs` boots under qemu to check the XDP program on
# them (verifier, BPF_PROG_TEST_RUN, the agent on lo). Idempotent: present kernels are kept.
#
#   scripts/fetch-kernels.sh [DIR]      # DIR defaults to $SCANSCOPE_KERNELS_DIR or
#                                       # /var/cache/scanscope/kernels
#
#   * Linux 5.15, the oldest kernel scanscope supports: Ubuntu 22.04's release kernel
#     5.15.0-25-generic from the jammy release pocket (never changes), pinned by SHA-256.
#   * Linux 6.1, Debian 12's kernel: the current bookworm build, resolved and verified by apt
#     (Debian replaces old builds in its pool, so a pinned URL would go stale). Beside it,
#     modules-<release>/ holds the modules `tests/tests/powerloss.rs` loads in its VM (virtio
#     disk and network, ext4), in load order (`order`).
set -euo pipefail

log() { printf '[kernels] %s\n' "$*"; }
die() { printf '[kernels] ERROR: %s\n' "$*" >&2; exit 1; }

DIR=${1:-${SCANSCOPE_KERNELS_DIR:-/var/cache/scanscope/kernels}}
mkdir -p "$DIR"
tmp=$(mktemp -d)
chmod 755 "$tmp"   # apt downloads as _apt
trap 'rm -rf "$tmp"' EXIT

# Extracts boot/vmlinuz-* from a kernel .deb into $DIR.
extract() {
  local deb=$1
  dpkg-deb -x "$deb" "$tmp/x" || die "cannot unpack $deb"
  local img
  img=$(ls "$tmp"/x/boot/vmlinuz-* 2>/dev/null | head -1)
  [ -n "$img" ] || die "$deb has no boot/vmlinuz-*"
  install -m 0644 "$img" "$DIR/$(basename "$img")"
  rm -rf "$tmp/x"
  log "kernel image $DIR/$(basename "$img")"
}

# ---------------------------------------------------------------- Linux 5.15 (Ubuntu jammy)
U_VER=5.15.0-25-generic
U_URL=http://archive.ubuntu.com/ubuntu/pool/main/l/linux/linux-image-unsigned-5.15.0-25-generic_5.15.0-25.25_amd64.deb
U_SHA=ac69df20790c48217eb1386ef81fd10d3f20a4ede4dab81cc107c65d29549fa0
if [ -s "$DIR/vmlinuz-$U_VER" ]; then
  log "Linux $U_VER present"
else
  log "downloading Linux $U_VER (11 MB)"
  curl -fsSL --retry 3 -o "$tmp/u.deb" "$U_URL" || die "download failed: $U_URL"
  echo "$U_SHA  $tmp/u.deb" | sha256sum -c --quiet - || die "SHA-256 mismatch for $U_URL"
  extract "$tmp/u.deb"
fi

# ---------------------------------------------------------------- Linux 6.1 (Debian bookworm)
# Modules of the power-loss VM, dependencies first.
VM_MODULES="virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci virtio_blk
failover net_failover virtio_net crc16 mbcache jbd2 crc32c_generic ext4"

# Copies $VM_MODULES out of an unpacked kernel package into $DIR/modules-<release>/.
extract_modules() {
  local root=$1 rel
  rel=$(basename "$(ls -d "$root"/lib/modules/* | head -1)")
  local out="$DIR/modules-$rel"
  rm -rf "$out.tmp" && mkdir -p "$out.tmp"
  for m in $VM_MODULES; do
    local ko
    ko=$(find "$root/lib/modules/$rel" -name "$m.ko" | head -1)
    [ -n "$ko" ] || die "the kernel package has no $m.ko"
    install -m 0644 "$ko" "$out.tmp/$m.ko"
    echo "$m.ko" >> "$out.tmp/order"
  done
  rm -rf "$out" && mv "$out.tmp" "$out"
  log "VM modules $out"
}

if ls "$DIR"/vmlinuz-6.1.* >/dev/null 2>&1 && ls "$DIR"/modules-6.1.*/order >/dev/null 2>&1; then
  log "Linux 6.1 present: $(cd "$DIR" && ls vmlinuz-6.1.* | head -1)"
else
  abi=$(apt-cache depends linux-image-amd64 2>/dev/null | sed -n 's/.*Depends: \(linux-image-6\.1\.[^ ]*-amd64\)$/\1/p' | head -1)
  [ -n "$abi" ] || die "apt knows no linux-image-6.1.*-amd64 (apt-get update?)"
  log "downloading $abi-unsigned through apt (70 MB, verified by apt)"
  (cd "$tmp" && apt-get download -qq "$abi-unsigned") || die "apt-get download $abi-unsigned failed"
  deb=$(ls "$tmp"/*.deb | head -1)
  dpkg-deb -x "$deb" "$tmp/m" || die "cannot unpack $deb"
  extract_modules "$tmp/m"
  rm -rf "$tmp/m"
  extract "$deb"
fi
