//! Real scanners as the labs run them: one builder per tool, and [`scan_in`], which runs a
//! command in a lab namespace under a time limit.
//!
//! Network safety: every command names its interface and its targets (the caller passes only
//! addresses of namespaces the lab created), and runs with a bounded count and rate.
use std::process::Command;

use anyhow::{Result, bail};

/// A scanner command line.
#[derive(Debug, Clone)]
pub struct Scan(Vec<String>);

impl Scan {
    fn new(args: &[&str]) -> Scan {
        Scan(args.iter().map(|s| s.to_string()).collect())
    }

    fn push(mut self, args: &[&str]) -> Scan {
        self.0.extend(args.iter().map(|s| s.to_string()));
        self
    }

    /// The arguments, program first.
    pub fn args(&self) -> Vec<&str> {
        self.0.iter().map(String::as_str).collect()
    }

    /// nmap SYN scan of `ports` on `target`, one probe per port, from `src` on `iface`.
    pub fn nmap_syn(iface: &str, src: &str, ports: &str, target: &str) -> Scan {
        Scan::nmap(&["-sS"], iface, src, ports, target)
    }

    /// nmap UDP scan (its payload probes) of `ports` on `target`.
    pub fn nmap_udp(iface: &str, src: &str, ports: &str, target: &str) -> Scan {
        Scan::nmap(&["-sU"], iface, src, ports, target)
    }

    /// nmap IPv6 SYN scan of `ports` on `target`.
    pub fn nmap6_syn(iface: &str, src: &str, ports: &str, target: &str) -> Scan {
        Scan::nmap(&["-6", "-sS"], iface, src, ports, target)
    }

    fn nmap(mode: &[&str], iface: &str, src: &str, ports: &str, target: &str) -> Scan {
        Scan::new(&["nmap"]).push(mode).push(&[
            "-n",
            "-Pn",
            "--max-retries",
            "0",
            "-e",
            iface,
            "-S",
            src,
            "-p",
            ports,
            target,
        ])
    }

    /// masscan of `ports` on `targets` at 1000 packets/s, sent to `router_mac`.
    pub fn masscan(
        iface: &str,
        src: &str,
        router_mac: &str,
        ports: &str,
        targets: &[&str],
    ) -> Scan {
        Scan::new(&[
            "masscan",
            "--interface",
            iface,
            "--source-ip",
            src,
            "--router-mac",
            router_mac,
            "--rate",
            "1000",
            "--wait",
            "0",
            "-p",
            ports,
        ])
        .push(targets)
    }

    /// zmap of `port` on `targets` at 1000 packets/s, sent to `gateway_mac`, with an empty
    /// blocklist file (`blocklist`) and, if given, at most `max` targets. One sender thread:
    /// with several and a few targets, Debian's zmap 2.1.1 sometimes gives a thread an empty
    /// range and aborts (`constraint_lookup_index: Assertion ... failed`, seen in CI; fixed
    /// upstream by zmap/zmap#786).
    pub fn zmap(
        iface: &str,
        src: &str,
        gateway_mac: &str,
        port: &str,
        blocklist: &str,
        max: Option<u32>,
        targets: &[&str],
    ) -> Scan {
        let mut s = Scan::new(&[
            "zmap",
            "-i",
            iface,
            "-S",
            src,
            "-G",
            gateway_mac,
            "-p",
            port,
            "-r",
            "1000",
            "-T",
            "1",
        ]);
        if let Some(n) = max {
            s = s.push(&["-n", &n.to_string()]);
        }
        s.push(&["-c", "0", "-b", blocklist, "-q"]).push(targets)
    }

    /// hping3 sending `count` packets to `target` on `iface` (add the packet type and options
    /// with the methods below; the default spacing is 10 ms).
    pub fn hping(iface: &str, count: u32, target: &str) -> Hping {
        Hping {
            iface: iface.to_string(),
            count,
            target: target.to_string(),
            opts: Vec::new(),
            interval: Some("u10000".into()),
        }
    }
}

/// An hping3 command being built.
#[derive(Debug, Clone)]
pub struct Hping {
    iface: String,
    count: u32,
    target: String,
    opts: Vec<String>,
    interval: Option<String>,
}

