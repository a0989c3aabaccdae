//! Respond stage: answers scanners on every TCP port of the responder's addresses and records
//! what they send (`scanscope-sensor --respond`).
//!
//! The kernel's sk_lookup program (`scanscope_respond`, Linux ≥ 5.9) hands every TCP connection
//! to a responder address — any port but the pass-through ones — to one listening socket per
//! address family, bound to loopback so nothing reaches it otherwise. The kernel does the
//! handshake; `local_addr()` of an accepted socket is the address and port the scanner chose.
//! Each connection is one [`session`]: the client's first bytes decide the protocol (by
//! content, not by port; the port only says which banner to send when a client waits for the
//! server to speak first), a handler in [`protocols`] answers as a plausible server would and
//! refuses every login, and a [`Session`] record says what the scanner sent.
//!
//! Safety: the responder only answers. It never opens a connection, never relays, and never
//! interprets what it reads beyond parsing it into the record. Caps bound concurrent sessions
//! (overall and per source), new sessions per minute (overall and per source), the bytes read
//! per session, its login attempts and its time (first byte, idle, total); every connection a
//! cap refused and everything a cap cut is counted.
//!
//! ```toml
//! # --respond-config FILE (every field optional)
//! addresses = ["198.18.0.0/15", "2001:db8::/64"]  # default: the --iface interfaces' addresses
//! pass_ports = [22, 9100]       # never taken (default: 22 and every port listening at start)
//! max_sessions = 512            # concurrent sessions
//! max_per_source = 16           # concurrent sessions per source address
//! max_new_per_minute = 60000    # new sessions per minute, all sources
//! max_new_per_source = 120      # new sessions per minute from one source
//! max_auth = 6                  # login attempts per session
//! payload_bytes = 4096          # first payload kept per session
//! first_byte_secs = 5.0         # wait for the client to speak
//! idle_secs = 10.0              # silence after that
//! total_secs = 30.0             # whole session
//! banner_wait_secs = 0.5        # on a server-first port, silence before the banner
//!
//! [banners]                     # what the responder says about itself (per sensor)
//! ssh = "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3"
//! ftp = "220 (vsFTPd 3.0.3)"
//! smtp_host = "mail.example.net"
//! http_server = "Apache/2.4.62 (Debian)"
//! mysql_version = "5.7.42-log"
//!
//! [ports]                       # server-first ports (replaces that protocol's defaults)
//! telnet = [23, 2323]
//! ```
pub mod child;
pub mod config;
pub mod conn;
pub mod protocols;
pub mod session;

