//! PID 1 of the virtual machines `tests/tests/kernels.rs` boots on older kernels (5.15, 6.1).
//!
//! Mounts the pseudo file systems, then: (1) loads the XDP program as the agent does (the build
//! this kernel takes) and runs the conformance corpus through BPF_PROG_TEST_RUN against the
//! reference parser; (2) runs the real agent on `lo`, sends known traffic to closed ports on
//! 127.0.0.1 and ::1, stops the agent and prints its JSON lines; (3) attaches the responder's
//! sk_lookup program and connects to an unbound port. Every result line starts with
//! `SCANSCOPE-VM ` on the serial console; the host test asserts on them. Powers off at the end.
use std::{
    io::{BufRead, BufReader},
    net::{TcpStream, UdpSocket},
    process::{Command, Stdio},
    sync::mpsc,
    time::Duration,
};

use anyhow::{Context, Result, bail};
use scanscope_testkit::{
    conformance::{check_against_reference, differential_fuzz, every_kind, sample_all},
    testrun::Harness,
};
use scanscope_tests::vm::guest::{iface_up, mount_pseudo, power_off, say};

/// Frames of the seeded differential fuzz run inside the VM (emulated CPU: fewer than on the
/// host); the host test recomputes the reference's figures for the same seed.
const FUZZ_SEED: u64 = 0x5ca9_5c09e;
const FUZZ_FRAMES: usize = 3000;

fn conformance() -> Result<()> {
    let mut h = Harness::new(&sample_all()).context("load the XDP program")?;
    let variant = h.variant().context("no program loaded")?;
    let frames: Vec<Vec<u8>> = every_kind().into_iter().map(|(_, f)| f).collect();
    let kinds = check_against_reference(&mut h, &frames, 256).map_err(anyhow::Error::msg)?;
    let fuzz = differential_fuzz(&mut h, FUZZ_SEED, FUZZ_FRAMES).map_err(anyhow::Error::msg)?;
    say(&serde_json::json!({
        "conformance": {
            "program": variant.program_name(),
            "every_kind_frames": kinds.frames,
            "fuzz_frames": fuzz.frames,
            "fuzz_classified": fuzz.classified,
        }
    })
    .to_string());
    Ok(())
}

/// The agent on `lo` with known traffic: 3 UDP datagrams to 127.0.0.1:9 and 2 to [::1]:9 (each
/// answered by an ICMP port unreachable), 2 TCP connects to 127.0.0.1:1 (each SYN answered by a
/// RST that belongs to this host's connecting socket).
fn agent() -> Result<()> {
    iface_up("lo", None)?;
    let mut child = Command::new("/bin/scanscope-sensor")
        .args([
            "--iface",
            "lo",
            "--jsonl",
            "/tmp/out.jsonl",
            "--sensor-id",
            "vm",
            "--interval-secs",
            "2",
        ])
        .env("NO_COLOR", "1")
        .stderr(Stdio::piped())
        .spawn()
        .context("start the agent")?;
    let stderr = child.stderr.take().context("agent stderr")?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("XDP attached") || line.contains("attached in generic mode") {
                tx.send(()).ok();
            }
            say(&format!("agent-log {line}"));
        }
    });
    rx.recv_timeout(Duration::from_secs(300))
        .context("the agent did not attach within 300 s")?;

    let udp4 = UdpSocket::bind("127.0.0.1:0")?;
    for i in 0..3u8 {
        udp4.send_to(&[b'v', b'4', i], "127.0.0.1:9")?;
    }
    let udp6 = UdpSocket::bind("[::1]:0")?;
    for i in 0..2u8 {
        udp6.send_to(&[b'v', b'6', i], "[::1]:9")?;
    }
    for _ in 0..2 {
        let r = TcpStream::connect_timeout(&"127.0.0.1:1".parse()?, Duration::from_secs(5));
        if r.is_ok() {
            bail!("connect to 127.0.0.1:1 succeeded: nothing should listen there");
        }
    }
    std::thread::sleep(Duration::from_secs(1));
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let status = child.wait()?;
    for line in std::fs::read_to_string("/tmp/out.jsonl")?.lines() {
        say(&format!("jsonl {line}"));
    }
    say(&format!("agent-exit {}", status.code().unwrap_or(-1)));
    Ok(())
}

/// The responder's steering on this kernel: the sk_lookup program loaded and attached, a
/// connection to 127.0.0.2:8080 (nothing listens there) lands on the responder's listener with
/// that local address, and one to the pass-through port 22 is refused as before.
fn steering() -> Result<()> {
    use sensor_user::{config::RuntimeConfig, load, respond::Listeners};
    let mut ebpf = load::load(&RuntimeConfig::default()).context("load the object")?;
    let l = Listeners::bind()?;
    let addrs = ["127.0.0.2/32".parse()?];
    load::attach_responder(&mut ebpf, &l.v4, l.v6.as_ref(), &addrs, &[22].into())?;
    l.v4.set_nonblocking(false)?;
    let _client = TcpStream::connect_timeout(&"127.0.0.2:8080".parse()?, Duration::from_secs(5))
        .context("connect to 127.0.0.2:8080")?;
    let (accepted, _) = l.v4.accept()?;
    let pass_refused =
        TcpStream::connect_timeout(&"127.0.0.2:22".parse()?, Duration::from_secs(5)).is_err();
    say(&serde_json::json!({
        "respond": {
            "accepted_local": accepted.local_addr()?.to_string(),
            "pass_refused": pass_refused,
        }
    })
    .to_string());
    Ok(())
}

fn run() -> Result<()> {
    mount_pseudo()?;
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease")?;
    say(&serde_json::json!({
        "kernel": release.trim(),
        "btf": std::path::Path::new("/sys/kernel/btf/vmlinux").exists(),
    })
    .to_string());
    conformance()?;
    agent()?;
    steering()
}

fn main() {
    match run() {
        Ok(()) => say("done ok"),
        Err(e) => say(&format!("done error {e:#}")),
    }
    power_off()
}
