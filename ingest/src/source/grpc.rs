//! The gRPC source: the `scanscope.v1.Ingest` service sensors stream batches to.
//!
//! Per stream, a reader task decodes and validates each batch and hands it to the store; an
//! acker task waits for the store's answers in order and sends the acks. Several batches of one
//! stream are in flight at once, so a stream is not limited to one fsync round trip per batch.
//! The first refused batch ends the stream with its status; other streams are unaffected.
use std::net::SocketAddr;

use prost::Message;
use scanscope_proto::v1::{
    Ack, AckStatus, Batch, Counter, LostStage, StatusRequest, StatusResponse, ingest_server::Ingest,
};
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Code, Request, Response, Status, Streaming};
use tracing::{debug, warn};

use crate::{
    auth::{Allowed, TokenAuth},
    error::IngestError,
    store::StoreHandle,
    validate::{self, Limits},
};

/// The gRPC service.
#[derive(Debug, Clone)]
pub struct IngestService {
    store: StoreHandle,
    limits: Limits,
    auth: TokenAuth,
    /// Client certificates are required (mutual TLS): the ids they name bind the stream too.
    bind_certs: bool,
}

impl IngestService {
    pub fn new(store: StoreHandle, limits: Limits, auth: TokenAuth, bind_certs: bool) -> Self {
        IngestService {
            store,
            limits,
            auth,
            bind_certs,
        }
    }

    /// What the request's credentials allow: its token's ids (set by the interceptor), and,
    /// under mutual TLS, those of its client certificate.
    fn allowed<T>(&self, req: &Request<T>) -> Allowed {
        let token = req
            .extensions()
            .get::<Allowed>()
            .cloned()
            .unwrap_or(Allowed::Any);
        if !self.bind_certs {
            return token;
        }
        let cert = req
            .peer_certs()
            .and_then(|c| c.first().map(Allowed::of_certificate))
            .unwrap_or_else(|| Allowed::Ids(Default::default()));
        token.and(&cert)
    }
}

/// An answer that is already known (a refusal), queued behind the pending acks.
fn answered(
    r: Result<AckStatus, IngestError>,
) -> oneshot::Receiver<Result<AckStatus, IngestError>> {
    let (tx, rx) = oneshot::channel();
    let _receiver_held = tx.send(r).is_ok();
    rx
}

type Pending = (u64, oneshot::Receiver<Result<AckStatus, IngestError>>);

/// A name for the sender of a refused batch: its sensor id if valid, else its address.
/// Refusals are logged at most 20 per 10 s (`suppressed`: how many were not logged since the
/// last line); every one is counted in the lake's `lost` table.
static REFUSALS_LOGGED: scanscope_telemetry::Throttle =
    scanscope_telemetry::Throttle::new(std::time::Duration::from_secs(10), 20);

fn sender_label(sensor: &str, peer: Option<SocketAddr>) -> String {
    if validate::valid_sensor_id(sensor) {
        sensor.to_string()
    } else {
        peer.map_or_else(|| "unknown".into(), |p| format!("peer:{}", p.ip()))
    }
}

/// Turns an inbound stream error into the status the peer gets: a message over the size limit
/// is RESOURCE_EXHAUSTED (tonic's decoder reports it as OUT_OF_RANGE, its only use of that code).
fn inbound_error(s: Status) -> IngestError {
    if matches!(s.code(), Code::OutOfRange | Code::ResourceExhausted) {
        IngestError::TooLarge {
            sensor: String::new(),
            seq: 0,
            reason: s.message().to_string(),
        }
    } else if s.code() == Code::Internal || s.code() == Code::InvalidArgument {
        IngestError::Invalid {
            sensor: String::new(),
            seq: 0,
            reason: format!("undecodable message: {}", s.message()),
        }
    } else {
        IngestError::Stream(s)
    }
}

#[tonic::async_trait]
impl Ingest for IngestService {
    type StreamStream = ReceiverStream<Result<Ack, Status>>;