impl Hping {
    fn opt(mut self, args: &[&str]) -> Hping {
        self.opts.extend(args.iter().map(|s| s.to_string()));
        self
    }

    /// TCP SYNs to `port`.
    pub fn syn(self, port: u16) -> Hping {
        self.opt(&["-S", "-p", &port.to_string()])
    }

    /// TCP SYN-ACKs from source port `sport` (kept) to `port`: backscatter.
    pub fn synack(self, sport: u16, port: u16) -> Hping {
        self.opt(&[
            "-S",
            "-A",
            "-s",
            &sport.to_string(),
            "-k",
            "-p",
            &port.to_string(),
        ])
    }

    /// ICMP echo requests.
    pub fn icmp_echo(self) -> Hping {
        self.opt(&["-1"])
    }

    /// Forged source address.
    pub fn source(self, src: &str) -> Hping {
        self.opt(&["-a", src])
    }

    /// A random forged source address per packet.
    pub fn rand_source(self) -> Hping {
        self.opt(&["--rand-source"])
    }

    /// TCP sequence number.
    pub fn seq(self, seq: u32) -> Hping {
        self.opt(&["--setseq", &seq.to_string()])
    }

    /// Microseconds between packets (`None`: hping3's default of one second).
    pub fn every_us(mut self, us: Option<u32>) -> Hping {
        self.interval = us.map(|u| format!("u{u}"));
        self
    }

    /// The command.
    pub fn build(self) -> Scan {
        let count = self.count.to_string();
        let mut s = Scan::new(&["hping3"]);
        s.0.extend(self.opts);
        s = s.push(&["-c", &count]);
        if let Some(i) = &self.interval {
            s = s.push(&["-i", i]);
        }
        s.push(&["-I", &self.iface, &self.target])
    }
}

/// Runs a scanner command in namespace `ns` under `timeout` (SIGINT after `limit_secs`, SIGKILL
/// 2 s later). Accepted endings besides success: `timeout`'s 124 (masscan does not exit by itself
/// on a quiet link, so its runs end that way after sending everything), hping3's 1 (nothing
/// answers: what a dark sensor does), and masscan killed while "waiting to exit" (it sends at a
/// fixed rate and has reported 100 % done by then).
pub fn scan_in(ns: &str, args: &[&str], limit_secs: u32) -> Result<()> {
    let limit = limit_secs.to_string();
    let mut full = vec!["timeout", "-k", "2", "-s", "INT", limit.as_str()];
    full.extend(["ip", "netns", "exec", ns]);
    full.extend(args);
    let out = Command::new(full[0]).args(&full[1..]).output()?;
    let quiet_hping = args.first() == Some(&"hping3") && out.status.code() == Some(1);
    let masscan_killed = args.first() == Some(&"masscan")
        && std::os::unix::process::ExitStatusExt::signal(&out.status) == Some(9);
    if !out.status.success() && out.status.code() != Some(124) && !quiet_hping && !masscan_killed {
        bail!(
            "{args:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_lines() {
        assert_eq!(
            Scan::nmap_syn("a0", "10.0.0.2", "20-30", "10.0.0.1").args(),
            "nmap -sS -n -Pn --max-retries 0 -e a0 -S 10.0.0.2 -p 20-30 10.0.0.1"
                .split(' ')
                .collect::<Vec<_>>()
        );
        let h = Scan::hping("a0", 5, "10.0.0.5")
            .syn(23)
            .source("10.0.0.2")
            .seq(7)
            .build();
        assert_eq!(
            h.args().join(" "),
            "hping3 -S -p 23 -a 10.0.0.2 --setseq 7 -c 5 -i u10000 -I a0 10.0.0.5"
        );
        let z = Scan::zmap("a0", "s", "m", "8080", "bl", Some(16), &["t1", "t2"]);
        assert_eq!(
            z.args().join(" "),
            "zmap -i a0 -S s -G m -p 8080 -r 1000 -T 1 -n 16 -c 0 -b bl -q t1 t2"
        );
    }
}
