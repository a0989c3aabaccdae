//! The listening socket as the gRPC server sees it: accepted connections, bounded.
//!
//! * At most `max_connections` at once, and `max_per_ip` from one address: a connection over
//!   either cap is closed at once (and counted), so idle sockets cannot exhaust the
//!   collector's file descriptors.
//! * A connection that sends nothing for `idle` is closed (the server's HTTP/2 keepalive pings
//!   every 30 s keep a live sensor's connection busy).
//! * An accept error (EMFILE, ENFILE …) is logged at most once a minute and followed by a short
//!   pause instead of a busy loop.
use std::{
    collections::HashMap,
    io,
    net::IpAddr,
    pin::Pin,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    task::{Context, Poll},
    time::{Duration, Instant},
};

use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::{OwnedSemaphorePermit, Semaphore, mpsc},
    time::Sleep,
};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::{Connected, TcpConnectInfo};
use tracing::warn;

/// Connection limits.
#[derive(Debug, Clone, Copy)]
pub struct ConnLimits {
    pub max_connections: usize,
    pub max_per_ip: usize,
    /// A connection silent this long is closed.
    pub idle: Duration,
}

impl Default for ConnLimits {
    fn default() -> Self {
        ConnLimits {
            max_connections: 4096,
            max_per_ip: 64,
            idle: Duration::from_secs(300),
        }
    }
}

/// Connections refused since start (over a cap).
#[derive(Debug, Default)]
pub struct ConnStats {
    pub refused_total: AtomicU64,
    pub refused_per_ip: AtomicU64,
}

type PerIp = Arc<Mutex<HashMap<IpAddr, usize>>>;

/// Holds a connection's place under both caps; released when the connection closes.
#[derive(Debug)]
struct Slot {
    _total: OwnedSemaphorePermit,
    ip: IpAddr,
    per_ip: PerIp,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut m = self.per_ip.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = m.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.ip);
            }
        }
    }
}

/// An accepted connection: the TCP stream, its slot, and the idle deadline.
#[derive(Debug)]
pub struct Conn {
    stream: TcpStream,
    _slot: Slot,
    idle: Duration,
    deadline: Pin<Box<Sleep>>,
}

impl Connected for Conn {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        self.stream.connect_info()
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.stream).poll_read(cx, buf) {
            Poll::Ready(r) => {
                if buf.filled().len() > before {
                    let next = tokio::time::Instant::now() + self.idle;
                    self.deadline.as_mut().reset(next);
                }
                Poll::Ready(r)
            }
            Poll::Pending => match self.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "connection idle too long",
                ))),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// Accepts connections from `listener` under `limits`; the stream ends when the receiver is
/// dropped (the server stops).
pub fn incoming(
    listener: TcpListener,
    limits: ConnLimits,
    stats: Arc<ConnStats>,
) -> ReceiverStream<io::Result<Conn>> {
    let (tx, rx) = mpsc::channel(64);
    let total = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let per_ip: PerIp = Arc::default();
    tokio::spawn(async move {
        let mut last_warn: Option<Instant> = None;
        loop {
            let (stream, peer) = tokio::select! {
                r = listener.accept() => match r {
                    Ok(x) => x,
                    Err(e) => {
                        if last_warn.is_none_or(|t| t.elapsed() > Duration::from_secs(60)) {
                            warn!(error = %e, "accepting a connection failed; pausing accepts briefly");
                            last_warn = Some(Instant::now());
                        }
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
                () = tx.closed() => return,
            };
            let Ok(permit) = total.clone().try_acquire_owned() else {
                stats.refused_total.fetch_add(1, Ordering::Relaxed);
                continue; // dropping the stream closes it
            };
            let ip = peer.ip();
            {
                let mut m = per_ip.lock().unwrap_or_else(|p| p.into_inner());
                let n = m.entry(ip).or_default();
                if *n >= limits.max_per_ip {
                    stats.refused_per_ip.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                *n += 1;
            }
            let slot = Slot {
                _total: permit,
                ip,
                per_ip: per_ip.clone(),
            };
            // Best effort: small batches of acks should not wait for Nagle.
            let _nodelay = stream.set_nodelay(true).is_ok();
            let conn = Conn {
                stream,
                _slot: slot,
                idle: limits.idle,
                deadline: Box::pin(tokio::time::sleep(limits.idle)),
            };
            if tx.send(Ok(conn)).await.is_err() {
                return;
            }
        }
    });
    ReceiverStream::new(rx)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_stream::StreamExt;

    #[tokio::test]
    async fn caps_and_idle_timeout() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let stats = Arc::new(ConnStats::default());
        let limits = ConnLimits {
            max_connections: 3,
            max_per_ip: 2,
            idle: Duration::from_millis(300),
        };
        let mut inc = incoming(l, limits, stats.clone());
        let mut clients = Vec::new();
        for _ in 0..4 {
            clients.push(TcpStream::connect(addr).await.unwrap());
        }
        let mut conns = Vec::new();
        for _ in 0..2 {
            conns.push(inc.next().await.unwrap().unwrap());
        }
        // The third and fourth from the same address are over the per-address cap: closed.
        for c in &mut clients[2..] {
            let mut b = [0u8; 1];
            let n = tokio::time::timeout(Duration::from_secs(5), c.read(&mut b))
                .await
                .unwrap()
                .unwrap_or(0);
            assert_eq!(n, 0, "refused connections are closed");
        }
        assert_eq!(stats.refused_per_ip.load(Ordering::Relaxed), 2);
        // A silent connection times out; one that talks stays.
        clients[1].write_all(b"hi").await.unwrap();
        let mut b = [0u8; 2];
        conns[1].read_exact(&mut b).await.unwrap();
        let e = conns[0].read(&mut b).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        // Closing a connection frees its place.
        drop(conns);
        drop(clients);
        tokio::time::sleep(Duration::from_millis(50)).await;
        let _c = TcpStream::connect(addr).await.unwrap();
        assert!(inc.next().await.unwrap().is_ok());
    }
}
