//! Load stage: the embedded XDP object into the kernel, its maps sized and filled, the program
//! attached to interfaces.
//!
//! Attachment goes through BPF links (`bpf_link_create`), which the kernel removes when their
//! last file descriptor closes: the program is detached when the agent exits, even by a crash.
use std::{ffi::CString, net::IpAddr, os::fd::AsRawFd};

use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, LpmTrie, MapError, SockMap, lpm_trie::Key},
    programs::{ProgramError, ProgramType, SkLookup, Xdp, XdpMode, xdp::XdpLinkId},
    sys::{BpfHelper, is_helper_supported, is_program_supported},
};
use scanscope_common::{PROGRAM_NAME, PROGRAM_NAME_COMPAT, SensorConfig, maps};
use tracing::{info, warn};

use crate::{config::RuntimeConfig, object};

/// Errors loading, configuring or attaching the XDP program.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(
        "the eBPF object is not embedded in this build: run `cargo xtask build-ebpf`, then rebuild"
    )]
    ObjectMissing,
    #[error(
        "this kernel has no BTF (/sys/kernel/btf/vmlinux is missing): scanscope needs a kernel built with CONFIG_DEBUG_INFO_BTF"
    )]
    NoBtf,
    #[error(
        "missing privileges to {what}: run as root (or with CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON)"
    )]
    Permission {
        what: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error(
        "this kernel has no BPF system call (built without CONFIG_BPF_SYSCALL, or bpf() is blocked): scanscope needs Linux ≥ 5.15 with BPF and XDP"
    )]
    NoBpf,
    #[error(
        "this kernel does not accept XDP programs (BPF_PROG_TYPE_XDP): scanscope needs Linux ≥ 5.15 built with CONFIG_BPF_SYSCALL and CONFIG_NET"
    )]
    NoXdp,
    #[error(
        "this kernel gives XDP programs neither bpf_xdp_load_bytes (Linux ≥ 5.18) nor bpf_probe_read_kernel (Linux ≥ 5.8 with CAP_PERFMON, refused under lockdown=confidentiality): scanscope cannot copy packet bytes"
    )]
    NoCopyHelper,
    #[error("loading the eBPF object failed: {0}")]
    Object(#[source] Box<aya::EbpfError>),
    #[error("the kernel rejected the XDP program: {0}")]
    Program(#[source] ProgramError),
    #[error("interface {0:?} does not exist")]
    NoSuchInterface(String),
    #[error("attaching XDP to {iface} failed (driver and generic mode): {source}")]
    Attach {
        iface: String,
        #[source]
        source: ProgramError,
    },
    #[error("the eBPF object has no map {0}")]
    MissingMap(&'static str),
    #[error("the eBPF object has no program {0}")]
    MissingProgram(&'static str),
    #[error("map {name}: {source}")]
    Map {
        name: &'static str,
        #[source]
        source: MapError,
    },
    #[error("responder: {what}: {source}")]
    Responder {
        what: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// The OS error an error chain bottoms out in, if any.
fn os_error(err: &(dyn std::error::Error + 'static)) -> Option<i32> {
    let mut cur = Some(err);
    while let Some(e) = cur {
        if let Some(code) = e
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::raw_os_error)
        {
            return Some(code);
        }
        cur = e.source();
    }
    None
}

/// Whether an error chain bottoms out in EPERM (EACCES is what the verifier returns).
fn is_permission_error(err: &(dyn std::error::Error + 'static)) -> bool {
    os_error(err) == Some(libc::EPERM)
}

/// Whether the kernel has the bpf() system call: an empty `BPF_MAP_CREATE` fails with EINVAL
/// or EFAULT where it exists, ENOSYS where it does not (or a seccomp policy forbids it).
fn bpf_syscall_available() -> bool {
    // SAFETY: a null attribute pointer of size 0 is rejected by the kernel without access.
    let rc = unsafe { libc::syscall(libc::SYS_bpf, 0, std::ptr::null::<u8>(), 0) };
    rc >= 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ENOSYS)
}

/// Which build of the XDP program the kernel took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// `scanscope`: kernels ≥ 5.18 (`bpf_xdp_load_bytes`).
    Main,
    /// `scanscope_compat`: kernels 5.15–5.17 (`bpf_probe_read_kernel`).
    Compat,
}

impl Variant {
    /// The program's name in the object.
    pub fn program_name(self) -> &'static str {
        match self {
            Variant::Main => PROGRAM_NAME,
            Variant::Compat => PROGRAM_NAME_COMPAT,
        }
    }
}

/// Maps a failed feature probe: EPERM is missing privileges, anything else is kept.
fn probe_error(what: &'static str, e: ProgramError) -> LoadError {
    if is_permission_error(&e) {
        LoadError::Permission {
            what,
            source: Box::new(e),
        }
    } else {
        LoadError::Program(e)
    }
}

/// Asks the kernel (with a trivial program, as libbpf's probes do) whether it takes XDP
/// programs at all.
fn probe_xdp() -> Result<(), LoadError> {
    if is_program_supported(ProgramType::Xdp).map_err(|e| probe_error("load BPF programs", e))? {
        Ok(())
    } else {
        Err(LoadError::NoXdp)
    }
}

/// Asks the kernel which build of our program it can run.
fn probe_variant() -> Result<Variant, LoadError> {
    let has = |helper| {
        is_helper_supported(ProgramType::Xdp, helper)
            .map_err(|e| probe_error("load BPF programs", e))
    };
    if has(BpfHelper::BPF_FUNC_xdp_load_bytes)? {
        return Ok(Variant::Main);
    }
    if has(BpfHelper::BPF_FUNC_probe_read_kernel)? {
        info!("the kernel lacks bpf_xdp_load_bytes (Linux < 5.18): using {PROGRAM_NAME_COMPAT}");
        return Ok(Variant::Compat);
    }
    Err(LoadError::NoCopyHelper)
}

/// Raises RLIMIT_MEMLOCK for kernels that still charge BPF memory to it. Kernels ≥ 5.11 charge
/// the memory cgroup instead, so failing to raise it is only a warning.
fn raise_memlock() {
    let rlim = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: setrlimit reads a valid rlimit struct.
    if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &rlim) } != 0 {
        warn!(error = %std::io::Error::last_os_error(), "cannot raise RLIMIT_MEMLOCK; relying on memory-cgroup accounting");
    }
}

/// Loads the scanscope object with the configured map sizes, loads (verifies) the program the
/// kernel supports — [`Variant::Main`], else [`Variant::Compat`] — and writes the runtime
/// configuration. Nothing is attached yet.
pub fn load(cfg: &RuntimeConfig) -> Result<Ebpf, LoadError> {
    load_object(object::SCANSCOPE, cfg, None)
}

/// Loads a given object (tests and benchmarks load the baseline too); `variant` forces one
/// build of the program instead of the automatic choice.
pub fn load_object(
    bytes: &[u8],
    cfg: &RuntimeConfig,
    variant: Option<Variant>,
) -> Result<Ebpf, LoadError> {
    if bytes.is_empty() {
        return Err(LoadError::ObjectMissing);
    }
    if !bpf_syscall_available() {
        return Err(LoadError::NoBpf);
    }
    if !std::path::Path::new("/sys/kernel/btf/vmlinux").exists() {
        return Err(LoadError::NoBtf);
    }
    raise_memlock();
    probe_xdp()?;
    let mut loader = EbpfLoader::new();
    loader
        .map_max_entries(maps::TUPLES_0, cfg.tuple_entries)
        .map_max_entries(maps::TUPLES_1, cfg.tuple_entries)
        .map_max_entries(maps::EVENTS, cfg.ringbuf_bytes);
    let mut ebpf = loader.load(bytes).map_err(|e| {
        if os_error(&e) == Some(libc::ENOSYS) {
            LoadError::NoBpf
        } else if is_permission_error(&e) {
            LoadError::Permission {
                what: "create BPF maps",
                source: Box::new(e),
            }
        } else {
            LoadError::Object(Box::new(e))
        }
    })?;
    if ebpf.program(PROGRAM_NAME).is_some() {
        let chosen = match variant {
            Some(v) => v,
            None => probe_variant()?,
        };
        load_variant(&mut ebpf, chosen)?;
        info!(program = chosen.program_name(), "XDP program loaded");
        apply_config(&mut ebpf, cfg)?;
    }
    Ok(ebpf)
}

/// A program's load failure: missing privileges named as such, else the verifier's word.
fn program_error(what: &'static str) -> impl FnOnce(ProgramError) -> LoadError {
    move |e| {
        if is_permission_error(&e) {
            LoadError::Permission {
                what,
                source: Box::new(e),
            }
        } else {
            LoadError::Program(e)
        }
    }
}

/// Loads (verifies) one build of the program.
fn load_variant(ebpf: &mut Ebpf, variant: Variant) -> Result<(), LoadError> {
    let prog = ebpf
        .program_mut(variant.program_name())
        .ok_or(LoadError::MissingProgram(variant.program_name()))?;
    let xdp: &mut Xdp = prog.try_into().map_err(LoadError::Program)?;
    xdp.load().map_err(program_error("load the XDP program"))
}

/// Which build of the program is loaded in `ebpf`, if any.
pub fn loaded_variant(ebpf: &Ebpf) -> Option<Variant> {
    [Variant::Main, Variant::Compat].into_iter().find(|v| {
        ebpf.program(v.program_name())
            .is_some_and(|p| p.fd().is_ok())
    })
}

/// The loaded XDP program of an object (the scanscope build the kernel took, or the null
/// baseline).
pub fn program(ebpf: &mut Ebpf) -> Result<&mut Xdp, LoadError> {
    let name = match loaded_variant(ebpf) {
        Some(v) => v.program_name(),
        None if ebpf.program(PROGRAM_NAME).is_some() => PROGRAM_NAME,
        None => "null",
    };
    let prog = ebpf
        .program_mut(name)
        .ok_or(LoadError::MissingProgram(name))?;
    let xdp: &mut Xdp = prog.try_into().map_err(LoadError::Program)?;
    if xdp.fd().is_err() {
        xdp.load().map_err(LoadError::Program)?;
    }
    Ok(xdp)
}

/// Writes the runtime configuration into the `CONFIG` and `EXCLUDE` maps. Called at start and
/// on every reload; takes effect for the next packet.
pub fn apply_config(ebpf: &mut Ebpf, cfg: &RuntimeConfig) -> Result<(), LoadError> {
    let map_err = |name| move |source| LoadError::Map { name, source };
    {
        let m = ebpf
            .map_mut(maps::EXCLUDE)
            .ok_or(LoadError::MissingMap(maps::EXCLUDE))?;
        let mut trie: LpmTrie<_, [u8; 16], u8> =
            LpmTrie::try_from(m).map_err(map_err(maps::EXCLUDE))?;
        // New prefixes first, then the stale ones out: no moment counts an excluded source.
        let new: Vec<([u8; 16], u32)> = cfg
            .exclude
            .iter()
            .map(|net| match net.addr() {
                IpAddr::V4(a) => (
                    a.to_ipv6_mapped().octets(),
                    u32::from(net.prefix_len()) + 96,
                ),
                IpAddr::V6(a) => (a.octets(), u32::from(net.prefix_len())),
            })
            .collect();
        let old: Vec<Key<[u8; 16]>> = trie.keys().filter_map(Result::ok).collect();
        for (addr, len) in &new {
            trie.insert(&Key::new(*len, *addr), 1, 0)
                .map_err(map_err(maps::EXCLUDE))?;
        }
        for k in &old {
            if !new
                .iter()
                .any(|(a, l)| *a == k.data() && *l == k.prefix_len())
            {
                trie.remove(k).map_err(map_err(maps::EXCLUDE))?;
            }
        }
    }
    let m = ebpf
        .map_mut(maps::CONFIG)
        .ok_or(LoadError::MissingMap(maps::CONFIG))?;
    let mut config: Array<_, SensorConfig> = Array::try_from(m).map_err(map_err(maps::CONFIG))?;
    config
        .set(0, cfg.kernel, 0)
        .map_err(map_err(maps::CONFIG))?;
    Ok(())
}

/// One interface the program is attached to.
#[derive(Debug)]
pub struct Attachment {
    pub iface: String,
    pub ifindex: u32,
    /// `"driver"` or `"generic"`.
    pub mode: &'static str,
    pub link: XdpLinkId,
}

/// The index of a network interface, if it exists.
pub fn ifindex(iface: &str) -> Option<u32> {
    let name = CString::new(iface).ok()?;
    // SAFETY: if_nametoindex reads a valid C string.
    let idx = unsafe { libc::if_nametoindex(name.as_ptr()) };
    (idx != 0).then_some(idx)
}

/// Attaches the program to an interface in driver mode, falling back to generic (skb) mode.
pub fn attach(ebpf: &mut Ebpf, iface: &str) -> Result<Attachment, LoadError> {
    let idx = ifindex(iface).ok_or_else(|| LoadError::NoSuchInterface(iface.to_string()))?;
    let xdp = program(ebpf)?;
    match xdp.attach_to_if_index(idx, XdpMode::Driver) {
        Ok(link) => {
            info!(iface, mode = "driver", "XDP attached");
            Ok(Attachment {
                iface: iface.to_string(),
                ifindex: idx,
                mode: "driver",
                link,
            })
        }
        Err(driver_err) => {
            if is_permission_error(&driver_err) {
                return Err(LoadError::Permission {
                    what: "attach XDP",
                    source: Box::new(driver_err),
                });
            }
            match xdp.attach_to_if_index(idx, XdpMode::Skb) {
                Ok(link) => {
                    warn!(iface, mode = "generic", driver_error = %driver_err, "driver-mode XDP unavailable; attached in generic mode");
                    Ok(Attachment {
                        iface: iface.to_string(),
                        ifindex: idx,
                        mode: "generic",
                        link,
                    })
                }
                Err(source) => Err(LoadError::Attach {
                    iface: iface.to_string(),
                    source,
                }),
            }
        }
    }
}

/// Fills the responder's tables — its listeners, the addresses it answers, the ports it never
/// takes — and attaches the sk_lookup program to this network namespace (through a BPF link:
/// gone when the agent exits, and connections then meet the host's normal lookup again).
/// Empties the responder's socket map: the sk_lookup program then finds no socket and the
/// kernel answers as if no responder ran.
pub fn clear_responder(ebpf: &mut Ebpf) -> Result<(), LoadError> {
    use scanscope_common::respond;
    let map_err = |source| LoadError::Map {
        name: maps::RESPONDER,
        source,
    };
    let m = ebpf
        .map_mut(maps::RESPONDER)
        .ok_or(LoadError::MissingMap(maps::RESPONDER))?;
    let mut socks: SockMap<_> = SockMap::try_from(m).map_err(map_err)?;
    for slot in [respond::SLOT_V4, respond::SLOT_V6] {
        // An empty slot is fine.
        let _cleared = socks.clear_index(&slot);
    }
    Ok(())
}

pub fn attach_responder(
    ebpf: &mut Ebpf,
    v4: &impl AsRawFd,
    v6: Option<&impl AsRawFd>,
    addresses: &[ipnet::IpNet],
    pass_ports: &std::collections::BTreeSet<u16>,
) -> Result<(), LoadError> {
    use scanscope_common::{ipv4_mapped, respond};
    let map_err = |name: &'static str| move |source| LoadError::Map { name, source };
    {
        let m = ebpf
            .map_mut(maps::RESPONDER)
            .ok_or(LoadError::MissingMap(maps::RESPONDER))?;
        let mut socks: SockMap<_> = SockMap::try_from(m).map_err(map_err(maps::RESPONDER))?;
        socks
            .set(respond::SLOT_V4, v4, 0)
            .map_err(map_err(maps::RESPONDER))?;
        if let Some(v6) = v6 {
            socks
                .set(respond::SLOT_V6, v6, 0)
                .map_err(map_err(maps::RESPONDER))?;
        }
    }
    {
        let m = ebpf
            .map_mut(maps::RESPOND_ADDRS)
            .ok_or(LoadError::MissingMap(maps::RESPOND_ADDRS))?;
        let mut trie: LpmTrie<_, [u8; 16], u8> =
            LpmTrie::try_from(m).map_err(map_err(maps::RESPOND_ADDRS))?;
        for net in addresses {
            let (addr, len) = match net {
                ipnet::IpNet::V4(n) => (
                    ipv4_mapped(n.addr().octets()),
                    u32::from(n.prefix_len()) + 96,
                ),
                ipnet::IpNet::V6(n) => (n.addr().octets(), u32::from(n.prefix_len())),
            };
            trie.insert(&Key::new(len, addr), 1, 0)
                .map_err(map_err(maps::RESPOND_ADDRS))?;
        }
    }
    {
        let m = ebpf
            .map_mut(maps::RESPOND_PASS)
            .ok_or(LoadError::MissingMap(maps::RESPOND_PASS))?;
        let mut bits: Array<_, u64> = Array::try_from(m).map_err(map_err(maps::RESPOND_PASS))?;
        let mut words = vec![0u64; respond::PASS_WORDS as usize];
        for &p in pass_ports {
            let (w, b) = respond::pass_bit(p);
            words[w as usize] |= b;
        }
        for (i, w) in words.into_iter().enumerate() {
            if w != 0 {
                bits.set(i as u32, w, 0)
                    .map_err(map_err(maps::RESPOND_PASS))?;
            }
        }
    }
    let prog = ebpf
        .program_mut(respond::PROGRAM_NAME)
        .ok_or(LoadError::MissingProgram(respond::PROGRAM_NAME))?;
    let sk: &mut SkLookup = prog.try_into().map_err(LoadError::Program)?;
    sk.load()
        .map_err(program_error("load the sk_lookup program"))?;
    let netns = std::fs::File::open("/proc/self/ns/net").map_err(|e| LoadError::Responder {
        what: "opening /proc/self/ns/net",
        source: Box::new(e),
    })?;
    sk.attach(netns).map_err(|e| LoadError::Responder {
        what: "attaching the sk_lookup program",
        source: Box::new(e),
    })?;
    info!(
        addresses = addresses.len(),
        pass_ports = ?pass_ports,
        "responder steering attached (sk_lookup)"
    );
    Ok(())
}
