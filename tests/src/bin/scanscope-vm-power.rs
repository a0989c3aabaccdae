//! PID 1 of the virtual machines `tests/tests/powerloss.rs` pulls the plug on (Debian 12's 6.1
//! kernel, a virtio disk with ext4, a virtio network card on qemu's restricted user network).
//!
//! Loads the modules in `/modules`, mounts `/dev/vda` on `/data`, then by `scanscope.mode=`:
//! * `collector`: the real collector listens on 10.0.2.15:50051 (forwarded from the host) with
//!   its data (write-ahead log, state, lake) in `/data/lake`; prints `collector-ready` once it
//!   listens. With `scanscope.stop=1` it is sent SIGTERM as soon as it listens (it replays its
//!   write-ahead log and flushes everything to Parquet), then the VM powers off.
//! * `spool`: the agent's uplink with its spool in `/data/spool`, every batch written to the
//!   spool (fsync) before `push` returns, towards the host's collector at `scanscope.collector=`
//!   (10.0.2.2:PORT: qemu's alias for the host's loopback). While `scanscope.push=1`, pushes synthetic batch
//!   `scanscope.boot × 100 000 + k` every 50 ms and prints `pushed <index>` after each push
//!   returned; with `scanscope.push=0` it only delivers what the spool holds, prints
//!   `left <n>` and powers off.
//!
//! Until then the host cuts the power at a random moment.
use std::{
    io::{BufRead, BufReader},
    net::Ipv4Addr,
    path::Path,
    process::{Command, Stdio},
    time::Duration,
};

use anyhow::{Context, Result, bail};
use scanscope_tests::{
    transport::synthetic_batch,
    vm::guest::{cmdline, iface_up, load_modules, mount, mount_pseudo, power_off, say},
};
use sensor_user::uplink::{Uplink, UplinkOptions};

/// Flows per synthetic batch the spool mode pushes (the host test checks the same number).
const ROWS: u32 = 20;

fn collector(stop_at_once: bool) -> Result<()> {
    let mut child = Command::new("/bin/scanscope-collector")
        .args([
            "serve",
            "--listen",
            "10.0.2.15:50051",
            "--data",
            "/data/lake",
        ])
        .args(["--flush-secs", "1", "--insecure"])
        .env("RUST_LOG", "warn")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .context("start the collector")?;
    let mut line = String::new();
    BufReader::new(child.stdout.take().context("collector stdout")?).read_line(&mut line)?;
    if !line.starts_with("listening on ") {
        bail!("the collector did not start: {line:?}");
    }
    say("collector-ready");
    if stop_at_once {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    }
    let status = child.wait()?;
    say(&format!("collector-exit {}", status.code().unwrap_or(-1)));
    Ok(())
}

fn spool(collector: &str, boot: u32, push: bool) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let mut o = UplinkOptions::new(
            vec![format!("http://{collector}")],
            "vm-spool".into(),
            "/data/spool".into(),
        );
        o.max_mem_bytes = 0;
        o.backoff_min = Duration::from_millis(100);
        o.backoff_max = Duration::from_secs(1);
        let up = Uplink::start(o)?;
        say(&format!("uplink-ready pending {}", up.pending()));
        if push {
            for k in 0.. {
                let index = boot * 100_000 + k;
                up.push(synthetic_batch(index, ROWS))?;
                say(&format!("pushed {index}"));
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(300);
        while up.pending() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let (_, left) = up.finish(Duration::from_secs(30)).await;
        say(&format!("left {left}"));
        anyhow::Ok(())
    })
}

fn run() -> Result<()> {
    mount_pseudo()?;
    let n = load_modules(Path::new("/modules"))?;
    say(&format!("modules {n}"));
    iface_up("lo", None)?;
    iface_up("eth0", Some((Ipv4Addr::new(10, 0, 2, 15), 24)))?;
    mount("/dev/vda", "/data", "ext4")?;
    say("mounted");
    match cmdline("scanscope.mode").as_deref() {
        Some("collector") => collector(cmdline("scanscope.stop").as_deref() == Some("1")),
        Some("spool") => {
            let boot = cmdline("scanscope.boot")
                .and_then(|b| b.parse().ok())
                .context("scanscope.boot")?;
            let collector = cmdline("scanscope.collector").context("scanscope.collector")?;
            spool(
                &collector,
                boot,
                cmdline("scanscope.push").as_deref() == Some("1"),
            )
        }
        m => bail!("unknown scanscope.mode {m:?}"),
    }
}

fn main() {
    match run() {
        Ok(()) => say("done ok"),
        Err(e) => say(&format!("done error {e:#}")),
    }
    // SAFETY: unmounting our own data disk before powering off.
    unsafe { libc::umount(c"/data".as_ptr()) };
    power_off()
}
