//! The multi-sensor lab: three sensor namespaces behind a router namespace, one scanner
//! namespace with a source address per tool, and the collector in the router namespace.
//!
//! ```text
//!  scanner ns (a0: 10.200.0.2 + sources) ── core ns (router, collector, dnsmasq) ── s1 ns 198.18.1.0/24
//!                                                                              ├─ s2 ns 198.18.2.0/24
//!                                                                              └─ s3 ns 198.18.3.0/24
//! ```
//! Network safety: every address lives in namespaces this module creates and deletes (RAII, also
//! on panic); no namespace has a default route or a link to the host. Scanners target only the
//! sensors' dark ranges, name their interface and run with bounded count and rate.
use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::atomic::Ordering,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};

use crate::{NEXT, scanners::Scan, sensor_binary, sh, transport::CollectorProc};

/// Scanner sources (one per tool).
pub const M_NMAP: &str = "203.0.113.11";
/// Inside Censys' shipped range 162.142.125.0/24.
pub const M_MASSCAN: &str = "162.142.125.77";
pub const M_ZMAP: &str = "203.0.113.13";
pub const M_MIRAI: &str = "203.0.113.14";
/// A source that browses the responder (curl) and offers an SSH key.
pub const M_WEB: &str = "203.0.113.21";
/// A source that brute-forces the responder (hydra).
pub const M_BRUTE: &str = "203.0.113.22";
/// The addresses sensor 1 answers on when it runs the responder (`respond_on = Some(1)`).
pub const RESPOND_PREFIX: &str = "198.18.1.200/30";
/// The victim whose spoofed traffic comes back as SYN-ACK backscatter.
pub const M_VICTIM: &str = "192.0.2.50";
/// SYNs from random spoofed sources in the flood.
pub const FLOOD_PACKETS: u32 = 100;
/// SYN-ACKs of the backscatter run.
pub const BACKSCATTER_PACKETS: u32 = 40;
/// The PTR name dnsmasq gives the zmap source (Shadowserver's rDNS suffix).
pub const ZMAP_PTR: &str = "scanner-13.scan.shadowserver.org";
/// dnsmasq's port on the core namespace's loopback.
pub const DNS_PORT: u16 = 5353;

/// The lab; deleted on drop.
#[derive(Debug)]
pub struct MultiLab {
    pub core: String,
    pub scanner: String,
    pub sensors: Vec<String>,
    pub dir: PathBuf,
    /// MAC of the router's scanner-side interface (masscan/zmap send to it).
    pub router_mac: String,
    pub collector: Option<CollectorProc>,
    /// The sensor (1-based) that runs the responder on [`RESPOND_PREFIX`], if any.
    pub respond_on: Option<usize>,
    agents: Vec<Child>,
    dns: Option<Child>,
}

