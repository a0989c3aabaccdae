//! Helpers for transport tests: the collector as a child process (so it can be killed with
//! SIGKILL), synthetic batches with known rows, a Parquet lake reader and test certificates.
use std::{
    collections::BTreeMap,
    fs::File,
    io::{BufRead, BufReader},
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::UInt64Type;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use scanscope_proto::v1::{Batch, Flow, Kind};

/// The collector binary next to this executable (debug or release target directory).
pub fn collector_binary() -> Option<PathBuf> {
    crate::binary("scanscope-collector", "SCANSCOPE_COLLECTOR_BIN")
}

/// Runs `scanscope-collector ARGS…` to its end (`rollup`, `report`) and gives its standard
/// output; an error with its standard error if it failed.
pub fn collector_run<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Result<Vec<u8>> {
    let bin = collector_binary().context("scanscope-collector binary not built")?;
    let out = Command::new(bin).args(args).output()?;
    if !out.status.success() {
        bail!(
            "scanscope-collector: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(out.stdout)
}

/// A `scanscope-collector serve` child process; killed on drop.
#[derive(Debug)]
pub struct CollectorProc {
    child: Option<Child>,
    pub addr: SocketAddr,
    pub data: PathBuf,
    pub log: PathBuf,
    /// The console's `http://ADDR` when started with `--console`.
    pub console: Option<String>,
    args: Vec<String>,
    /// Wrapper command (e.g. `ip netns exec NS`) in front of the binary.
    prefix: Vec<String>,
}

impl CollectorProc {
    /// Starts a collector on `listen` (port 0 = any) writing to `data`, with extra arguments.
    pub fn start(listen: &str, data: &Path, extra: &[&str]) -> Result<CollectorProc> {
        Self::start_with_prefix(&[], listen, data, extra)
    }

    /// As [`CollectorProc::start`], run through `prefix` (e.g. `ip netns exec NS`).
    pub fn start_with_prefix(
        prefix: &[&str],
        listen: &str,
        data: &Path,
        extra: &[&str],
    ) -> Result<CollectorProc> {
        let mut c = CollectorProc {
            child: None,
            addr: "127.0.0.1:0".parse()?,
            data: data.to_path_buf(),
            log: data.with_extension("collector.log"),
            console: None,
            args: extra.iter().map(|s| s.to_string()).collect(),
            prefix: prefix.iter().map(|s| s.to_string()).collect(),
        };
        c.spawn(listen)?;
        Ok(c)
    }

    fn spawn(&mut self, listen: &str) -> Result<()> {
        let bin = collector_binary().context("scanscope-collector binary not built")?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let mut cmd = if self.prefix.is_empty() {
            Command::new(&bin)
        } else {
            let mut c = Command::new(&self.prefix[0]);
            c.args(&self.prefix[1..]).arg(&bin);
            c
        };
        let mut child = cmd
            .args(["serve", "--listen", listen, "--data"])
            .arg(&self.data)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()?;
        let out = child.stdout.take().context("no stdout")?;
        let mut out = BufReader::new(out);
        let mut line = String::new();
        out.read_line(&mut line)?;
        if self.args.iter().any(|a| a == "--console") {
            let mut c = String::new();
            out.read_line(&mut c)?;
            self.console = c.trim().strip_prefix("console on ").map(str::to_string);
        }
        let Some(addr) = line.trim().strip_prefix("listening on ") else {
            child.kill().ok();
            child.wait().ok();
            bail!(
                "collector did not start: {}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
        };
        self.addr = addr.parse()?;
        self.child = Some(child);
        Ok(())
    }

    /// The collector's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// `http://ADDR`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// SIGKILL, no chance to flush.
    pub fn kill9(&mut self) -> Result<()> {
        if let Some(mut c) = self.child.take() {
            c.kill()?;
            c.wait()?;
        }
        Ok(())
    }

    /// Starts again on the same address.
    pub fn restart(&mut self) -> Result<()> {
        self.kill9()?;
        let listen = self.addr.to_string();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self.spawn(&listen) {
                Ok(()) => return Ok(()),
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// SIGTERM (final flush) and wait; fails if the collector exits with an error or has not
    /// exited within [`STOP_WITHIN`] (then it is killed).
    pub fn stop(&mut self) -> Result<()> {
        if let Some(mut c) = self.child.take() {
            // SAFETY: kill(2) on our own child's pid.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let deadline = Instant::now() + STOP_WITHIN;
            let status = loop {
                if let Some(s) = c.try_wait()? {
                    break s;
                }
                if Instant::now() > deadline {
                    c.kill().ok();
                    c.wait().ok();
                    bail!(
                        "collector still running {} s after SIGTERM: {}",
                        STOP_WITHIN.as_secs(),
                        self.log_tail()
                    );
                }
                std::thread::sleep(Duration::from_millis(50));
            };
            if !status.success() {
                bail!("collector exited with {status}: {}", self.log_tail());
            }
        }
        Ok(())
    }

    /// The collector's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last lines of the log (for error messages; a fuzzed collector logs megabytes).
    pub fn log_tail(&self) -> String {
        let text = self.log_text();
        let lines: Vec<&str> = text.lines().collect();
        let from = lines.len().saturating_sub(40);
        format!("…{}", lines[from..].join("\n"))
    }
}

/// How long a collector may take to exit after SIGTERM (its final flush included).
pub const STOP_WITHIN: Duration = Duration::from_secs(60);

impl Drop for CollectorProc {
    fn drop(&mut self) {
        self.kill9().ok();
    }
}

/// Batch `i` with `rows` flows: source 10.x.y.z derived from `i`, ports 1..=rows, packets
/// `1 + port % 7`. Every (src_ip, dst_port) is unique across batches.
pub fn synthetic_batch(i: u32, rows: u32) -> Batch {
    let now = chrono::Utc::now().timestamp_micros();
    Batch {
        flows: (1..=rows)
            .map(|p| Flow {
                interval_start_us: now,
                interval_secs: 1.0,
                src_ip: vec![10, (i >> 16) as u8, (i >> 8) as u8, i as u8].into(),
                dst_ip: vec![198, 18, 1, 1].into(),
                proto: 6,
                kind: Kind::TcpSyn as i32,
                dst_port: p,
                packets: 1 + u64::from(p % 7),
                bytes: 40,
                first_seen_us: now,
                last_seen_us: now,
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

/// [`synthetic_batch`] plus `events` events with 200 bytes of pseudo-random payload each
/// (data that does not compress, to fill a disk).
pub fn synthetic_batch_with_events(i: u32, rows: u32, events: u32) -> Batch {
    let mut b = synthetic_batch(i, rows);
    let now = chrono::Utc::now().timestamp_micros();
    let mut x = u64::from(i).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    b.events = (0..events)
        .map(|_| scanscope_proto::v1::Event {
            ts_us: now,
            src_ip: vec![10, 0, 0, 1],
            dst_ip: vec![198, 18, 1, 1],
            proto: 17,
            kind: Kind::Udp as i32,
            weight: 1,
            payload: (0..200)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect(),
            ..Default::default()
        })
        .collect();
    b
}

/// Total packets of [`synthetic_batch`]`(_, rows)`.
pub fn synthetic_packets(rows: u32) -> u64 {
    (1..=rows).map(|p| 1 + u64::from(p % 7)).sum()
}

/// Every Parquet file of a table (visible names only), sorted.
pub fn table_files(root: &Path, table: &str) -> Vec<PathBuf> {
    let mut v = Vec::new();
    let Ok(days) = std::fs::read_dir(root.join(table)) else {
        return v;
    };
    for d in days.flatten() {
        if let Ok(files) = std::fs::read_dir(d.path()) {
            for f in files.flatten() {
                let p = f.path();
                if p.extension().is_some_and(|e| e == "parquet")
                    && !f.file_name().to_string_lossy().starts_with('.')
                {
                    v.push(p);
                }
            }
        }
    }
    v.sort();
    v
}

/// Hidden temporary files anywhere under the table directories.
pub fn temp_files(root: &Path) -> Vec<PathBuf> {
    let mut v = Vec::new();
    for t in ["flows", "events", "sensor_stats", "lost"] {
        let Ok(days) = std::fs::read_dir(root.join(t)) else {
            continue;
        };
        for d in days.flatten() {
            if let Ok(files) = std::fs::read_dir(d.path()) {
                v.extend(
                    files
                        .flatten()
                        .filter(|f| f.file_name().to_string_lossy().starts_with('.'))
                        .map(|f| f.path()),
                );
            }
        }
    }
    v
}

/// Reads every row group of every file of a table (fails on any unreadable file).
pub fn read_table(root: &Path, table: &str) -> Result<Vec<RecordBatch>> {
    let mut out = Vec::new();
    for p in table_files(root, table) {
        let f = File::open(&p)?;
        let r = ParquetRecordBatchReaderBuilder::try_new(f)
            .with_context(|| format!("opening {}", p.display()))?
            .build()?;
        for b in r {
            out.push(b.with_context(|| format!("reading {}", p.display()))?);
        }
    }
    Ok(out)
}

/// (sensor, src_ip, dst_port) → (rows with that key, packets).
pub type FlowKeys = BTreeMap<(String, String, u16), (u32, u64)>;

/// `flows` rows by key.
pub fn flow_keys(root: &Path) -> Result<FlowKeys> {
    let mut m = FlowKeys::new();
    for b in read_table(root, "flows")? {
        let sensor = b
            .column_by_name("sensor")
            .context("sensor")?
            .as_string::<i32>();
        let src = b
            .column_by_name("src_ip")
            .context("src_ip")?
            .as_string::<i32>();
        let port = b
            .column_by_name("dst_port")
            .context("dst_port")?
            .as_primitive::<arrow::datatypes::UInt16Type>();
        let packets = b
            .column_by_name("packets")
            .context("packets")?
            .as_primitive::<UInt64Type>();
        for i in 0..b.num_rows() {
            let e = m
                .entry((
                    sensor.value(i).to_string(),
                    src.value(i).to_string(),
                    port.value(i),
                ))
                .or_default();
            e.0 += 1;
            e.1 += if packets.is_null(i) {
                0
            } else {
                packets.value(i)
            };
        }
    }
    Ok(m)
}

/// Checks a lake against `batches` synthetic batches of `rows` flows from `sensor`: every
/// expected key once, nothing else from that sensor. Returns the packets total.
pub fn check_synthetic(root: &Path, sensor: &str, batches: u32, rows: u32) -> Result<u64> {
    let keys = flow_keys(root)?;
    let mine: Vec<_> = keys.iter().filter(|((s, _, _), _)| s == sensor).collect();
    let dups: Vec<_> = mine.iter().filter(|(_, (n, _))| *n > 1).take(5).collect();
    if !dups.is_empty() {
        bail!("duplicated rows, e.g. {dups:?}");
    }
    let expected = u64::from(batches) * u64::from(rows);
    if mine.len() as u64 != expected {
        let have: std::collections::BTreeSet<&String> =
            mine.iter().map(|((_, s, _), _)| s).collect();
        bail!(
            "{} distinct rows from {sensor}, expected {expected} ({} of {batches} sources present)",
            mine.len(),
            have.len()
        );
    }
    Ok(mine.iter().map(|(_, (_, p))| p).sum())
}

/// A CA and certificates signed by it, as PEM files in a directory.
#[derive(Debug)]
pub struct Certs {
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    /// A client certificate from another CA (must be refused).
    pub rogue_cert: PathBuf,
    pub rogue_key: PathBuf,
}

fn ca() -> Result<(rcgen::Certificate, rcgen::Issuer<'static, rcgen::KeyPair>)> {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, "scanscope test CA");
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyCertSign,
    ];
    let key = KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    Ok((cert, rcgen::Issuer::new(params, key)))
}

fn leaf(
    issuer: &rcgen::Issuer<'static, rcgen::KeyPair>,
    names: Vec<String>,
    server: bool,
) -> Result<(String, String)> {
    use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, KeyPair};
    let mut params = CertificateParams::new(names.clone())?;
    params
        .distinguished_name
        .push(DnType::CommonName, names[0].clone());
    params.use_authority_key_identifier_extension = true;
    params.extended_key_usages = vec![if server {
        ExtendedKeyUsagePurpose::ServerAuth
    } else {
        ExtendedKeyUsagePurpose::ClientAuth
    }];
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, issuer)?;
    Ok((cert.pem(), key.serialize_pem()))
}

impl Certs {
    /// Writes a fresh CA, a server certificate for `localhost`/127.0.0.1 and client
    /// certificates into `dir`.
    pub fn generate(dir: &Path) -> Result<Certs> {
        let (ca_cert, issuer) = ca()?;
        let (_, rogue_issuer) = ca()?;
        let (sc, sk) = leaf(&issuer, vec!["localhost".into(), "127.0.0.1".into()], true)?;
        // The client certificate names the sensor ids it may write (subject alternative names).
        let (cc, ck) = leaf(&issuer, vec!["s-tls".into(), "sensor-1".into()], false)?;
        let (rc, rk) = leaf(&rogue_issuer, vec!["rogue".into()], false)?;
        let w = |name: &str, body: &str| -> Result<PathBuf> {
            let p = dir.join(name);
            std::fs::write(&p, body)?;
            Ok(p)
        };
        Ok(Certs {
            ca: w("ca.pem", &ca_cert.pem())?,
            server_cert: w("server.pem", &sc)?,
            server_key: w("server.key", &sk)?,
            client_cert: w("client.pem", &cc)?,
            client_key: w("client.key", &ck)?,
            rogue_cert: w("rogue.pem", &rc)?,
            rogue_key: w("rogue.key", &rk)?,
        })
    }
}

/// Runs `tests/py/check_lake.py` (DuckDB, pandas, pyarrow) on a lake; its JSON summary.
pub fn check_lake_py(lake: &Path) -> Result<serde_json::Value> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("py/check_lake.py");
    let out = Command::new("python3").arg(&script).arg(lake).output()?;
    if !out.status.success() {
        bail!(
            "check_lake.py failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}
