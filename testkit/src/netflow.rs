//! nfdump's `nfcapd`, the reference NetFlow/IPFIX collector the NetFlow test and benchmark
//! compare the collector with.
use std::{
    path::Path,
    process::{Child, Command, Stdio},
};

/// Starts `nfcapd` on `127.0.0.1:port`, writing into `dir` (one file per hour), with a socket
/// buffer of `buffer` bytes if given. The caller kills it (SIGTERM writes the file).
pub fn nfcapd(port: u16, dir: &Path, buffer: Option<usize>) -> std::io::Result<Child> {
    let mut c = Command::new("nfcapd");
    c.args(["-b", "127.0.0.1", "-p", &port.to_string(), "-t", "3600"]);
    if let Some(b) = buffer {
        c.args(["-B", &b.to_string()]);
    }
    c.arg("-w")
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
}
