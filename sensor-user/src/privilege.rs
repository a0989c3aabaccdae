//! Least privilege: once the program is loaded and attached, the agent keeps only the
//! capabilities it still needs — `CAP_BPF` (every `bpf()` call on its maps: counters, tuple
//! tables, configuration reloads) and `CAP_NET_ADMIN` (detaching from the interfaces at
//! shutdown) — and can never regain others (`no_new_privs`, bounding set cut). What parses
//! network input (the collector's answers: HTTP/2, TLS, zstd) runs with those two only.
//!
//! Then [`confine`] installs a seccomp filter: the system calls a parser bug could turn into a
//! foothold — running a program, tracing or writing other processes, mounting, loading kernel
//! code, changing identity or namespaces — fail with EPERM for the rest of the agent's life.
//!
//! Capabilities and seccomp filters are per thread: the binary drops and confines before it
//! starts any other thread (the runtime's workers inherit both).
use caps::{CapSet, Capability, CapsHashSet};
use seccompiler::{BpfProgram, SeccompAction, SeccompFilter};

/// What the agent keeps after attaching.
pub const RETAINED: [Capability; 2] = [Capability::CAP_BPF, Capability::CAP_NET_ADMIN];

/// Errors changing the process's privileges.
#[derive(Debug, thiserror::Error)]
pub enum PrivilegeError {
    #[error("dropping capabilities ({what}): {source}")]
    Caps {
        what: &'static str,
        #[source]
        source: caps::errors::CapsError,
    },
    #[error("setting no_new_privs: {0}")]
    NoNewPrivs(#[source] std::io::Error),
    #[error("installing the seccomp filter: {0}")]
    Seccomp(#[source] seccompiler::Error),
}

/// The system calls the agent never makes after attaching; [`confine`] makes them fail with
/// EPERM. (`bpf`, sockets, files and threads stay: the agent reads its maps, talks to the
/// collector, writes its spool and outputs.)
pub const DENIED: [i64; 36] = [
    libc::SYS_execve,
    libc::SYS_execveat,
    libc::SYS_fork,
    libc::SYS_vfork,
    libc::SYS_ptrace,
    libc::SYS_process_vm_readv,
    libc::SYS_process_vm_writev,
    libc::SYS_pidfd_getfd,
    libc::SYS_mount,
    libc::SYS_umount2,
    libc::SYS_pivot_root,
    libc::SYS_chroot,
    libc::SYS_init_module,
    libc::SYS_finit_module,
    libc::SYS_delete_module,
    libc::SYS_kexec_load,
    libc::SYS_kexec_file_load,
    libc::SYS_reboot,
    libc::SYS_setuid,
    libc::SYS_setgid,
    libc::SYS_setreuid,
    libc::SYS_setregid,
    libc::SYS_setresuid,
    libc::SYS_setresgid,
    libc::SYS_setgroups,
    libc::SYS_unshare,
    libc::SYS_setns,
    libc::SYS_open_by_handle_at,
    libc::SYS_name_to_handle_at,
    libc::SYS_keyctl,
    libc::SYS_add_key,
    libc::SYS_request_key,
    libc::SYS_personality,
    libc::SYS_userfaultfd,
    libc::SYS_swapon,
    libc::SYS_swapoff,
];

/// The compiled filter: [`DENIED`] → EPERM, everything else allowed.
pub fn filter() -> Result<BpfProgram, PrivilegeError> {
    filter_of(&DENIED)
}

/// A filter that makes `denied` fail with EPERM and allows everything else.
pub fn filter_of(denied: &[i64]) -> Result<BpfProgram, PrivilegeError> {
    let backend = |e| PrivilegeError::Seccomp(seccompiler::Error::Backend(e));
    let arch = std::env::consts::ARCH.try_into().map_err(backend)?;
    SeccompFilter::new(
        denied.iter().map(|&nr| (nr, Vec::new())).collect(),
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        arch,
    )
    .map_err(backend)?
    .try_into()
    .map_err(backend)
}

/// Installs [`filter`] on the calling thread (and the threads it starts later). Needs
/// `no_new_privs` (set by [`drop_to_retained`]) or CAP_SYS_ADMIN.
pub fn confine() -> Result<(), PrivilegeError> {
    seccompiler::apply_filter(&filter()?).map_err(PrivilegeError::Seccomp)
}

/// Installs [`filter_of`] `denied` on the calling thread (the responder process's own list).
pub fn confine_with(denied: &[i64]) -> Result<(), PrivilegeError> {
    seccompiler::apply_filter(&filter_of(denied)?).map_err(PrivilegeError::Seccomp)
}

/// Installs [`filter_of`] `denied` on every thread of the process at once (TSYNC).
pub fn confine_all_threads_with(denied: &[i64]) -> Result<(), PrivilegeError> {
    seccompiler::apply_filter_all_threads(&filter_of(denied)?).map_err(PrivilegeError::Seccomp)
}

/// Drops every capability but [`RETAINED`] (those the process has) from the calling thread:
/// bounding, inheritable, ambient, permitted and effective sets. Call it while it is the only
/// thread.
pub fn drop_to_retained() -> Result<(), PrivilegeError> {
    let err = |what| move |source| PrivilegeError::Caps { what, source };
    let keep: CapsHashSet = RETAINED.into_iter().collect();
    let permitted = caps::read(None, CapSet::Permitted).map_err(err("reading"))?;
    let keep: CapsHashSet = keep.intersection(&permitted).copied().collect();
    // The bounding set first: cutting it needs CAP_SETPCAP, which goes next.
    if permitted.contains(&Capability::CAP_SETPCAP) {
        for c in caps::all() {
            if !keep.contains(&c) {
                caps::drop(None, CapSet::Bounding, c).map_err(err("bounding set"))?;
            }
        }
    }
    caps::clear(None, CapSet::Ambient).map_err(err("ambient set"))?;
    caps::clear(None, CapSet::Inheritable).map_err(err("inheritable set"))?;
    caps::set(None, CapSet::Effective, &keep).map_err(err("effective set"))?;
    caps::set(None, CapSet::Permitted, &keep).map_err(err("permitted set"))?;
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(PrivilegeError::NoNewPrivs(std::io::Error::last_os_error()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// In a thread of its own (filters are per thread): after `confine`, running a program
    /// and ptrace fail with EPERM; files, sockets and threads still work.
    #[test]
    fn confined_threads_cannot_exec_or_trace() {
        std::thread::spawn(|| {
            // SAFETY: prctl with integer arguments only.
            let rc = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
            assert_eq!(rc, 0);
            assert!(std::process::Command::new("/bin/true").status().is_ok());
            confine().unwrap();
            let e = std::process::Command::new("/bin/true")
                .status()
                .unwrap_err();
            assert_eq!(e.raw_os_error(), Some(libc::EPERM), "{e}");
            // SAFETY: PTRACE_TRACEME with null arguments; refused by the filter.
            let rc = unsafe { libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0) };
            assert_eq!(
                (rc, std::io::Error::last_os_error().raw_os_error()),
                (-1, Some(libc::EPERM))
            );
            let d = tempfile::tempdir().unwrap();
            std::fs::write(d.path().join("f"), b"x").unwrap();
            std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            std::thread::spawn(|| 1).join().unwrap();
            let status = std::fs::read_to_string("/proc/thread-self/status").unwrap();
            assert!(status.lines().any(|l| l == "Seccomp:\t2"), "{status}");
        })
        .join()
        .unwrap();
    }
}
