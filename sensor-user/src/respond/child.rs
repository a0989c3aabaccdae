//! The responder's own process: the code that talks to scanners runs without root.
//!
//! The agent creates the listeners and attaches the sk_lookup program, then starts
//! `scanscope-sensor --respond-child …` (this module's [`child_main`]) with the two listening
//! sockets as file descriptors 3 and 4. The child becomes `nobody` (no capabilities left),
//! sets no_new_privs and installs a seccomp filter that, besides the agent's own denials,
//! refuses `socket`, `socketpair`, `connect`, `bind` and `listen`: it can accept on the
//! sockets it was given and nothing else, so "never open an outbound connection" is the
//! kernel's rule, not only the code's. It serves sessions and writes each record, and its
//! counters every second, to its standard output as length-prefixed `scanscope.v1.Batch`
//! messages; the agent ([`Parent`]) turns them back into records. If the child dies, the agent
//! empties the responder's socket map, so connections fall back to the host (RST).
use std::{
    io::{Read, Write},
    net::IpAddr,
    os::fd::{AsRawFd, FromRawFd},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::{Arc, atomic::Ordering},
};

use prost::Message;
use scanscope_common::{AppProtocol, SessionEnd};
use scanscope_proto::v1 as pb;
use tokio::sync::mpsc;
use tracing::{info, warn};

use super::{Listeners, RespondConfig, RespondError, RespondStats};
use crate::record::{Credential, HttpRequest, Session, TlsHello};

/// The hidden first argument that makes `scanscope-sensor` the responder child.
pub const CHILD_ARG: &str = "--respond-child";
/// Largest frame the agent takes from the child.
const MAX_FRAME: usize = 4 << 20;
/// The child's identity: `nobody`.
const NOBODY: libc::uid_t = 65534;
/// What the child may not do besides [`crate::privilege::DENIED`].
pub const CHILD_DENIED: [i64; 5] = [
    libc::SYS_socket,
    libc::SYS_socketpair,
    libc::SYS_connect,
    libc::SYS_bind,
    libc::SYS_listen,
];

/// The login methods a record can name (the child's are mapped back onto these).
const METHODS: [&str; 9] = [
    "password",
    "publickey",
    "http_basic",
    "auth_plain",
    "auth_login",
    "apop",
    "mysql_native",
    "vnc_challenge",
    "other",
];

fn frame(out: &mut impl Write, b: &pb::Batch) -> std::io::Result<()> {
    let bytes = b.encode_to_vec();
    out.write_all(&(bytes.len() as u32).to_le_bytes())?;
    out.write_all(&bytes)?;
    out.flush()
}

