//! The single-sensor lab: a sensor namespace and a scanner namespace joined by one veth pair
//! (RAII: deleted on drop, also on panic), and the standard scenario run in it.
use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::atomic::Ordering,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::{
    DARK_V4, NEXT, SCANNER_V4, SENSOR_V4, SENSOR_V6, SRC_EXCLUDED, SRC_MASSCAN, SRC_MIRAI,
    SRC_NMAP, SRC_NMAP_UDP, SRC_SERVER, SRC_V6, SRC_ZMAP,
    scanners::{Scan, scan_in},
    sensor_binary, sh,
};

/// Two namespaces joined by a veth pair; deleted on drop.
#[derive(Debug)]
pub struct Lab {
    pub sensor_ns: String,
    pub scanner_ns: String,
    /// Sensor-side interface (XDP attaches here) and its MAC.
    pub sensor_if: String,
    pub sensor_mac: String,
    pub scanner_if: String,
    pub dir: PathBuf,
    /// Extra arguments for the sensor agent (e.g. `--collector URL --spool-dir DIR`).
    pub sensor_args: Vec<String>,
    sensor: Option<Child>,
}

impl Lab {
    /// Builds the lab; `dir` receives the sensor's output and logs.
    pub fn new(dir: &Path) -> Result<Lab> {
        let id = format!(
            "{}x{}",
            std::process::id() % 100_000,
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let mut lab = Lab {
            sensor_ns: format!("sss{id}"),
            scanner_ns: format!("ssa{id}"),
            sensor_if: format!("sv{id}"),
            sensor_mac: String::new(),
            scanner_if: format!("av{id}"),
            dir: dir.to_path_buf(),
            sensor_args: Vec::new(),
            sensor: None,
        };
        std::fs::create_dir_all(dir)?;
        sh(&["ip", "netns", "add", &lab.sensor_ns])?;
        // From here on, Drop cleans up whatever exists.
        sh(&["ip", "netns", "add", &lab.scanner_ns])?;
        sh(&[
            "ip",
            "link",
            "add",
            &lab.sensor_if,
            "netns",
            &lab.sensor_ns,
            "type",
            "veth",
            "peer",
            "name",
            &lab.scanner_if,
            "netns",
            &lab.scanner_ns,
        ])?;
        let (s, a) = (lab.sensor_ns.clone(), lab.scanner_ns.clone());
        let (si, ai) = (lab.sensor_if.clone(), lab.scanner_if.clone());
        for (ns, cmd) in [
            (&s, vec!["link", "set", "lo", "up"]),
            (&a, vec!["link", "set", "lo", "up"]),
            (&s, vec!["addr", "add", "198.18.0.1/24", "dev", &si]),
            (
                &s,
                vec!["-6", "addr", "add", "fd00:5ca0::1/64", "dev", &si, "nodad"],
            ),
            (&s, vec!["link", "set", &si, "up"]),
            (&s, vec!["route", "add", "local", DARK_V4, "dev", "lo"]),
            (
                &a,
                vec!["-6", "addr", "add", "fd00:5ca0::10/64", "dev", &ai, "nodad"],
            ),
            (&a, vec!["link", "set", &ai, "up"]),
        ] {
            let mut args = vec!["ip", "-n", ns.as_str()];
            args.extend(cmd);
            sh(&args)?;
        }
        for ip in SCANNER_V4 {
            sh(&[
                "ip",
                "-n",
                &a,
                "addr",
                "add",
                &format!("{ip}/24"),
                "dev",
                &ai,
            ])?;
        }
        sh(&[
            "ip", "-n", &a, "route", "add", DARK_V4, "via", SENSOR_V4, "dev", &ai,
        ])?;
        let link = sh(&["ip", "-n", &s, "-o", "link", "show", &si])?;
        lab.sensor_mac = link
            .split_whitespace()
            .skip_while(|w| *w != "link/ether")
            .nth(1)
            .context("sensor interface has no MAC")?
            .to_string();
        Ok(lab)
    }

    /// Starts the sensor agent in the sensor namespace with `config` (TOML).
    pub fn start_sensor(&mut self, config: &str, interval_secs: f64) -> Result<()> {
        let bin = sensor_binary().context("scanscope-sensor binary not found")?;
        let cfg = self.dir.join("sensor.toml");
        std::fs::write(&cfg, config)?;
        let log = std::fs::File::create(self.dir.join("sensor.log"))?;
        let child = Command::new("ip")
            .args(["netns", "exec", &self.sensor_ns])
            .arg(bin)
            .args([
                "--iface",
                &self.sensor_if,
                "--sensor-id",
                "lab-sensor",
                "--interval-secs",
            ])
            .arg(interval_secs.to_string())
            .arg("--config")
            .arg(&cfg)
            .arg("--jsonl")
            .arg(self.dir.join("sensor.jsonl"))
            .args(&self.sensor_args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()?;
        self.sensor = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let text = std::fs::read_to_string(self.dir.join("sensor.log")).unwrap_or_default();
            if text.contains("sensor running") {
                return Ok(());
            }
            if let Some(c) = &mut self.sensor
                && let Some(status) = c.try_wait()?
            {
                bail!("sensor exited with {status} before running:\n{text}");
            }
            if Instant::now() > deadline {
                bail!("sensor did not start within 30 s:\n{text}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The running agent's process id (`ip netns exec` execs it: same pid).
    pub fn sensor_pid(&self) -> Option<u32> {
        self.sensor.as_ref().map(Child::id)
    }

    /// Kills the sensor with SIGKILL: no final drain, no spool spill — a crash.
    pub fn kill_sensor(&mut self) -> Result<()> {
        let mut child = self.sensor.take().context("sensor not running")?;
        sh(&["kill", "-KILL", &child.id().to_string()])?;
        child.wait()?;
        Ok(())
    }

    /// Stops the sensor with SIGTERM; returns its exit status success and its records.
    pub fn stop_sensor(&mut self) -> Result<Vec<Value>> {
        let mut child = self.sensor.take().context("sensor not running")?;
        // The child is `ip netns exec`, which execs the agent: same pid.
        sh(&["kill", "-TERM", &child.id().to_string()])?;
        let status = child.wait()?;
        let log = std::fs::read_to_string(self.dir.join("sensor.log")).unwrap_or_default();
        if !status.success() {
            bail!("sensor exited with {status}:\n{log}");
        }
        let text = std::fs::read_to_string(self.dir.join("sensor.jsonl"))?;
        text.lines()
            .map(|l| serde_json::from_str(l).with_context(|| format!("bad JSON line {l}")))
            .collect()
    }

    /// Rewrites the sensor's configuration file and sends SIGHUP; waits until it reloaded.
    pub fn reload_sensor(&self, config: &str) -> Result<()> {
        std::fs::write(self.dir.join("sensor.toml"), config)?;
        let pid = self.sensor.as_ref().context("sensor not running")?.id();
        let before = std::fs::read_to_string(self.dir.join("sensor.log"))
            .unwrap_or_default()
            .matches("configuration reloaded")
            .count();
        sh(&["kill", "-HUP", &pid.to_string()])?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::fs::read_to_string(self.dir.join("sensor.log"))
            .unwrap_or_default()
            .matches("configuration reloaded")
            .count()
            == before
        {
            if Instant::now() > deadline {
                bail!("sensor did not reload its configuration");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// Runs a command in the scanner namespace, with a time limit.
    pub fn scan(&self, args: &[&str], limit_secs: u32) -> Result<()> {
        scan_in(&self.scanner_ns, args, limit_secs)
    }

    /// Runs a command in the sensor namespace.
    pub fn in_sensor(&self, script: &str) -> Result<()> {
        let out = Command::new("timeout")
            .args([
                "-k",
                "2",
                "10",
                "ip",
                "netns",
                "exec",
                &self.sensor_ns,
                "bash",
                "-c",
                script,
            ])
            .output()?;
        if !out.status.success() {
            bail!(
                "sensor-side {script:?} failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(())
    }

    /// Runs a long-lived command in the scanner namespace (killed with the lab).
    pub fn spawn_in_scanner(&self, args: &[&str]) -> Result<Child> {
        Ok(Command::new("ip")
            .args(["netns", "exec", &self.scanner_ns])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Some(mut c) = self.sensor.take() {
            c.kill().ok();
            c.wait().ok();
        }
        // Kill anything still running inside the namespaces, then delete them (this also
        // removes the veth pair).
        for ns in [&self.scanner_ns, &self.sensor_ns] {
            if let Ok(pids) = sh(&["ip", "netns", "pids", ns]) {
                for pid in pids.split_whitespace() {
                    sh(&["kill", "-KILL", pid]).ok();
                }
            }
            sh(&["ip", "netns", "del", ns]).ok();
        }
    }
}

/// The configuration the standard scenario runs with: a dark sensor (scan kinds dropped, so
/// replies never muddle the counts; ICMP other passes so neighbour discovery works), every
/// packet sampled, and one excluded source.
pub fn standard_config() -> String {
    format!(
        "exclude = [\"{SRC_EXCLUDED}/32\"]\npayload_len = 64\n[sample_every]\ndefault = 1\n[action]\ndefault = \"drop\"\nicmp_other = \"pass\"\n"
    )
}

/// What the standard scenario sends, per source: (source, kind, dst ports with packet counts).
pub fn standard_expectations() -> Vec<(&'static str, &'static str, BTreeMap<u16, u64>)> {
    let ports = |v: &[(u16, u64)]| v.iter().copied().collect::<BTreeMap<_, _>>();
    vec![
        (
            SRC_NMAP,
            "tcp_syn",
            ports(&(20..=30).map(|p| (p, 1)).collect::<Vec<_>>()),
        ),
        (SRC_NMAP_UDP, "udp", ports(&[(53, 2), (123, 2), (161, 2)])),
        (SRC_MASSCAN, "tcp_syn", ports(&[(80, 16), (443, 16)])),
        (SRC_ZMAP, "tcp_syn", ports(&[(8080, 16)])),
        (SRC_MIRAI, "tcp_syn", ports(&[(23, 5)])),
        (SRC_MIRAI, "icmp_echo", ports(&[(0, 3)])),
        (SRC_V6, "tcp_syn", ports(&[(22, 1), (80, 1)])),
    ]
}

/// Tools each source must be recognised as.
pub fn standard_tools() -> Vec<(&'static str, &'static str)> {
    vec![
        (SRC_NMAP, "nmap"),
        (SRC_MASSCAN, "masscan"),
        (SRC_ZMAP, "zmap"),
        (SRC_MIRAI, "mirai"),
        (SRC_V6, "nmap"),
    ]
}

/// Runs the real scanners of the standard scenario.
pub fn run_standard_scans(lab: &Lab) -> Result<()> {
    let ai = lab.scanner_if.as_str();
    let blocklist = lab.dir.join("empty-blocklist.conf");
    std::fs::write(&blocklist, "")?;
    let bl = blocklist.display().to_string();
    // nmap SYN scan, 11 ports, one probe each.
    lab.scan(&Scan::nmap_syn(ai, SRC_NMAP, "20-30", SENSOR_V4).args(), 60)?;
    // nmap UDP scan: two payload probes per port for 53, 123, 161.
    lab.scan(
        &Scan::nmap_udp(ai, SRC_NMAP_UDP, "53,123,161", SENSOR_V4).args(),
        60,
    )?;
    // masscan: 16 hosts × 2 ports at 1000 pps.
    lab.scan(
        &Scan::masscan(ai, SRC_MASSCAN, &lab.sensor_mac, "80,443", &[DARK_V4]).args(),
        5,
    )?;
    // zmap: 16 hosts on port 8080.
    lab.scan(
        &Scan::zmap(
            ai,
            SRC_ZMAP,
            &lab.sensor_mac,
            "8080",
            &bl,
            Some(16),
            &[DARK_V4],
        )
        .args(),
        30,
    )?;
    // Mirai-style: sequence number = destination address (198.18.1.5 = 3323068677).
    lab.scan(
        &Scan::hping(ai, 5, "198.18.1.5")
            .syn(23)
            .source(SRC_MIRAI)
            .seq(3_323_068_677)
            .build()
            .args(),
        20,
    )?;
    // ICMP echo.
    lab.scan(
        &Scan::hping(ai, 3, "198.18.1.5")
            .icmp_echo()
            .source(SRC_MIRAI)
            .build()
            .args(),
        20,
    )?;
    // An excluded source: 10 SYNs that must not be counted.
    lab.scan(
        &Scan::hping(ai, 10, SENSOR_V4)
            .syn(80)
            .source(SRC_EXCLUDED)
            .build()
            .args(),
        20,
    )?;
    // IPv6 SYN scan.
    lab.scan(&Scan::nmap6_syn(ai, SRC_V6, "22,80", SENSOR_V6).args(), 60)?;
    Ok(())
}

/// The sensor host's own connection: an HTTP fetch from a server in the scanner namespace.
/// Its inbound packets (SYN-ACK, ACK, data, FIN) belong to a local socket and must not count.
pub fn own_connection(lab: &Lab) -> Result<()> {
    let mut server =
        lab.spawn_in_scanner(&["python3", "-m", "http.server", "--bind", SRC_SERVER, "8000"])?;
    let mut ok = Err(anyhow::anyhow!("server never answered"));
    for _ in 0..50 {
        std::thread::sleep(Duration::from_millis(100));
        ok = lab.in_sensor(&format!(
            "exec 3<>/dev/tcp/{SRC_SERVER}/8000 && printf 'GET / HTTP/1.0\\r\\n\\r\\n' >&3 && cat <&3 >/dev/null"
        ));
        if ok.is_ok() {
            break;
        }
    }
    server.kill().ok();
    server.wait().ok();
    ok
}
