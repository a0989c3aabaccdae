//! The namespace labs shared by the end-to-end tests and `cargo xtask demo`.
//!
//! * [`lab`] — one sensor namespace and one scanner namespace joined by a veth pair (`Lab`),
//!   and the standard scenario the single-sensor tests and the demo's first part run.
//! * [`multilab`] — three sensors behind a router running the collector and dnsmasq.
//! * [`scanners`] — the real scanners' command lines, and running them in a namespace.
//! * [`transport`] — the collector as a child process, synthetic batches, lake readers.
//! * [`records`] — sums over the agent's JSON-lines records.
//! * [`vm`] — qemu VMs with a kernel of their own (older kernels, power cuts) and their PID 1.
//!
//! Network safety: every packet stays inside network namespaces these modules create and delete
//! (RAII guards, also on panic). They have no default route and no link to the host's
//! interfaces; scanners target only the labs' own addresses, name their interface and run with
//! bounded count and rate.
use std::{path::PathBuf, process::Command, sync::atomic::AtomicU32};

use anyhow::{Context, Result, bail};

pub mod console;
pub mod lab;
pub mod multilab;
pub mod records;
pub mod scanners;
pub mod transport;
pub mod vm;

pub use lab::*;
pub use records::*;
pub use scanners::{Scan, scan_in};

pub(crate) static NEXT: AtomicU32 = AtomicU32::new(0);

/// Sensor-side addresses.
pub const SENSOR_V4: &str = "198.18.0.1";
pub const SENSOR_V6: &str = "fd00:5ca0::1";
/// A /28 routed locally in the sensor namespace: dark space the scanners sweep.
pub const DARK_V4: &str = "198.18.1.0/28";
/// Scanner-side addresses, one per tool so each source's records can be checked on their own.
pub const SRC_NMAP: &str = "198.18.0.11";
pub const SRC_MASSCAN: &str = "198.18.0.12";
pub const SRC_ZMAP: &str = "198.18.0.13";
pub const SRC_MIRAI: &str = "198.18.0.14";
pub const SRC_EXCLUDED: &str = "198.18.0.15";
pub const SRC_NMAP_UDP: &str = "198.18.0.16";
pub const SRC_SERVER: &str = "198.18.0.17";
pub const SRC_V6: &str = "fd00:5ca0::10";
pub(crate) const SCANNER_V4: [&str; 7] = [
    SRC_NMAP,
    SRC_MASSCAN,
    SRC_ZMAP,
    SRC_MIRAI,
    SRC_EXCLUDED,
    SRC_NMAP_UDP,
    SRC_SERVER,
];

/// Why the lab cannot run here, if it cannot.
pub fn unavailable_reason() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not root (network namespaces and XDP need it)".into());
    }
    for tool in ["ip", "nmap", "masscan", "zmap", "hping3"] {
        if which(tool).is_none() {
            return Some(format!("{tool} is not installed (run scripts/setup.sh)"));
        }
    }
    if sensor_binary().is_none() {
        return Some("the scanscope-sensor binary is not built".into());
    }
    None
}

/// The gate of every end-to-end test: `None` to go on; otherwise the test skips with the
/// printed reason, or fails under `SCANSCOPE_REQUIRE_PRIVILEGED=1` (as `cargo xtask test` and CI
/// run) — see `scanscope_testkit::gate`.
pub fn privileged_or_skip() -> Option<()> {
    (!scanscope_testkit::gate::skip(unavailable_reason())).then_some(())
}

/// A per-test directory under the system temp dir.
pub fn e2e_dir(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("scanscope-e2e-{}-{name}", std::process::id()))
}

fn which(tool: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(tool))
            .find(|c| c.is_file())
    })
}

/// A binary of the workspace: `$env` if set, else `name` next to this executable's target
/// directory (debug or release).
pub fn binary(name: &str, env: &str) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(env) {
        return Some(PathBuf::from(p));
    }
    let exe = std::env::current_exe().ok()?;
    exe.ancestors()
        .skip(1)
        .take(3)
        .map(|d| d.join(name))
        .find(|c| c.is_file())
}

/// The agent binary (`SCANSCOPE_SENSOR_BIN` or next to this executable).
pub fn sensor_binary() -> Option<PathBuf> {
    binary("scanscope-sensor", "SCANSCOPE_SENSOR_BIN")
}

pub(crate) fn sh(args: &[&str]) -> Result<String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .with_context(|| format!("running {args:?}"))?;
    if !out.status.success() {
        bail!(
            "{args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs a client in namespace `ns` within `secs`, from `dir`, whatever its exit status (the
/// responder refuses every login, so clients fail by design); its stdout and stderr.
pub fn client_in(ns: &str, dir: &std::path::Path, secs: u32, args: &[&str]) -> Result<String> {
    let out = Command::new("timeout")
        .args(["-k", "2", &secs.to_string(), "ip", "netns", "exec", ns])
        .args(args)
        .current_dir(dir)
        .stdin(std::process::Stdio::null())
        .output()
        .with_context(|| format!("running {args:?} in {ns}"))?;
    Ok(format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    ))
}

/// The first child process of `pid` (the agent's responder process).
pub fn child_of(pid: u32) -> Option<u32> {
    let out = sh(&["pgrep", "-P", &pid.to_string()]).ok()?;
    out.split_whitespace().next()?.parse().ok()
}

/// A field of `/proc/<pid>/status`, its words joined by one space.
pub fn proc_status(pid: u32, key: &str) -> Option<String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
}
