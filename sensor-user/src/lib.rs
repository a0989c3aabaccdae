//! The scanscope sensor agent.
//!
//! Pipeline, one module per stage (see ARCHITECTURE.md):
//!
//! 1. [`config`] — the operator's TOML file, validated into a [`config::RuntimeConfig`].
//! 2. [`load`] — loads the embedded XDP object ([`object`]), sizes and fills its maps, attaches it
//!    to interfaces (driver mode, falling back to generic) through BPF links that the kernel
//!    removes when the agent exits, even by a crash.
//! 3. [`drain`] — reads what the kernel produced: the ring buffer of sampled packets, the
//!    double-buffered tuple tables (flip the epoch, drain the idle table exactly), and the
//!    per-CPU counters (as per-interval deltas).
//! 4. [`decode`] — raw `#[repr(C)]` records into the typed [`record`]s, with UTC timestamps
//!    ([`clock`]) and the TCP option signature ([`tcp_options`]).
//! 5. [`fingerprint`] — per-event tool fingerprints (ZMap, Masscan, Mirai, Nmap, Unicornscan)
//!    and the initial-TTL OS hint.
//! 6. [`sink`] — writes records as JSON lines.
//! 7. [`uplink`] — batches records to the collector over gRPC (`scanscope.v1`), in order, with
//!    an on-disk spool while the collector is down, failover and backoff.
//! 8. [`respond`] (`--respond`) — answers scanners on every TCP port of the sensor's addresses
//!    (an sk_lookup program steers their connections to its listeners) and records what they
//!    send as sessions.
//!
//! [`agent`] runs the stages ([`agent::prepare`] does the privileged part, after which
//! [`privilege`] drops every capability but `CAP_BPF` and `CAP_NET_ADMIN`); [`args`] is the command line of `scanscope-sensor`. Test support
//! (the reference parser, frame builder and BPF_PROG_TEST_RUN harness) lives in the
//! `scanscope-testkit` crate.
//!
//! ```no_run
//! # async fn demo() -> Result<(), sensor_user::agent::AgentError> {
//! use sensor_user::agent::{AgentOptions, run};
//! let opts = AgentOptions { ifaces: vec!["eth0".into()], ..AgentOptions::default() };
//! run(opts, std::future::pending::<()>()).await
//! # }
//! ```
pub mod agent;
pub mod args;
pub mod clock;
pub mod config;
pub mod decode;
pub mod drain;
pub mod fingerprint;
pub mod load;
pub mod metrics;
pub mod object;
pub mod privilege;
pub mod record;
pub mod respond;
pub mod sink;
pub mod tcp_options;
pub mod uplink;