fn counters_batch(stats: &RespondStats) -> pb::Batch {
    pb::Batch {
        stats: vec![pb::SensorStats {
            counters: stats
                .counters()
                .iter()
                .map(|(n, v)| pb::Counter {
                    name: (*n).to_string(),
                    value: *v,
                })
                .collect(),
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// The record of a session the child sent.
pub fn session_from_pb(sensor: &str, x: &pb::Session) -> Option<Session> {
    let ip = |b: &[u8]| -> Option<IpAddr> {
        match b.len() {
            4 => Some(IpAddr::from(<[u8; 4]>::try_from(b).ok()?)),
            16 => Some(IpAddr::from(<[u8; 16]>::try_from(b).ok()?)),
            _ => None,
        }
    };
    let opt = |s: &str| (!s.is_empty()).then(|| s.to_string());
    Some(Session {
        ts: chrono::DateTime::from_timestamp_micros(x.ts_us)?,
        sensor: sensor.to_string(),
        src_ip: ip(&x.src_ip)?,
        src_port: u16::try_from(x.src_port).ok()?,
        dst_ip: ip(&x.dst_ip)?,
        dst_port: u16::try_from(x.dst_port).ok()?,
        protocol: AppProtocol::from_name(&x.protocol)?,
        bytes_in: x.bytes_in,
        bytes_out: x.bytes_out,
        duration_ms: x.duration_ms,
        end: SessionEnd::from_name(&x.end)?,
        payload: x.payload.clone(),
        payload_cut: x.payload_cut,
        http: x.http.as_ref().map(|h| HttpRequest {
            method: h.method.clone(),
            url: h.url.clone(),
            version: u8::try_from(h.version).unwrap_or(0),
            host: h.host.clone(),
            user_agent: h.user_agent.clone(),
            headers: h.headers.clone(),
        }),
        tls: x.tls.as_ref().map(|t| TlsHello {
            ja4: t.ja4.clone(),
            sni: t.sni.clone(),
            alpn: t.alpn.clone(),
            version: t.version.clone(),
        }),
        ssh_client_banner: opt(&x.ssh_client_banner),
        hassh: opt(&x.hassh),
        credentials: x
            .credentials
            .iter()
            .map(|c| Credential {
                method: METHODS
                    .iter()
                    .find(|m| **m == c.method)
                    .copied()
                    .unwrap_or("other"),
                user: c.user.clone(),
                secret: c.secret.clone(),
            })
            .collect(),
        commands: x.commands.clone(),
        details: x.details.clone(),
        tags: x.tags.clone(),
    })
}

/// The agent's side: the running child and the thread that reads it.
#[derive(Debug)]
pub struct Parent {
    child: std::process::Child,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Parent {
    /// Starts `exe --respond-child` with the listeners as descriptors 3 and 4. Call it before
    /// the agent confines itself (its filter denies exec).
    pub fn spawn(
        exe: &Path,
        listeners: Listeners,
        config: Option<&Path>,
        sensor: &str,
    ) -> Result<Parent, RespondError> {
        let v4 = listeners.v4.as_raw_fd();
        let v6 = listeners.v6.as_ref().map(AsRawFd::as_raw_fd);
        let mut cmd = Command::new(exe);
        cmd.arg(CHILD_ARG)
            .arg(sensor)
            .arg(std::process::id().to_string())
            .arg(if v6.is_some() { "v4v6" } else { "v4" });
        if let Some(c) = config {
            cmd.arg(c);
        }
        // The child's stdin is its stop signal: it stops when the agent closes it (or dies).
        // (The agent, confined, may not signal a process of another user.)
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let place = move |from: i32, to: i32| -> std::io::Result<()> {
            // SAFETY: dup2/fcntl on descriptors this process owns, in the forked child.
            unsafe {
                if from == to {
                    let flags = libc::fcntl(to, libc::F_GETFD);
                    if flags < 0 || libc::fcntl(to, libc::F_SETFD, flags & !libc::FD_CLOEXEC) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                } else if libc::dup2(from, to) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        };
        // SAFETY: only async-signal-safe calls (dup2, fcntl) between fork and exec.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || {
                // Move the v6 listener out of the way first if it sits on 3.
                let v6 = match v6 {
                    Some(3) => {
                        let moved = libc::fcntl(3, libc::F_DUPFD_CLOEXEC, 10);
                        if moved < 0 {
                            return Err(std::io::Error::last_os_error());
                        }
                        Some(moved)
                    }
                    other => other,
                };
                place(v4, 3)?;
                if let Some(v6) = v6 {
                    place(v6, 4)?;
                }
                Ok(())
            });
        }
        let child = cmd.spawn().map_err(RespondError::Child)?;
        // The child holds the sockets now (and the socket map refers to them).
        drop(listeners);
        info!(pid = child.id(), "responder process started");
        Ok(Parent {
            child,
            reader: None,
        })
    }

    /// Reads the child's records on a thread of its own: sessions go to `out`, counters into
    /// `stats`; `gone` fires when the child's output ends.
    pub fn start_reading(
        &mut self,
        sensor: String,
        out: mpsc::Sender<Session>,
        stats: Arc<RespondStats>,
        gone: tokio::sync::oneshot::Sender<()>,
    ) {
        let Some(mut pipe) = self.child.stdout.take() else {
            return;
        };
        self.reader = Some(std::thread::spawn(move || {
            let mut len = [0u8; 4];
            let mut buf = Vec::new();
            while pipe.read_exact(&mut len).is_ok() {
                let n = u32::from_le_bytes(len) as usize;
                if n > MAX_FRAME {
                    warn!(
                        bytes = n,
                        "responder process sent an oversized frame; ignoring it from now on"
                    );
                    break;
                }
                buf.resize(n, 0);
                if pipe.read_exact(&mut buf).is_err() {
                    break;
                }
                let Ok(b) = pb::Batch::decode(buf.as_slice()) else {
                    warn!("responder process sent an undecodable frame");
                    break;
                };
                for s in &b.stats {
                    for c in &s.counters {
                        stats.set_counter(&c.name, c.value);
                    }
                }
                for x in &b.sessions {
                    match session_from_pb(&sensor, x) {
                        Some(s) => {
                            if out.blocking_send(s).is_err() {
                                stats.records_lost.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        None => {
                            stats.records_lost.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }
            let _gone = gone.send(());
        }));
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops the child (its stdin closed: it stops accepting, counts its open sessions as cut
    /// and writes its last counters) and waits up to 5 s for its output to end and its exit.
    pub fn stop(mut self) {
        drop(self.child.stdin.take());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        if let Some(r) = self.reader.take() {
            while !r.is_finished() && std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            if r.is_finished() {
                let _joined = r.join();
            }
        }
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        // It dies with the agent (its parent-death signal).
        warn!(
            pid = self.child.id(),
            "responder process did not stop in 5 s"
        );
    }
}

/// Drops to `nobody` with no capabilities and sets no_new_privs (while single-threaded).
fn drop_identity() -> std::io::Result<()> {
    let err = std::io::Error::last_os_error;
    // SAFETY: plain system calls with integer arguments (setgroups with an empty list).
    unsafe {
        if libc::geteuid() == 0
            && (libc::setgroups(0, std::ptr::null()) != 0
                || libc::setgid(NOBODY) != 0
                || libc::setuid(NOBODY) != 0)
        {
            return Err(err());
        }
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
            return Err(err());
        }
    }
    Ok(())
}

/// The child's system-call denials: the agent's, and no new sockets or connections.
pub fn child_denied() -> Vec<i64> {
    crate::privilege::DENIED
        .iter()
        .chain(CHILD_DENIED.iter())
        .copied()
        .collect()
}

/// `scanscope-sensor --respond-child SENSOR PARENT_PID v4|v4v6 [CONFIG]`: the responder child.
pub fn child_main(args: &[String]) -> std::process::ExitCode {
    let fail = |what: &str, e: &dyn std::fmt::Display| {
        eprintln!("error: responder process: {what}: {e}");
        std::process::ExitCode::FAILURE
    };
    let (Some(sensor), Some(parent), Some(families)) = (args.first(), args.get(1), args.get(2))
    else {
        return fail("arguments", &"SENSOR PARENT_PID v4|v4v6 [CONFIG]");
    };
    let parent: i32 = parent.parse().unwrap_or(0);
    let cfg = match args.get(3) {
        Some(p) => RespondConfig::from_file(&PathBuf::from(p)),
        None => Ok(RespondConfig::default()),
    };
    let cfg = match cfg {
        Ok(c) => c,
        Err(e) => return fail("configuration", &e),
    };
    // SAFETY: descriptors 3 and 4 were placed by the agent for this process alone.
    let v4 = unsafe { std::net::TcpListener::from_raw_fd(3) };
    let v6 = (families == "v4v6")
        // SAFETY: as above.
        .then(|| unsafe { std::net::TcpListener::from_raw_fd(4) });
    if let Err(e) = drop_identity() {
        return fail("dropping privileges", &e);
    }
    // Die with the agent (set after the identity change, which clears it).
    // SAFETY: prctl with integer arguments only.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) };
    // SAFETY: getppid has no arguments.
    if unsafe { libc::getppid() } != parent {
        return fail("agent", &"gone before the responder started");
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail("runtime", &e),
    };
    // Stop when the agent closes stdin (or on SIGTERM/SIGINT from an operator). Signal
    // handlers need a socket pair: installed before the filter, which then covers every thread
    // of the runtime at once.
    let signal = {
        let _in_rt = rt.enter();
        scanscope_telemetry::shutdown_signal()
    };
    let (closed_tx, closed) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        let mut sink = [0u8; 64];
        let mut stdin = std::io::stdin().lock();
        while matches!(stdin.read(&mut sink), Ok(n) if n > 0) {}
        let _told = closed_tx.send(());
    });
    let shutdown = async move {
        tokio::select! {
            () = signal => {}
            _ = closed => {}
        }
    };
    if let Err(e) = crate::privilege::confine_all_threads_with(&child_denied()) {
        return fail("installing the seccomp filter", &e);
    }
    let sensor = sensor.clone();
    rt.block_on(async move {
        let stats = Arc::new(RespondStats::default());
        let (tx, mut rx) = mpsc::channel::<Session>(4096);
        let listeners = Listeners { v4, v6 };
        let server = tokio::spawn(super::serve(listeners, cfg, sensor, tx, stats.clone()));
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        let mut out = std::io::stdout().lock();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                Some(s) = rx.recv() => {
                    let b = pb::Batch { sessions: vec![crate::uplink::convert::session(&s)], ..Default::default() };
                    if frame(&mut out, &b).is_err() {
                        return std::process::ExitCode::FAILURE;
                    }
                }
                _ = tick.tick() => {
                    if frame(&mut out, &counters_batch(&stats)).is_err() {
                        return std::process::ExitCode::FAILURE;
                    }
                }
            }
        }
        server.abort();
        stats.cut_open_sessions();
        while let Ok(s) = rx.try_recv() {
            let b = pb::Batch { sessions: vec![crate::uplink::convert::session(&s)], ..Default::default() };
            let _sent = frame(&mut out, &b);
        }
        let _sent = frame(&mut out, &counters_batch(&stats));
        std::process::ExitCode::SUCCESS
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_survives_the_pipe() {
        let s = Session {
            ts: chrono::DateTime::from_timestamp_micros(1_790_000_000_000_000).unwrap(),
            sensor: "s".into(),
            src_ip: "198.51.100.7".parse().unwrap(),
            src_port: 40_000,
            dst_ip: "2001:db8::1".parse().unwrap(),
            dst_port: 2222,
            protocol: AppProtocol::Ssh,
            bytes_in: 10,
            bytes_out: 20,
            duration_ms: 30,
            end: SessionEnd::AuthCap,
            payload: b"SSH-2.0-x\r\n".to_vec(),
            payload_cut: false,
            http: None,
            tls: Some(TlsHello {
                ja4: "t13d".into(),
                sni: None,
                alpn: vec!["h2".into()],
                version: "1.3".into(),
            }),
            ssh_client_banner: Some("SSH-2.0-x".into()),
            hassh: Some("00".into()),
            credentials: vec![Credential {
                method: "password",
                user: "root".into(),
                secret: "toor".into(),
            }],
            commands: vec![],
            details: vec!["a=b".into()],
            tags: vec!["t".into()],
        };
        let mut wire = Vec::new();
        let b = pb::Batch {
            sessions: vec![crate::uplink::convert::session(&s)],
            ..Default::default()
        };
        frame(&mut wire, &b).unwrap();
        let n = u32::from_le_bytes(wire[..4].try_into().unwrap()) as usize;
        let back = pb::Batch::decode(&wire[4..4 + n]).unwrap();
        assert_eq!(session_from_pb("s", &back.sessions[0]), Some(s));
        let mut bad = back.sessions[0].clone();
        bad.protocol = "gopher".into();
        assert_eq!(session_from_pb("s", &bad), None);
    }

    /// In a thread of its own (filters are per thread): the child's filter refuses new
    /// sockets and connections, and accepting on a listener still works.
    #[test]
    fn the_child_filter_refuses_sockets_and_connects() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let early = std::net::TcpStream::connect(addr).unwrap();
        std::thread::spawn(move || {
            // SAFETY: prctl with integer arguments only.
            let rc = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
            assert_eq!(rc, 0);
            crate::privilege::confine_with(&child_denied()).unwrap();
            let e = std::net::TcpStream::connect(addr).unwrap_err();
            assert_eq!(e.raw_os_error(), Some(libc::EPERM), "{e}");
            let e = std::net::UdpSocket::bind("127.0.0.1:0").unwrap_err();
            assert_eq!(e.raw_os_error(), Some(libc::EPERM), "{e}");
            let (mut s, _) = l.accept().expect("accept still works");
            s.write_all(b"x").unwrap();
        })
        .join()
        .unwrap();
        drop(early);
    }
}
