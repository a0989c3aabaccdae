//! The XDP program and the agent on the older kernels scanscope supports, for real: each kernel
//! (Linux 5.15, the oldest supported, and Debian 12's 6.1; fetched by `scripts/fetch-kernels.sh`)
//! boots under qemu with an initramfs whose PID 1 is `scanscope-vm-init`. Inside, the kernel's
//! own verifier loads the build of the program that kernel takes (5.15 lacks
//! `bpf_xdp_load_bytes`: `scanscope_compat`), the conformance corpus runs through
//! BPF_PROG_TEST_RUN against the reference parser, and the real agent on `lo` counts known
//! traffic to closed ports exactly. Emulated CPU (TCG): no KVM needed; about a minute a kernel.
use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use scanscope_testkit::{
    conformance::fuzz_frames,
    reference::{self, Outcome},
};
use scanscope_tests::{sensor_binary, vm};
use serde_json::Value;

/// Kernel image name prefix → the program build it must take.
const KERNELS: [(&str, &str); 2] = [
    ("vmlinuz-5.15.", "scanscope_compat"),
    ("vmlinuz-6.1.", "scanscope"),
];
/// Must match `scanscope-vm-init`.
const FUZZ_SEED: u64 = 0x5ca9_5c09e;
const FUZZ_FRAMES: usize = 3000;
const BOOT_TIMEOUT: Duration = Duration::from_secs(900);

fn find_kernel(prefix: &str) -> Option<PathBuf> {
    vm::find_kernel_file(prefix)
}

fn vm_init_binary() -> Option<PathBuf> {
    sensor_binary()?
        .parent()
        .map(|d| d.join("scanscope-vm-init"))
        .filter(|p| p.is_file())
}

/// Why this test cannot run here.
fn missing() -> Option<String> {
    let mut why: Vec<String> = scanscope_tests::unavailable_reason().into_iter().collect();
    for tool in ["qemu-system-x86_64", "cpio", "ldd"] {
        if !vm::on_path(tool) {
            why.push(format!("{tool} is not installed (scripts/setup.sh)"));
        }
    }
    for (prefix, _) in KERNELS {
        if find_kernel(prefix).is_none() {
            why.push(format!(
                "no {prefix}* in {} (scripts/fetch-kernels.sh)",
                vm::kernels_dir().display()
            ));
        }
    }
    if vm_init_binary().is_none() {
        why.push("scanscope-vm-init is not built".into());
    }
    (!why.is_empty()).then(|| why.join("; "))
}

/// The initramfs: `/init` (scanscope-vm-init), `/bin/scanscope-sensor`, their libraries.
fn initramfs(dir: &Path) -> PathBuf {
    let fs = vm::Initramfs::new(dir).unwrap();
    fs.binary(&vm_init_binary().unwrap(), "/init").unwrap();
    fs.binary(&sensor_binary().unwrap(), "/bin/scanscope-sensor")
        .unwrap();
    fs.pack().unwrap()
}

