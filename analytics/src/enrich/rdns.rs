//! Reverse DNS through a configured resolver (hickory), forward-confirmed (a PTR name counts
//! only if its A/AAAA records hold the address): rate-limited, bounded concurrency, one
//! timeout per query, and a persistent cache (`_state/rdns_cache.json`, answers kept 7 days,
//! "no name" answers 1 day) so re-runs of a rollup do not ask again. Off by default.
use std::{
    collections::HashMap,
    net::IpAddr,
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use hickory_resolver::{
    Resolver,
    config::{NameServerConfig, ResolverConfig, ResolverOpts},
    net::runtime::TokioRuntimeProvider,
};
use serde::{Deserialize, Serialize};

use super::EnrichError;
use super::config::RdnsConfig;

const KEEP_SECS: u64 = 7 * 86_400;
const KEEP_NEGATIVE_SECS: u64 = 86_400;

/// What reverse DNS did in one run.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RdnsStats {
    pub queried: usize,
    pub answered: usize,
    pub failed: usize,
    pub from_cache: usize,
    pub skipped_limit: usize,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct CacheFile {
    /// ip → (name or "", unix seconds of the answer)
    entries: HashMap<String, (String, u64)>,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Looks up PTR names of `ips` (in order of priority; at most `max_lookups` queries).
pub fn lookup_all(
    cfg: &RdnsConfig,
    cache_path: &Path,
    ips: &[IpAddr],
) -> Result<(HashMap<IpAddr, String>, RdnsStats), EnrichError> {
    let mut cache: CacheFile = std::fs::read(cache_path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let t = now();
    cache.entries.retain(|_, (name, at)| {
        t.saturating_sub(*at)
            < if name.is_empty() {
                KEEP_NEGATIVE_SECS
            } else {
                KEEP_SECS
            }
    });
    let mut out = HashMap::new();
    let mut stats = RdnsStats::default();
    let mut todo = Vec::new();
    for ip in ips {
        match cache.entries.get(&ip.to_string()) {
            Some((name, _)) => {
                stats.from_cache += 1;
                if !name.is_empty() {
                    out.insert(*ip, name.clone());
                }
            }
            None if todo.len() < cfg.max_lookups => todo.push(*ip),
            None => stats.skipped_limit += 1,
        }
    }
    if !todo.is_empty() {
        let cfg = cfg.clone();
        // Its own thread and runtime: callable from sync code and from inside a runtime.
        let answers = std::thread::spawn(move || -> Result<_, EnrichError> {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(EnrichError::Runtime)?;
            rt.block_on(query(&cfg, todo))
        })
        .join()
        .map_err(|_| EnrichError::ResolverPanicked)??;
        for (ip, answer) in answers {
            stats.queried += 1;
            match answer {
                Some(Ok(name)) => {
                    stats.answered += 1;
                    cache.entries.insert(ip.to_string(), (name.clone(), t));
                    out.insert(ip, name);
                }
                Some(Err(())) => {
                    // Definitive "no PTR": remembered for a day.
                    cache.entries.insert(ip.to_string(), (String::new(), t));
                }
                None => stats.failed += 1,
            }
        }
        save(cache_path, &cache)?;
    }
    Ok((out, stats))
}

fn save(path: &Path, cache: &CacheFile) -> Result<(), EnrichError> {
    let io = |source| EnrichError::Io {
        path: PathBuf::from(path),
        source,
    };
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).map_err(io)?;
    }
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec(cache).unwrap_or_default()).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

/// Answer per address: `Some(Ok(name))`, `Some(Err(()))` = no name, `None` = failed/timed out.
type Answer = Option<Result<String, ()>>;

async fn query(cfg: &RdnsConfig, ips: Vec<IpAddr>) -> Result<Vec<(IpAddr, Answer)>, EnrichError> {
    let mut builder = if cfg.servers.is_empty() {
        Resolver::builder_tokio().map_err(|source| EnrichError::Resolver {
            what: "reading the system configuration",
            source,
        })?
    } else {
        let mut rc = ResolverConfig::default();
        for s in &cfg.servers {
            let mut ns = NameServerConfig::udp_and_tcp(s.ip());
            for c in &mut ns.connections {
                c.port = s.port();
            }
            rc.add_name_server(ns);
        }
        Resolver::builder_with_config(rc, TokioRuntimeProvider::default())
    };
    let mut opts = ResolverOpts::default();
    opts.timeout = Duration::from_millis(cfg.timeout_ms);
    opts.attempts = 1;
    *builder.options_mut() = opts;
    let resolver = Arc::new(builder.build().map_err(|source| EnrichError::Resolver {
        what: "building the resolver",
        source,
    })?);
    let limit = Arc::new(tokio::sync::Semaphore::new(cfg.concurrency));
    let mut tick =
        tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(cfg.rate_per_sec)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let per_query = Duration::from_millis(cfg.timeout_ms * 2);
    let mut set = tokio::task::JoinSet::new();
    for ip in ips {
        tick.tick().await;
        let permit = limit
            .clone()
            .acquire_owned()
            .await
            .map_err(EnrichError::Concurrency)?;
        let r = resolver.clone();
        set.spawn(async move {
            let _permit = permit;
            let answer = match tokio::time::timeout(per_query, r.reverse_lookup(ip)).await {
                Ok(Ok(lookup)) => {
                    let name = lookup.answers().iter().find_map(|rec| match &rec.data {
                        hickory_resolver::proto::rr::RData::PTR(p) => {
                            Some(p.0.to_utf8().trim_end_matches('.').to_string())
                        }
                        _ => None,
                    });
                    match name {
                        // Forward-confirmed: the name's A/AAAA records hold the address. A
                        // scanner controls its own reverse zone; without this it could name
                        // itself after any organisation.
                        Some(n) => Some(
                            match tokio::time::timeout(per_query, r.lookup_ip(format!("{n}.")))
                                .await
                            {
                                Ok(Ok(fwd)) if fwd.iter().any(|a| a == ip) => Ok(n),
                                Ok(Ok(_)) | Ok(Err(_)) => Err(()),
                                Err(_) => return (ip, None),
                            },
                        ),
                        None => Some(Err(())),
                    }
                }
                Ok(Err(e)) if e.is_no_records_found() => Some(Err(())),
                _ => None,
            };
            (ip, answer)
        });
    }
    let mut out = Vec::new();
    while let Some(r) = set.join_next().await {
        if let Ok(x) = r {
            out.push(x);
        }
    }
    Ok(out)
}
