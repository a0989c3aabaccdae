//! Sums over the agent's JSON-lines records (`docs/jsonl.md`).
use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

/// Per (source, kind): packets per destination port, summed over `flow` records.
pub fn flows_by_source(records: &[Value]) -> BTreeMap<(String, String), BTreeMap<u16, u64>> {
    let mut out: BTreeMap<(String, String), BTreeMap<u16, u64>> = BTreeMap::new();
    for r in records.iter().filter(|r| r["type"] == "flow") {
        let key = (
            r["src_ip"].as_str().unwrap_or("").to_string(),
            r["kind"].as_str().unwrap_or("").to_string(),
        );
        let port = r["dst_port"].as_u64().unwrap_or(0) as u16;
        *out.entry(key).or_default().entry(port).or_default() += r["packets"].as_u64().unwrap_or(0);
    }
    out
}

/// Tools recognised per source, from `event` records.
pub fn tools_by_source(records: &[Value]) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for r in records.iter().filter(|r| r["type"] == "event") {
        let src = r["src_ip"].as_str().unwrap_or("").to_string();
        let set = out.entry(src).or_default();
        for t in r["tools"].as_array().into_iter().flatten() {
            if let Some(t) = t.as_str() {
                set.insert(t.to_string());
            }
        }
    }
    out
}

/// Sum of a named counter over all `stats` records.
pub fn counter_total(records: &[Value], name: &str) -> u64 {
    records
        .iter()
        .filter(|r| r["type"] == "stats")
        .map(|r| r["counters"][name].as_u64().unwrap_or(0))
        .sum()
}

/// Sum of packets of one kind over all `stats` records.
pub fn kind_total(records: &[Value], kind: &str) -> u64 {
    records
        .iter()
        .filter(|r| r["type"] == "stats")
        .map(|r| r["kinds"][kind]["packets"].as_u64().unwrap_or(0))
        .sum()
}