/// Boots `kernel`; returns the `SCANSCOPE-VM ` lines of its serial console.
fn boot(kernel: &Path, initrd: &Path, console: &Path) -> Vec<String> {
    let started = Instant::now();
    let mut vm = vm::Vm::boot(kernel, initrd, "", &[], console).expect("start qemu");
    while !vm.exited().unwrap() {
        assert!(
            started.elapsed() < BOOT_TIMEOUT,
            "{} did not power off within {BOOT_TIMEOUT:?}; console in {}",
            kernel.display(),
            console.display()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!(
        "{}: booted, ran and powered off in {:.1} s",
        kernel.display(),
        started.elapsed().as_secs_f64()
    );
    vm.console_lines()
}

fn json_line(lines: &[String], key: &str) -> Value {
    lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v.get(key).is_some())
        .unwrap_or_else(|| panic!("no {key} line in {lines:#?}"))[key]
        .clone()
}

#[test]
fn program_and_agent_work_on_linux_5_15_and_6_1() {
    if scanscope_testkit::gate::skip(missing()) {
        return;
    }
    let want_classified = fuzz_frames(FUZZ_SEED, FUZZ_FRAMES)
        .iter()
        .filter(|f| matches!(reference::parse(f), Outcome::Counted(_)))
        .count();
    // Kept if the test fails: the consoles are what to read then.
    let dir = tempfile::Builder::new()
        .prefix("scanscope-vm-test-")
        .tempdir()
        .unwrap()
        .keep();
    eprintln!(
        "initramfs and consoles in {} (removed if the test passes)",
        dir.display()
    );
    let initrd = initramfs(&dir);
    for (prefix, program) in KERNELS {
        let kernel = find_kernel(prefix).unwrap();
        let console = dir.join(format!("{prefix}console.log"));
        let lines = boot(&kernel, &initrd, &console);
        let ctx = format!("{}: {lines:#?}", kernel.display());
        assert!(
            lines.iter().any(|l| l == "done ok"),
            "the VM did not finish cleanly; {ctx}"
        );

        let release = prefix.trim_start_matches("vmlinuz-");
        let kernel = json_line(&lines, "kernel");
        assert!(kernel.as_str().unwrap().starts_with(release), "{ctx}");
        assert_eq!(json_line(&lines, "btf"), true, "{ctx}");

        let c = json_line(&lines, "conformance");
        assert_eq!(c["program"], program, "{ctx}");
        assert_eq!(c["every_kind_frames"], 18, "{ctx}");
        assert_eq!(c["fuzz_frames"], FUZZ_FRAMES, "{ctx}");
        assert_eq!(c["fuzz_classified"], want_classified, "{ctx}");

        assert!(lines.iter().any(|l| l == "agent-exit 0"), "{ctx}");
        // The responder's steering (sk_lookup) works on this kernel.
        let r = json_line(&lines, "respond");
        assert_eq!(r["accepted_local"], "127.0.0.2:8080", "{ctx}");
        assert_eq!(r["pass_refused"], true, "{ctx}");
        let records: Vec<Value> = lines
            .iter()
            .filter_map(|l| l.strip_prefix("jsonl "))
            .map(|l| serde_json::from_str(l).expect("agent JSON line"))
            .collect();
        let mut flows: BTreeMap<(String, String, u64), u64> = BTreeMap::new();
        for r in records.iter().filter(|r| r["type"] == "flow") {
            *flows
                .entry((
                    r["src_ip"].as_str().unwrap().to_string(),
                    r["kind"].as_str().unwrap().to_string(),
                    r["dst_port"].as_u64().unwrap(),
                ))
                .or_default() += r["packets"].as_u64().unwrap();
        }
        let icmp_unreachable = |src: &str| {
            flows
                .iter()
                .filter(|((s, k, _), _)| s == src && k == "icmp_other")
                .map(|(_, n)| n)
                .sum::<u64>()
        };
        let key = |s: &str, k: &str, p: u64| (s.to_string(), k.to_string(), p);
        assert_eq!(
            flows.get(&key("127.0.0.1", "udp", 9)),
            Some(&3),
            "{flows:?}"
        );
        assert_eq!(flows.get(&key("::1", "udp", 9)), Some(&2), "{flows:?}");
        assert_eq!(
            flows.get(&key("127.0.0.1", "tcp_syn", 1)),
            Some(&2),
            "{flows:?}"
        );
        assert_eq!(icmp_unreachable("127.0.0.1"), 3, "{flows:?}");
        assert_eq!(icmp_unreachable("::1"), 2, "{flows:?}");
        // The RSTs answer this host's own connecting sockets: excluded, and counted as such.
        assert!(!flows.keys().any(|(_, k, _)| k == "tcp_rst"), "{flows:?}");
        let own: u64 = records
            .iter()
            .filter(|r| r["type"] == "stats")
            .map(|r| r["counters"]["own_socket"].as_u64().unwrap_or(0))
            .sum();
        assert_eq!(own, 2, "{ctx}");
        let total: u64 = flows.values().sum();
        assert_eq!(total, 3 + 2 + 2 + 3 + 2, "nothing else on lo: {flows:?}");
        // The per-kind counters (stats) agree with the tuple counts (flows): nothing that
        // arrived right after the attach is missing from the stats.
        let mut stats_kinds: BTreeMap<String, u64> = BTreeMap::new();
        for r in records.iter().filter(|r| r["type"] == "stats") {
            for (kind, v) in r["kinds"].as_object().unwrap() {
                *stats_kinds.entry(kind.clone()).or_default() += v["packets"].as_u64().unwrap();
            }
        }
        stats_kinds.retain(|_, n| *n > 0);
        let mut flow_kinds: BTreeMap<String, u64> = BTreeMap::new();
        for ((_, kind, _), n) in &flows {
            *flow_kinds.entry(kind.clone()).or_default() += n;
        }
        assert_eq!(stats_kinds, flow_kinds, "{ctx}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