use std::{
    collections::HashMap,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

use tokio::sync::{Semaphore, mpsc};
use tracing::warn;

pub use config::RespondConfig;

use crate::record::Session;

/// Errors setting up the responder.
#[derive(Debug, thiserror::Error)]
pub enum RespondError {
    #[error("cannot read responder config {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("responder config {path}: {message}")]
    Parse { path: String, message: String },
    #[error("responder config: {0}")]
    Invalid(String),
    #[error("creating the responder's {family} listener: {source}")]
    Listen {
        family: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("reading the interfaces' addresses: {0}")]
    Addresses(#[source] std::io::Error),
    #[error("starting the responder process: {0}")]
    Child(#[source] std::io::Error),
}

/// The responder's two listening sockets (IPv4 on 127.0.0.1, IPv6 on ::1, both on a free
/// port), created before the capabilities are dropped.
#[derive(Debug)]
pub struct Listeners {
    pub v4: std::net::TcpListener,
    /// `None` where the namespace has no IPv6 (`disable_ipv6`): the responder answers IPv4.
    pub v6: Option<std::net::TcpListener>,
}

fn listener(addr: SocketAddr, family: &'static str) -> Result<std::net::TcpListener, RespondError> {
    let err = |source| RespondError::Listen { family, source };
    let domain = socket2::Domain::for_address(addr);
    let s = socket2::Socket::new(domain, socket2::Type::STREAM, Some(socket2::Protocol::TCP))
        .map_err(err)?;
    if addr.is_ipv6() {
        s.set_only_v6(true).map_err(err)?;
    }
    s.set_nonblocking(true).map_err(err)?;
    s.bind(&addr.into()).map_err(err)?;
    s.listen(4096).map_err(err)?;
    Ok(s.into())
}

impl Listeners {
    /// Binds both listeners.
    pub fn bind() -> Result<Listeners, RespondError> {
        let v4 = listener((Ipv4Addr::LOCALHOST, 0).into(), "IPv4")?;
        let v6 = match listener((Ipv6Addr::LOCALHOST, 0).into(), "IPv6") {
            Ok(l) => Some(l),
            Err(RespondError::Listen { source, .. })
                if matches!(
                    source.kind(),
                    std::io::ErrorKind::AddrNotAvailable | std::io::ErrorKind::Unsupported
                ) || source.raw_os_error() == Some(libc::EAFNOSUPPORT) =>
            {
                warn!(error = %source, "no IPv6 here: the responder answers IPv4 only");
                None
            }
            Err(e) => return Err(e),
        };
        Ok(Listeners { v4, v6 })
    }
}

/// What the responder counts (reported in every `stats` record's `counters`).
#[derive(Debug, Default)]
pub struct RespondStats {
    pub sessions: AtomicU64,
    /// Connections closed at once: `max_sessions` reached.
    pub refused_busy: AtomicU64,
    /// Connections closed at once: `max_per_source` reached for their source.
    pub refused_source: AtomicU64,
    /// Sessions whose payload was longer than `payload_bytes` (the rest was read, not kept).
    pub payload_cut: AtomicU64,
    /// Session records the agent could not take (its queue was full).
    pub records_lost: AtomicU64,
    /// Sessions in progress.
    pub active: AtomicU64,
    /// Sessions still open when the agent stopped (not recorded).
    pub cut: AtomicU64,
    /// Connections closed at once: `max_new_per_minute` or `max_new_per_source` reached.
    pub refused_rate: AtomicU64,
    /// Sessions that reached the cap on bytes read.
    pub read_cap: AtomicU64,
    /// Sessions that reached `max_auth`.
    pub auth_cap: AtomicU64,
    /// Commands or details not kept (beyond the per-session lists' length).
    pub commands_cut: AtomicU64,
    /// Texts cut to their longest kept length.
    pub text_cut: AtomicU64,
    /// Records the responder process reported it could not take (added to `records_lost`).
    pub records_lost_in_child: AtomicU64,
}

impl RespondStats {
    /// The counters by name, for a `stats` record (running totals).
    pub fn counters(&self) -> [(&'static str, u64); 11] {
        let v = |a: &AtomicU64| a.load(Ordering::Relaxed);
        [
            ("respond_sessions", v(&self.sessions)),
            ("respond_refused_busy", v(&self.refused_busy)),
            ("respond_refused_source", v(&self.refused_source)),
            ("respond_refused_rate", v(&self.refused_rate)),
            ("respond_payload_cut", v(&self.payload_cut)),
            ("respond_read_cap", v(&self.read_cap)),
            ("respond_auth_cap", v(&self.auth_cap)),
            ("respond_commands_cut", v(&self.commands_cut)),
            ("respond_text_cut", v(&self.text_cut)),
            (
                "respond_records_lost",
                v(&self.records_lost) + v(&self.records_lost_in_child),
            ),
            ("respond_cut", v(&self.cut)),
        ]
    }

    /// Sets a counter by its [`RespondStats::counters`] name (the responder process reports
    /// running totals); unknown names are ignored.
    pub fn set_counter(&self, name: &str, value: u64) {
        let slot = match name {
            "respond_sessions" => &self.sessions,
            "respond_refused_busy" => &self.refused_busy,
            "respond_refused_source" => &self.refused_source,
            "respond_refused_rate" => &self.refused_rate,
            "respond_payload_cut" => &self.payload_cut,
            "respond_read_cap" => &self.read_cap,
            "respond_auth_cap" => &self.auth_cap,
            "respond_commands_cut" => &self.commands_cut,
            "respond_text_cut" => &self.text_cut,
            "respond_cut" => &self.cut,
            // The agent counts what it could not take from the child itself.
            "respond_records_lost" => &self.records_lost_in_child,
            _ => return,
        };
        slot.store(value, Ordering::Relaxed);
    }

    /// At shutdown: the sessions still open will not be recorded; count them.
    pub fn cut_open_sessions(&self) {
        let open = self.active.swap(0, Ordering::Relaxed);
        self.cut.fetch_add(open, Ordering::Relaxed);
    }
}

/// Sessions in progress per source address (the per-source cap).
#[derive(Debug, Default)]
struct PerSource(Mutex<HashMap<IpAddr, u32>>);

impl PerSource {
    fn enter(&self, ip: IpAddr, max: u32) -> bool {
        let mut m = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = m.entry(ip).or_default();
        if *n >= max {
            return false;
        }
        *n += 1;
        true
    }

    fn leave(&self, ip: IpAddr) {
        let mut m = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(n) = m.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                m.remove(&ip);
            }
        }
    }
}

/// New sessions in the current minute, overall and per source (fixed one-minute windows; the
/// per-source table holds only the sources of the current minute).
#[derive(Debug)]
struct NewPerMinute {
    minute: std::time::Instant,
    total: u32,
    per_source: HashMap<IpAddr, u32>,
}

impl NewPerMinute {
    fn new() -> NewPerMinute {
        NewPerMinute {
            minute: std::time::Instant::now(),
            total: 0,
            per_source: HashMap::new(),
        }
    }

    /// Counts a new session; `false` if a per-minute cap refuses it.
    fn admit(&mut self, ip: IpAddr, max_total: u32, max_source: u32) -> bool {
        if self.minute.elapsed() >= std::time::Duration::from_secs(60) {
            *self = NewPerMinute::new();
        }
        // The overall cap first: the table never holds more sources than it admits.
        if self.total >= max_total {
            return false;
        }
        let n = self.per_source.entry(ip).or_default();
        if *n >= max_source {
            return false;
        }
        *n += 1;
        self.total += 1;
        true
    }
}

/// Serves both listeners until the task is dropped; every finished session goes to `out`.
pub async fn serve(
    listeners: Listeners,
    cfg: RespondConfig,
    sensor: String,
    out: mpsc::Sender<Session>,
    stats: Arc<RespondStats>,
) -> Result<(), RespondError> {
    let to_tokio = |l: std::net::TcpListener, family| {
        tokio::net::TcpListener::from_std(l)
            .map_err(|source| RespondError::Listen { family, source })
    };
    let v4 = to_tokio(listeners.v4, "IPv4")?;
    let v6 = listeners.v6.map(|l| to_tokio(l, "IPv6")).transpose()?;
    let cfg = Arc::new(cfg);
    let busy = Arc::new(Semaphore::new(cfg.max_sessions as usize));
    let per_source = Arc::new(PerSource::default());
    let mut per_minute = NewPerMinute::new();
    let sensor: Arc<str> = sensor.into();
    loop {
        let accepted = tokio::select! {
            a = v4.accept() => a,
            a = async {
                match &v6 {
                    Some(l) => l.accept().await,
                    None => std::future::pending().await,
                }
            } => a,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // EMFILE and the like: pause instead of spinning.
                warn!(error = %e, "responder accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let src = peer.ip().to_canonical();
        if !per_minute.admit(src, cfg.max_new_per_minute, cfg.max_new_per_source) {
            stats.refused_rate.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        let Ok(permit) = busy.clone().try_acquire_owned() else {
            stats.refused_busy.fetch_add(1, Ordering::Relaxed);
            continue; // dropped: closed at once
        };
        if !per_source.enter(src, cfg.max_per_source) {
            stats.refused_source.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        let (cfg, out, stats, per_source, sensor) = (
            cfg.clone(),
            out.clone(),
            stats.clone(),
            per_source.clone(),
            sensor.clone(),
        );
        stats.active.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(async move {
            let record = session::run(stream, peer, &cfg, &sensor, &stats).await;
            per_source.leave(src);
            drop(permit);
            // A session that outlived the agent's stop was counted as cut already.
            let counted_as_cut = stats
                .active
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                .is_err();
            if counted_as_cut {
                return;
            }
            stats.sessions.fetch_add(1, Ordering::Relaxed);
            if out.try_send(record).is_err() {
                stats.records_lost.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_sessions_per_minute_are_capped_overall_and_per_source() {
        let mut m = NewPerMinute::new();
        let a: IpAddr = "198.51.100.1".parse().unwrap();
        let b: IpAddr = "198.51.100.2".parse().unwrap();
        let admitted_a = (0..10).filter(|_| m.admit(a, 15, 4)).count();
        assert_eq!(admitted_a, 4, "per source");
        let admitted_b = (0..10).filter(|_| m.admit(b, 6, 4)).count();
        assert_eq!(admitted_b, 2, "overall: 4 + 2 = 6");
        let c: IpAddr = "198.51.100.3".parse().unwrap();
        assert!(!m.admit(c, 6, 4));
        assert_eq!(
            m.per_source.len(),
            2,
            "a source the overall cap refused is not held"
        );
        // The next minute starts afresh.
        m.minute -= std::time::Duration::from_secs(61);
        assert!(m.admit(a, 15, 4));
        assert_eq!(m.per_source.len(), 1, "only this minute's sources are held");
    }

    #[test]
    fn per_source_concurrency() {
        let p = PerSource::default();
        let a: IpAddr = "198.51.100.1".parse().unwrap();
        assert!(p.enter(a, 2) && p.enter(a, 2) && !p.enter(a, 2));
        p.leave(a);
        assert!(p.enter(a, 2));
        p.leave(a);
        p.leave(a);
        assert!(p.0.lock().unwrap().is_empty());
    }
}