    async fn stream(
        &self,
        req: Request<Streaming<Batch>>,
    ) -> Result<Response<Self::StreamStream>, Status> {
        let peer = req.remote_addr();
        let allowed = self.allowed(&req);
        let mut inbound = req.into_inner();
        let (out_tx, out_rx) = mpsc::channel::<Result<Ack, Status>>(256);
        let (pend_tx, mut pend_rx) = mpsc::channel::<Pending>(256);
        let store = self.store.clone();
        let limits = self.limits;
        let failed = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));

        // Acker: answers in order.
        let acker_out = out_tx.clone();
        tokio::spawn(async move {
            while let Some((seq, rx)) = pend_rx.recv().await {
                let r = rx.await.unwrap_or(Err(IngestError::ShuttingDown));
                match r {
                    Ok(status) => {
                        let ack = Ack {
                            seq,
                            status: status as i32,
                        };
                        if acker_out.send(Ok(ack)).await.is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        debug!(seq, error = %e, "batch not stored");
                        let _peer_gone = acker_out.send(Err(e.into())).await.is_err();
                        return;
                    }
                }
            }
        });

        // Reader: decode, validate, submit.
        tokio::spawn(async move {
            loop {
                let batch = tokio::select! {
                    m = inbound.message() => m,
                    () = out_tx.closed() => return,
                };
                let batch = match batch {
                    Ok(Some(b)) => b,
                    Ok(None) => return,
                    Err(s) => {
                        let e = inbound_error(s);
                        if e.is_permanent() {
                            if let Some(suppressed) = REFUSALS_LOGGED.admit() {
                                warn!(peer = ?peer, error = %e, suppressed, "refused a message");
                            }
                            store
                                .rejected(
                                    sender_label("", peer),
                                    e.reason(),
                                    e.to_string(),
                                    LostStage::CollectorRejected,
                                )
                                .await;
                        }
                        // Behind the acks of the batches before it: the sender learns exactly
                        // which of its batches were stored.
                        let _acker_gone = pend_tx.send((0, answered(Err(e)))).await.is_err();
                        return;
                    }
                };
                let encoded = batch.encode_to_vec();
                let now = chrono::Utc::now().timestamp_micros();
                let checked =
                    validate::validate(&batch, encoded.len(), &limits, now).and_then(|()| {
                        if allowed.permits(&batch.sensor_id) {
                            Ok(())
                        } else {
                            Err(IngestError::Denied {
                                sensor: batch.sensor_id.clone(),
                            })
                        }
                    });
                if let Err(e) = checked {
                    if let Some(suppressed) = REFUSALS_LOGGED.admit() {
                        warn!(peer = ?peer, error = %e, suppressed, "refused a batch");
                    }
                    let stage = match e {
                        IngestError::Denied { .. } => LostStage::CollectorDenied,
                        _ => LostStage::CollectorRejected,
                    };
                    store
                        .rejected(
                            sender_label(&batch.sensor_id, peer),
                            e.reason(),
                            e.to_string(),
                            stage,
                        )
                        .await;
                    // Earlier batches of this stream are acked first, then the refusal.
                    let _acker_gone = pend_tx.send((batch.seq, answered(Err(e)))).await.is_err();
                    return;
                }
                let seq = batch.seq;
                // Queue in order (the store answers in queue order); the acker waits.
                let rx = match store.enqueue(&batch, encoded, failed.clone()).await {
                    Ok(rx) => rx,
                    Err(e) => answered(Err(e)),
                };
                if pend_tx.send((seq, rx)).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(out_rx)))
    }

    async fn status(
        &self,
        req: Request<StatusRequest>,
    ) -> Result<Response<StatusResponse>, Status> {
        let allowed = self.allowed(&req);
        let mut s = self
            .store
            .status()
            .await
            .ok_or_else(|| Status::unavailable("collector is shutting down"))?;
        // A peer sees only the sensors its credentials name.
        s.sensors.retain(|x| allowed.permits(&x.sensor_id));
        let refused = self.auth.refused.load(std::sync::atomic::Ordering::Relaxed);
        if refused > 0 {
            s.rejected.push(Counter {
                name: "unauthenticated".into(),
                value: refused,
            });
        }
        Ok(Response::new(s))
    }
}
