//! The eBPF objects embedded at build time (see `build.rs`).

/// The scanscope XDP object, or empty if `cargo xtask build-ebpf` had not run.
pub static SCANSCOPE: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/scanscope.bpf.o"));

/// A do-nothing XDP program (the benchmark baseline), or empty.
pub static NULL: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/null.bpf.o"));

/// Whether the real objects were embedded.
pub fn embedded() -> bool {
    !SCANSCOPE.is_empty() && !NULL.is_empty()
}

/// Why privileged eBPF work cannot run here, or `None` if it can: used by tests and benchmarks
/// to skip with a printed reason.
pub fn unavailable_reason() -> Option<String> {
    if !embedded() {
        return Some("the eBPF object is not embedded (run `cargo xtask build-ebpf` first)".into());
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not running as root (BPF needs CAP_BPF/CAP_NET_ADMIN)".into());
    }
    None
}