impl MultiLab {
    /// Builds the namespaces and links.
    pub fn new(dir: &Path, sensors: usize) -> Result<MultiLab> {
        let id = format!(
            "{}m{}",
            std::process::id() % 100_000,
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        std::fs::create_dir_all(dir)?;
        let mut lab = MultiLab {
            core: format!("ssc{id}"),
            scanner: format!("ssa{id}"),
            sensors: (1..=sensors).map(|k| format!("ss{k}{id}")).collect(),
            dir: dir.to_path_buf(),
            router_mac: String::new(),
            collector: None,
            respond_on: None,
            agents: Vec::new(),
            dns: None,
        };
        sh(&["ip", "netns", "add", &lab.core])?;
        // From here on, Drop removes whatever exists.
        sh(&["ip", "netns", "add", &lab.scanner])?;
        for s in &lab.sensors {
            sh(&["ip", "netns", "add", s])?;
        }
        // IPv4 only: no IPv6 neighbour discovery chatter in the sensors' counts.
        let mut all = vec![lab.core.clone(), lab.scanner.clone()];
        all.extend(lab.sensors.iter().cloned());
        for ns in &all {
            for key in [
                "net.ipv6.conf.all.disable_ipv6=1",
                "net.ipv6.conf.default.disable_ipv6=1",
            ] {
                sh(&["ip", "netns", "exec", ns, "sysctl", "-qw", key])?;
            }
        }
        let (c, a) = (lab.core.clone(), lab.scanner.clone());
        let ip = |ns: &str, args: &[&str]| -> Result<String> {
            let mut v = vec!["ip", "-n", ns];
            v.extend(args);
            sh(&v)
        };
        sh(&[
            "ip", "link", "add", "a0", "netns", &a, "type", "veth", "peer", "name", "c0", "netns",
            &c,
        ])?;
        for ns in [&c, &a] {
            ip(ns, &["link", "set", "lo", "up"])?;
        }
        ip(&c, &["addr", "add", "10.200.0.1/24", "dev", "c0"])?;
        ip(&c, &["link", "set", "c0", "up"])?;
        ip(&a, &["addr", "add", "10.200.0.2/24", "dev", "a0"])?;
        for src in [M_NMAP, M_MASSCAN, M_ZMAP, M_MIRAI, M_VICTIM, M_WEB, M_BRUTE] {
            ip(&a, &["addr", "add", &format!("{src}/32"), "dev", "a0"])?;
        }
        ip(&a, &["link", "set", "a0", "up"])?;
        ip(
            &a,
            &[
                "route",
                "add",
                "198.18.0.0/16",
                "via",
                "10.200.0.1",
                "dev",
                "a0",
            ],
        )?;
        for args in [
            "net.ipv4.ip_forward=1",
            "net.ipv4.conf.all.rp_filter=0",
            "net.ipv4.conf.default.rp_filter=0",
        ] {
            sh(&["ip", "netns", "exec", &c, "sysctl", "-qw", args])?;
        }
        for (k, s) in lab.sensors.iter().enumerate() {
            let k = k + 1;
            let (sif, cif) = (format!("s{k}"), format!("c{k}"));
            sh(&[
                "ip", "link", "add", &sif, "netns", s, "type", "veth", "peer", "name", &cif,
                "netns", &c,
            ])?;
            ip(s, &["link", "set", "lo", "up"])?;
            ip(s, &["addr", "add", &format!("10.20.{k}.1/24"), "dev", &sif])?;
            ip(s, &["link", "set", &sif, "up"])?;
            ip(
                s,
                &[
                    "route",
                    "add",
                    "local",
                    &format!("198.18.{k}.0/24"),
                    "dev",
                    "lo",
                ],
            )?;
            ip(
                &c,
                &["addr", "add", &format!("10.20.{k}.254/24"), "dev", &cif],
            )?;
            ip(&c, &["link", "set", &cif, "up"])?;
            ip(
                &c,
                &[
                    "route",
                    "add",
                    &format!("198.18.{k}.0/24"),
                    "via",
                    &format!("10.20.{k}.1"),
                ],
            )?;
        }
        let link = ip(&c, &["-o", "link", "show", "c0"])?;
        lab.router_mac = link
            .split_whitespace()
            .skip_while(|w| *w != "link/ether")
            .nth(1)
            .context("router interface has no MAC")?
            .to_string();
        Ok(lab)
    }

    /// Starts the collector in the core namespace (no automatic rollup: the test runs it).
    pub fn start_collector(&mut self, lake: &Path) -> Result<()> {
        let c = CollectorProc::start_with_prefix(
            &["ip", "netns", "exec", &self.core],
            "0.0.0.0:0",
            lake,
            // The lab's router namespace is a closed network: no TLS needed.
            &["--flush-secs", "0.5", "--no-auto-rollup", "--insecure"],
        )?;
        self.collector = Some(c);
        Ok(())
    }

    /// Starts one agent per sensor namespace, streaming to the collector.
    pub fn start_agents(&mut self, interval_secs: f64) -> Result<()> {
        let bin = sensor_binary().context("scanscope-sensor binary not found")?;
        let port = self
            .collector
            .as_ref()
            .context("collector not started")?
            .addr
            .port();
        let cfg = self.dir.join("sensor.toml");
        std::fs::write(
            &cfg,
            "exclude = [\"10.20.0.0/16\"]\npayload_len = 64\n[sample_every]\ndefault = 1\n[action]\ndefault = \"drop\"\nicmp_other = \"pass\"\n",
        )?;
        for (k, ns) in self.sensors.clone().iter().enumerate() {
            let k = k + 1;
            let log = self.dir.join(format!("sensor{k}.log"));
            let mut extra: Vec<String> = Vec::new();
            let mut cfg = cfg.clone();
            if self.respond_on == Some(k) {
                // TCP passes to this host so the responder can answer; replies reach the two
                // responder clients only (routes for them alone), so the scans of the
                // scenario see this sensor as dark as the others.
                cfg = self.dir.join(format!("sensor{k}-respond.toml"));
                std::fs::write(
                    &cfg,
                    "exclude = [\"10.20.0.0/16\"]\npayload_len = 64\n[sample_every]\ndefault = 1\n[action]\ndefault = \"pass\"\n",
                )?;
                let rc = self.dir.join(format!("respond{k}.toml"));
                std::fs::write(
                    &rc,
                    format!("addresses = [\"{RESPOND_PREFIX}\"]\npass_ports = [22]\n"),
                )?;
                for src in [M_WEB, M_BRUTE] {
                    sh(&[
                        "ip",
                        "-n",
                        ns,
                        "route",
                        "replace",
                        &format!("{src}/32"),
                        "via",
                        &format!("10.20.{k}.254"),
                    ])?;
                    sh(&[
                        "ip",
                        "-n",
                        &self.core,
                        "route",
                        "replace",
                        &format!("{src}/32"),
                        "via",
                        "10.200.0.2",
                    ])?;
                }
                sh(&[
                    "ip",
                    "-n",
                    &self.scanner,
                    "route",
                    "replace",
                    RESPOND_PREFIX,
                    "via",
                    "10.200.0.1",
                    "dev",
                    "a0",
                    "src",
                    M_BRUTE,
                ])?;
                extra = vec!["--respond-config".into(), rc.display().to_string()];
            }
            let child = Command::new("ip")
                .args(["netns", "exec", ns])
                .arg(&bin)
                .args(["--iface", &format!("s{k}"), "--sensor-id", &format!("s{k}")])
                .arg("--interval-secs")
                .arg(interval_secs.to_string())
                .arg("--config")
                .arg(&cfg)
                .arg("--collector")
                .arg(format!("http://10.20.{k}.254:{port}"))
                .arg("--spool-dir")
                .arg(self.dir.join(format!("spool{k}")))
                .args(&extra)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log)?)
                .spawn()?;
            self.agents.push(child);
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                if text.contains("sensor running") {
                    break;
                }
                if Instant::now() > deadline {
                    bail!("sensor s{k} did not start within 30 s:\n{text}");
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Ok(())
    }

    /// Runs a client in the scanner namespace within `secs`, whatever its exit status.
    pub fn client(&self, secs: u32, args: &[&str]) -> Result<String> {
        crate::client_in(&self.scanner, &self.dir, secs, args)
    }

    /// The responder's visitors (sensor 1 with `respond_on = Some(1)`): curl with an exploit URL
    /// from [`M_WEB`], an SSH client offering a key from [`M_WEB`], hydra trying three SSH
    /// passwords and three FTP ones from [`M_BRUTE`].
    pub fn visit_responder(&self) -> Result<()> {
        let web = "http://198.18.1.200:8080/cgi-bin/luci/;stok=/locale?form=country&operation=write&country=$(id)";
        self.client(
            15,
            &[
                "curl",
                "-s",
                "-g",
                "--max-time",
                "5",
                "--interface",
                M_WEB,
                "-A",
                "Mozilla/5.0 (compatible; demo-exploit/1.0)",
                web,
            ],
        )?;
        let key = self.dir.join("id_ed25519");
        if !key.exists() {
            let ok = Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(&key)
                .status()?
                .success();
            if !ok {
                bail!("ssh-keygen failed");
            }
        }
        let key_s = key.display().to_string();
        self.client(
            15,
            &[
                "ssh",
                "-i",
                &key_s,
                "-o",
                "IdentitiesOnly=yes",
                "-o",
                "BatchMode=yes",
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "ConnectTimeout=5",
                "-b",
                M_WEB,
                "-p",
                "2222",
                "admin@198.18.1.201",
                "id",
            ],
        )?;
        let pw = self.dir.join("passwords.txt");
        std::fs::write(&pw, "123456\nadmin\nroot\n")?;
        let pw_s = pw.display().to_string();
        for (service, port) in [("ssh", "2222"), ("ftp", "21")] {
            let out = self.client(
                60,
                &[
                    "hydra",
                    "-I",
                    "-t",
                    "1",
                    "-l",
                    "root",
                    "-P",
                    &pw_s,
                    "-s",
                    port,
                    "198.18.1.202",
                    service,
                ],
            )?;
            if !out.contains("0 valid password") {
                bail!("hydra {service}: {out}");
            }
        }
        Ok(())
    }

    /// Stops every agent with SIGTERM (final drain and upload) and checks they exited well.
    pub fn stop_agents(&mut self) -> Result<()> {
        for c in &self.agents {
            sh(&["kill", "-TERM", &c.id().to_string()])?;
        }
        for (k, mut c) in std::mem::take(&mut self.agents).into_iter().enumerate() {
            let status = c.wait()?;
            if !status.success() {
                let log = std::fs::read_to_string(self.dir.join(format!("sensor{}.log", k + 1)))
                    .unwrap_or_default();
                bail!("sensor s{} exited with {status}:\n{log}", k + 1);
            }
        }
        Ok(())
    }

    /// Runs dnsmasq on the core namespace's loopback with PTR records.
    /// Starts dnsmasq in the core namespace: `named` sources get a PTR name whose forward (A)
    /// record points back at them; `ptr_only` sources a PTR name with no such A record (what a
    /// scanner that controls only its reverse zone can claim).
    pub fn start_dns(&mut self, named: &[(&str, &str)], ptr_only: &[(&str, &str)]) -> Result<()> {
        let mut cmd = Command::new("ip");
        cmd.args([
            "netns",
            "exec",
            &self.core,
            "dnsmasq",
            "--keep-in-foreground",
            "-C",
            "/dev/null",
        ])
        .args([
            "--no-resolv",
            "--no-hosts",
            "--bind-interfaces",
            "--listen-address",
            "127.0.0.1",
        ])
        .arg(format!("--port={DNS_PORT}"))
        // Authoritative for reverse names: unknown ones get NXDOMAIN, not REFUSED.
        .arg("--local=/in-addr.arpa/")
        .arg("--pid-file")
        .arg("--user=root");
        for (ip, name) in named {
            cmd.arg(format!("--host-record={name},{ip}"));
        }
        for (ip, name) in ptr_only {
            let v4: std::net::Ipv4Addr = ip.parse()?;
            let o = v4.octets();
            cmd.arg(format!(
                "--ptr-record={}.{}.{}.{}.in-addr.arpa,{name}",
                o[3], o[2], o[1], o[0]
            ));
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.dir.join("dnsmasq.log"))?)
            .spawn()?;
        self.dns = Some(child);
        std::thread::sleep(Duration::from_millis(300));
        Ok(())
    }

