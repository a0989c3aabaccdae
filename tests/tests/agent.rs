//! The agent binary's failure paths and its generic-mode fallback: one clear `error:` line for a
//! missing interface, a bad configuration file, missing privileges, and a kernel without BTF,
//! without the bpf() system call, refusing XDP programs or refusing to attach them (simulated:
//! BTF hidden in a mount namespace, bpf() commands failed by a seccomp filter); on a device
//! without native XDP (a Linux bridge) it attaches in generic mode, says so, and still counts
//! exactly.
use std::{
    os::unix::process::CommandExt,
    process::{Command, Output},
    time::Duration,
};

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule,
};

use scanscope_tests::{Scan, flows_by_source, privileged_or_skip, scan_in, sensor_binary};

fn skip() -> bool {
    privileged_or_skip().is_none()
}

fn sh(args: &[&str]) {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The agent's exit status and its one `error:` line.
fn error_line(out: &Output) -> String {
    assert!(!out.status.success(), "the agent should have failed");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "exactly one error line:\n{stderr}");
    errors[0].to_string()
}

#[test]
fn agent_refuses_bad_input_with_one_error_line() {
    if skip() {
        return;
    }
    let bin = sensor_binary().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| Command::new(&bin).args(args).output().unwrap();

    let e = error_line(&run(&["--iface", "nosuch0", "--jsonl", "/dev/null"]));
    assert!(e.contains("interface \"nosuch0\" does not exist"), "{e}");

    let cfg = dir.path().join("bad.toml");
    std::fs::write(&cfg, "payload_len = 64\nsample_every = 5\n").unwrap();
    let c = cfg.to_str().unwrap();
    let e = error_line(&run(&[
        "--iface",
        "lo",
        "--config",
        c,
        "--jsonl",
        "/dev/null",
    ]));
    assert!(
        e.contains("line 2 column 16") && e.contains("expected a map"),
        "{e}"
    );
    std::fs::write(&cfg, "[action]\ntcp_syn = \"reject\"\n").unwrap();
    let e = error_line(&run(&[
        "--iface",
        "lo",
        "--config",
        c,
        "--jsonl",
        "/dev/null",
    ]));
    assert!(e.contains("\"pass\" or \"drop\""), "{e}");

    // Without root and capabilities (uid/gid nobody, no inheritable or ambient capabilities).
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
        ])
        .arg(&bin)
        .args(["--iface", "lo", "--jsonl", "/dev/null"])
        .output()
        .unwrap();
    let e = error_line(&out);
    assert!(e.contains("missing privileges"), "{e}");
}

/// A seccomp filter failing `bpf()` with `errno` — every command, or only `cmd`.
fn bpf_fails(cmd: Option<u64>, errno: i32) -> BpfProgram {
    let rules = match cmd {
        None => vec![],
        Some(cmd) => vec![
            SeccompRule::new(vec![
                SeccompCondition::new(0, SeccompCmpArgLen::Dword, SeccompCmpOp::Eq, cmd).unwrap(),
            ])
            .unwrap(),
        ],
    };
    SeccompFilter::new(
        [(libc::SYS_bpf, rules)].into_iter().collect(),
        SeccompAction::Allow,
        SeccompAction::Errno(errno as u32),
        std::env::consts::ARCH.try_into().unwrap(),
    )
    .unwrap()
    .try_into()
    .unwrap()
}

/// Runs the agent on `lo` of a fresh network namespace (nothing of the host's is touched), with
/// `prep` run first in the same fresh mount namespace, under an optional seccomp filter.
fn agent_in_fresh_namespaces(prep: &str, filter: Option<BpfProgram>) -> Output {
    let bin = sensor_binary().unwrap();
    let mut cmd = Command::new("timeout");
    cmd.args(["60", "unshare", "--net", "--mount", "sh", "-c"])
        .arg(format!("{prep} exec \"$0\" \"$@\""))
        .arg(&bin)
        .args(["--iface", "lo", "--jsonl", "/dev/null"]);
    if let Some(filter) = filter {
        // SAFETY: between fork and exec only the prctl/seccomp system calls run, on a filter
        // compiled before the fork.
        unsafe {
            cmd.pre_exec(move || seccompiler::apply_filter(&filter).map_err(std::io::Error::other));
        }
    }
    cmd.output().unwrap()
}

