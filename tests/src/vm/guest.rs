//! Inside a test VM, as PID 1: pseudo file systems, kernel modules, interfaces, the kernel
//! command line and result lines on the serial console.
use std::{ffi::CString, io::Write, net::Ipv4Addr, os::fd::AsRawFd, path::Path};

use anyhow::{Context, Result, bail};

use super::MARKER;

/// Writes one result line (`SCANSCOPE-VM …`) to the console, flushed.
pub fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{MARKER}{line}").ok();
    out.flush().ok();
}

fn cstr(s: &str) -> CString {
    CString::new(s).expect("no NUL in a mount argument")
}

/// mount(2) of `src` on `target` (created) as `fstype`; already mounted is fine.
pub fn mount(src: &str, target: &str, fstype: &str) -> Result<()> {
    std::fs::create_dir_all(target)?;
    let (src, target_c, fstype) = (cstr(src), cstr(target), cstr(fstype));
    // SAFETY: valid C strings; no mount data.
    let rc = unsafe {
        libc::mount(
            src.as_ptr(),
            target_c.as_ptr(),
            fstype.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EBUSY) {
            return Err(e).with_context(|| format!("mount {target}"));
        }
    }
    Ok(())
}

/// /proc, /sys, /dev (devtmpfs) and a /tmp tmpfs.
pub fn mount_pseudo() -> Result<()> {
    mount("proc", "/proc", "proc")?;
    mount("sysfs", "/sys", "sysfs")?;
    mount("devtmpfs", "/dev", "devtmpfs")?;
    mount("tmpfs", "/tmp", "tmpfs")
}

/// Loads the modules `dir/order` names, in that order (finit_module).
pub fn load_modules(dir: &Path) -> Result<usize> {
    let order = std::fs::read_to_string(dir.join("order")).context("modules order")?;
    let mut n = 0;
    for name in order.split_whitespace() {
        let f = std::fs::File::open(dir.join(name)).with_context(|| format!("open {name}"))?;
        let params = cstr("");
        // SAFETY: finit_module on a descriptor we own with an empty parameter string.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_finit_module,
                f.as_raw_fd(),
                params.as_ptr(),
                0 as libc::c_int,
            )
        };
        if rc != 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EEXIST) {
                return Err(e).with_context(|| format!("loading {name}"));
            }
        }
        n += 1;
    }
    Ok(n)
}

fn ifreq(name: &str) -> Result<libc::ifreq> {
    // SAFETY: ifreq is plain old data; all zeroes is a valid value.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    if name.len() >= ifr.ifr_name.len() {
        bail!("interface name {name:?} too long");
    }
    for (d, s) in ifr.ifr_name.iter_mut().zip(name.bytes()) {
        *d = s as libc::c_char;
    }
    Ok(ifr)
}

fn sockaddr(a: Ipv4Addr) -> libc::sockaddr {
    // SAFETY: sockaddr_in and sockaddr have the same size; all zeroes is valid for both.
    unsafe {
        let mut sin: libc::sockaddr_in = std::mem::zeroed();
        sin.sin_family = libc::AF_INET as libc::sa_family_t;
        sin.sin_addr.s_addr = u32::from_ne_bytes(a.octets());
        std::mem::transmute::<libc::sockaddr_in, libc::sockaddr>(sin)
    }
}

/// Brings interface `name` up, with IPv4 address `addr`/`prefix` if given (SIOCSIF* ioctls:
/// an initramfs has no `ip`).
pub fn iface_up(name: &str, addr: Option<(Ipv4Addr, u8)>) -> Result<()> {
    // SAFETY: socket(2); the descriptor is closed below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0) };
    if fd < 0 {
        bail!("socket: {}", std::io::Error::last_os_error());
    }
    let ioctl = |req: libc::Ioctl, ifr: &mut libc::ifreq, what: &str| -> Result<()> {
        // SAFETY: the request matches the ifreq member set by the caller.
        if unsafe { libc::ioctl(fd, req, ifr as *mut libc::ifreq) } != 0 {
            bail!("{what} {name}: {}", std::io::Error::last_os_error());
        }
        Ok(())
    };
    let r = (|| {
        if let Some((a, prefix)) = addr {
            let mut ifr = ifreq(name)?;
            ifr.ifr_ifru.ifru_addr = sockaddr(a);
            ioctl(libc::SIOCSIFADDR, &mut ifr, "SIOCSIFADDR")?;
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            let mut ifr = ifreq(name)?;
            ifr.ifr_ifru.ifru_netmask = sockaddr(Ipv4Addr::from(mask));
            ioctl(libc::SIOCSIFNETMASK, &mut ifr, "SIOCSIFNETMASK")?;
        }
        let mut ifr = ifreq(name)?;
        ioctl(libc::SIOCGIFFLAGS, &mut ifr, "SIOCGIFFLAGS")?;
        // SAFETY: SIOCGIFFLAGS filled the flags member.
        unsafe { ifr.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short };
        ioctl(libc::SIOCSIFFLAGS, &mut ifr, "SIOCSIFFLAGS")
    })();
    // SAFETY: closing the socket opened above.
    unsafe { libc::close(fd) };
    r
}

/// The value of `key=value` on the kernel command line.
pub fn cmdline(key: &str) -> Option<String> {
    let line = std::fs::read_to_string("/proc/cmdline").ok()?;
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
        .map(str::to_string)
}

/// Syncs and powers the VM off (PID 1 only).
pub fn power_off() -> ! {
    // SAFETY: PID 1 powering the VM off after flushing; nothing else runs.
    unsafe {
        libc::sync();
        libc::reboot(libc::RB_POWER_OFF);
    }
    std::process::exit(0)
}