    /// Runs a bounded command in the scanner namespace (see [`crate::scan_in`]).
    pub fn scan(&self, args: &[&str], limit_secs: u32) -> Result<()> {
        crate::scan_in(&self.scanner, args, limit_secs)
    }

    /// A command run in the core namespace (e.g. the collector's rollup and report).
    pub fn in_core(&self, program: &Path, args: &[&str]) -> Result<std::process::Output> {
        Ok(Command::new("ip")
            .args(["netns", "exec", &self.core])
            .arg(program)
            .args(args)
            .output()?)
    }

    /// The one UTC day the lake's flows fall in (a run that crossed midnight is an error).
    pub fn lake_date(lake: &Path) -> Result<String> {
        let days: Vec<String> = std::fs::read_dir(lake.join("flows"))?
            .flatten()
            .map(|e| {
                e.file_name()
                    .to_string_lossy()
                    .trim_start_matches("date=")
                    .to_string()
            })
            .collect();
        match &days[..] {
            [d] => Ok(d.clone()),
            _ => bail!("expected one day of flows, found {days:?} (the run crossed UTC midnight?)"),
        }
    }

    /// Writes the lab's MMDB (`tests/py/write_mmdb.py`, mmdb-writer): country and ASN for
    /// 203.0.113.0/24 (NL, AS64500) and 162.142.125.0/24 (US, AS398324).
    pub fn write_mmdb(path: &Path) -> Result<()> {
        let py = Path::new(env!("CARGO_MANIFEST_DIR")).join("py/write_mmdb.py");
        let st = Command::new("python3").arg(py).arg(path).status()?;
        if !st.success() {
            bail!("writing the MMDB failed (is mmdb-writer installed? scripts/setup.sh)");
        }
        Ok(())
    }