#[test]
fn agent_explains_a_kernel_without_btf_bpf_or_xdp() {
    if skip() {
        return;
    }
    const BPF_PROG_LOAD: u64 = 5;
    const BPF_LINK_CREATE: u64 = 28;

    let e = error_line(&agent_in_fresh_namespaces(
        "mount -t tmpfs none /sys/kernel/btf &&",
        None,
    ));
    assert!(e.contains("this kernel has no BTF"), "{e}");

    let e = error_line(&agent_in_fresh_namespaces(
        "",
        Some(bpf_fails(None, libc::ENOSYS)),
    ));
    assert!(e.contains("this kernel has no BPF system call"), "{e}");

    let e = error_line(&agent_in_fresh_namespaces(
        "",
        Some(bpf_fails(Some(BPF_PROG_LOAD), libc::EINVAL)),
    ));
    assert!(
        e.contains("this kernel does not accept XDP programs"),
        "{e}"
    );

    let e = error_line(&agent_in_fresh_namespaces(
        "",
        Some(bpf_fails(Some(BPF_LINK_CREATE), libc::EOPNOTSUPP)),
    ));
    assert!(
        e.contains("attaching XDP to lo failed (driver and generic mode)"),
        "{e}"
    );

    // The same namespaces without any of that: the agent starts (and is stopped by timeout's
    // SIGTERM after it attached, exiting 0 after its final drain).
    let out = Command::new("timeout")
        .args([
            "--preserve-status",
            "-s",
            "TERM",
            "3",
            "unshare",
            "--net",
            "--mount",
        ])
        .arg(sensor_binary().unwrap())
        .args(["--iface", "lo", "--jsonl", "/dev/null"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("XDP program loaded"), "{stderr}");
    assert!(stderr.contains("attached in generic mode"), "{stderr}");
    assert!(!stderr.contains("error:"), "{stderr}");
}

#[test]
fn generic_mode_fallback_on_a_bridge_still_counts_exactly() {
    if skip() {
        return;
    }
    let id = std::process::id() % 100_000;
    let (sns, ans) = (format!("ssg{id}"), format!("ssh{id}"));
    struct Guard(Vec<String>);
    impl Drop for Guard {
        fn drop(&mut self) {
            for ns in &self.0 {
                Command::new("ip").args(["netns", "del", ns]).status().ok();
            }
        }
    }
    sh(&["ip", "netns", "add", &sns]);
    let _guard = Guard(vec![sns.clone(), ans.clone()]);
    sh(&["ip", "netns", "add", &ans]);
    sh(&[
        "ip", "link", "add", "b0", "netns", &sns, "type", "veth", "peer", "name", "a0", "netns",
        &ans,
    ]);
    for (ns, args) in [
        (&sns, vec!["link", "add", "br0", "type", "bridge"]),
        (&sns, vec!["link", "set", "b0", "master", "br0"]),
        (&sns, vec!["addr", "add", "198.18.0.1/24", "dev", "br0"]),
        (&sns, vec!["link", "set", "b0", "up"]),
        (&sns, vec!["link", "set", "br0", "up"]),
        (&sns, vec!["link", "set", "lo", "up"]),
        (&ans, vec!["addr", "add", "198.18.0.11/24", "dev", "a0"]),
        (&ans, vec!["link", "set", "a0", "up"]),
    ] {
        let mut v = vec!["ip", "-n", ns.as_str()];
        v.extend(args);
        sh(&v);
    }
    let dir = tempfile::tempdir().unwrap();
    let jsonl = dir.path().join("out.jsonl");
    let log = dir.path().join("sensor.log");
    let cfg = dir.path().join("sensor.toml");
    std::fs::write(
        &cfg,
        "[action]\ndefault = \"drop\"\nicmp_other = \"pass\"\n",
    )
    .unwrap();
    /// Kills the agent if the test fails before stopping it.
    struct Agent(std::process::Child);
    impl Drop for Agent {
        fn drop(&mut self) {
            self.0.kill().ok();
            self.0.wait().ok();
        }
    }
    let mut agent = Agent(
        Command::new("ip")
            .args(["netns", "exec", &sns])
            .arg(sensor_binary().unwrap())
            .args([
                "--iface",
                "br0",
                "--sensor-id",
                "generic",
                "--interval-secs",
                "0.5",
                "--metrics",
                "127.0.0.1:9108",
                "--config",
            ])
            .arg(&cfg)
            .arg("--jsonl")
            .arg(&jsonl)
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("sensor running")
    {
        assert!(std::time::Instant::now() < deadline, "sensor did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Five SYNs (the first waits for ARP, which passes the program untouched).
    scan_in(
        &ans,
        &Scan::hping("a0", 5, "198.18.0.1").syn(8443).build().args(),
        20,
    )
    .expect("hping3");
    std::thread::sleep(Duration::from_millis(1200));
    // The agent's /metrics (on the sensor namespace's loopback) counted them too.
    let scrape = Command::new("ip")
        .args([
            "netns",
            "exec",
            &sns,
            "curl",
            "-sf",
            "http://127.0.0.1:9108/metrics",
        ])
        .output()
        .unwrap();
    let metrics = String::from_utf8_lossy(&scrape.stdout).to_string();
    assert!(
        metrics
            .lines()
            .any(|l| l == r#"scanscope_sensor_packets_total{kind="tcp_syn"} 5"#),
        "{metrics}"
    );
    assert!(
        metrics.contains("# TYPE scanscope_sensor_spool_bytes gauge"),
        "{metrics}"
    );
    assert!(metrics.ends_with("# EOF\n"), "{metrics}");
    sh(&["kill", "-TERM", &agent.0.id().to_string()]);
    assert!(agent.0.wait().unwrap().success());
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("attached in generic mode"), "{text}");
    let records: Vec<serde_json::Value> = std::fs::read_to_string(&jsonl)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let flows = flows_by_source(&records);
    let syn = flows
        .get(&("198.18.0.11".to_string(), "tcp_syn".to_string()))
        .cloned()
        .unwrap_or_default();
    assert_eq!(syn, [(8443u16, 5u64)].into_iter().collect(), "{flows:?}");
}