    /// The scenario: nmap, masscan, zmap, Mirai-style hping3, a spoofed random-source SYN flood
    /// and SYN-ACK backscatter, each from its own source.
    pub fn run_scenario(&self) -> Result<()> {
        let blocklist = self.dir.join("empty-blocklist.conf");
        std::fs::write(&blocklist, "")?;
        let bl = blocklist.display().to_string();
        // nmap: 11 ports on one host of sensor 1.
        self.scan(
            &Scan::nmap_syn("a0", M_NMAP, "20-30", "198.18.1.130").args(),
            60,
        )?;
        // masscan: 2 ports on 16 hosts of sensors 1 and 2.
        let two = ["198.18.1.128/28", "198.18.2.128/28"];
        self.scan(
            &Scan::masscan("a0", M_MASSCAN, &self.router_mac, "80,443", &two).args(),
            6,
        )?;
        // zmap: port 8080 on 16 hosts of each of the three sensors.
        let three = ["198.18.1.128/28", "198.18.2.128/28", "198.18.3.128/28"];
        self.scan(
            &Scan::zmap("a0", M_ZMAP, &self.router_mac, "8080", &bl, None, &three).args(),
            30,
        )?;
        // Mirai-style: sequence number = destination address, port 23, three hosts of sensor 3.
        for h in [130u8, 131, 132] {
            let dst = std::net::Ipv4Addr::new(198, 18, 3, h);
            let scan = Scan::hping("a0", 1, &dst.to_string())
                .syn(23)
                .source(M_MIRAI)
                .seq(u32::from(dst))
                .every_us(None)
                .build();
            self.scan(&scan.args(), 10)?;
        }
        // Spoofed random-source SYN flood against one host of sensor 2.
        let flood = Scan::hping("a0", FLOOD_PACKETS, "198.18.2.130")
            .syn(80)
            .rand_source()
            .every_us(Some(2000))
            .build();
        self.scan(&flood.args(), 20)?;
        // Backscatter: SYN-ACKs from the victim's address to sensor 3.
        let bs = Scan::hping("a0", BACKSCATTER_PACKETS, "198.18.3.140")
            .synack(80, 40000)
            .source(M_VICTIM)
            .every_us(Some(5000))
            .build();
        self.scan(&bs.args(), 20)?;
        Ok(())
    }
}

impl Drop for MultiLab {
    fn drop(&mut self) {
        for mut c in self.agents.drain(..).chain(self.dns.take()) {
            c.kill().ok();
            c.wait().ok();
        }
        if let Some(mut c) = self.collector.take() {
            c.stop().ok();
        }
        let mut all = vec![self.scanner.clone(), self.core.clone()];
        all.extend(self.sensors.iter().cloned());
        for ns in &all {
            if let Ok(pids) = sh(&["ip", "netns", "pids", ns]) {
                for pid in pids.split_whitespace() {
                    sh(&["kill", "-KILL", pid]).ok();
                }
            }
            sh(&["ip", "netns", "del", ns]).ok();
        }
    }
}
