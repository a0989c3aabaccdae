//! Sessions in the rollup: what the responders recorded per source (protocols, login attempts,
//! users and passwords, JA4, HASSH, SSH banners, commands, the payload rules over session
//! payloads) and per port (sessions, sources that sent a payload), and the two-phase rule.
//!
//! Two-phase scanners (the Spoki study of reactive telescopes): a stateless probe — a SYN the
//! agent fingerprinted as ZMap, Masscan, Mirai or Unicornscan — followed within
//! [`classify::TWO_PHASE_SECS`] by a real handshake from the same source (a responder session) tags the
//! source `two_phase`, with the first phase's tool. The sessions are read before the events, so
//! each fingerprinted event is checked against the source's session times as it is read.
use arrow::{
    array::{
        Array, ArrayRef, AsArray, BinaryArray, ListArray, RecordBatch, TimestampMicrosecondArray,
        UInt16Array,
    },
    datatypes::Int32Type,
};
use scanscope_common::AppProtocol;
use scanscope_lake::tables::sessions::{SessionColumns, SessionRow};

use super::{
    RollupError,
    aggregate::{CLASS_TCP, DayAgg, MAX_PAYLOAD_VALUES},
    payload,
    read::{column, typed},
};

const S: SessionColumns = SessionRow::COL;

/// Session start times kept per source for the two-phase rule.
const MAX_SESSION_TIMES: usize = 256;
/// Distinct users or passwords counted per source (the row keeps the ten most tried).
const MAX_CREDENTIAL_VALUES: usize = 256;
/// Users and passwords in a row.
pub const TOP_CREDENTIALS: usize = 10;

/// Login methods whose secret is a password as typed (not a hash, key or challenge response).
const PLAIN_SECRETS: [&str; 5] = ["password", "http_basic", "auth_plain", "auth_login", "apop"];

/// The `sessions` columns the rollup reads.
pub const SESSION_COLUMNS: [&str; 15] = [
    S.ts,
    S.src_ip,
    S.dst_port,
    S.protocol,
    S.payload,
    S.http_method,
    S.http_url,
    S.http_user_agent,
    S.ja4,
    S.hassh,
    S.ssh_client_banner,
    S.auth_methods,
    S.auth_users,
    S.auth_secrets,
    S.commands,
];

fn keep(v: &mut Vec<String>, x: &str) {
    if !x.is_empty() && v.len() < MAX_PAYLOAD_VALUES && !v.iter().any(|y| y == x) {
        v.push(x.to_string());
    }
}

fn count(v: &mut Vec<(String, u64)>, x: &str) {
    if let Some((_, n)) = v.iter_mut().find(|(y, _)| y == x) {
        *n += 1;
    } else if v.len() < MAX_CREDENTIAL_VALUES {
        v.push((x.to_string(), 1));
    }
}

/// The most tried values, most first (ties by value).
pub fn top(v: &[(String, u64)]) -> Vec<String> {
    let mut v: Vec<&(String, u64)> = v.iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    v.into_iter()
        .take(TOP_CREDENTIALS)
        .map(|(s, _)| s.clone())
        .collect()
}

/// The text of row `r` of a string or dictionary-of-string column.
fn str_at(col: &ArrayRef, r: usize) -> Option<&str> {
    if col.is_null(r) {
        return None;
    }
    if let Some(d) = col.as_dictionary_opt::<Int32Type>() {
        let k = d.keys().value(r) as usize;
        return Some(d.values().as_string::<i32>().value(k));
    }
    col.as_string_opt::<i32>().map(|s| s.value(r))
}

/// The strings of row `r` of a list-of-string (or of dictionary strings) column.
fn list_at(col: &ListArray, r: usize) -> Vec<&str> {
    if col.is_null(r) {
        return Vec::new();
    }
    let offsets = col.value_offsets();
    let (start, end) = (offsets[r] as usize, offsets[r + 1] as usize);
    let values = col.values();
    (start..end).filter_map(|i| str_at(values, i)).collect()
}

impl DayAgg {
    /// Adds one batch of `sessions` rows.
    pub fn add_sessions_batch(&mut self, b: &RecordBatch, path: &str) -> Result<(), RollupError> {
        let mut src_ids = Vec::new();
        self.addrs.ids(column(b, S.src_ip, path)?, &mut src_ids);
        let ts = typed::<TimestampMicrosecondArray>(b, S.ts, path)?;
        let port = typed::<UInt16Array>(b, S.dst_port, path)?;
        let protocol = column(b, S.protocol, path)?;
        let payload_col = typed::<BinaryArray>(b, S.payload, path)?;
        let (method, url, ua) = (
            column(b, S.http_method, path)?,
            column(b, S.http_url, path)?,
            column(b, S.http_user_agent, path)?,
        );
        let (ja4, hassh, banner) = (
            column(b, S.ja4, path)?,
            column(b, S.hassh, path)?,
            column(b, S.ssh_client_banner, path)?,
        );
        let methods = typed::<ListArray>(b, S.auth_methods, path)?;
        let users = typed::<ListArray>(b, S.auth_users, path)?;
        let secrets = typed::<ListArray>(b, S.auth_secrets, path)?;
        let commands = typed::<ListArray>(b, S.commands, path)?;
        for (r, &src) in src_ids.iter().enumerate() {
            if src == u32::MAX {
                continue;
            }
            self.session_rows += 1;
            let p = str_at(protocol, r)
                .and_then(AppProtocol::from_name)
                .unwrap_or(AppProtocol::Unknown);
            let pi = AppProtocol::ALL.iter().position(|x| *x == p).unwrap_or(0);
            let dst_port = port.value(r);
            let payload = payload_col.value(r);
            // Sessions are TCP: the first half of the per-port tables.
            self.port_sessions[usize::from(dst_port)] += 1;
            if !payload.is_empty() {
                self.payload_sources
                    .insert(((CLASS_TCP as u32) << 16 | u32::from(dst_port), src));
            }
            let si = self.state(src);
            let st = &mut self.ips[si];
            let s = st.sessions.get_or_insert_with(Box::default);
            s.sessions += 1;
            s.protocols |= 1 << pi;
            if s.times.len() < MAX_SESSION_TIMES {
                s.times.push(ts.value(r));
            }
            let (m, u, x) = (list_at(methods, r), list_at(users, r), list_at(secrets, r));
            if !m.is_empty() {
                match s.logins.iter_mut().find(|(i, _)| *i == pi) {
                    Some((_, n)) => *n += m.len() as u64,
                    None => s.logins.push((pi, m.len() as u64)),
                }
            }
            for (i, method) in m.iter().enumerate() {
                if let Some(user) = u.get(i).filter(|u| !u.is_empty()) {
                    count(&mut s.users, user);
                }
                if PLAIN_SECRETS.contains(method)
                    && let Some(secret) = x.get(i)
                {
                    count(&mut s.passwords, secret);
                }
            }
            for (col, into) in [
                (ja4, &mut s.ja4),
                (hassh, &mut s.hassh),
                (banner, &mut s.banners),
            ] {
                if let Some(v) = str_at(col, r) {
                    keep(into, v);
                }
            }
            for cmd in list_at(commands, r) {
                keep(&mut s.commands, cmd);
            }
            // The same facts the events give: URL, user agent, MySQL logins, payload tags.
            let e = st.events.get_or_insert_with(Box::default);
            if let (Some(m), Some(u)) = (str_at(method, r), str_at(url, r)) {
                keep(&mut e.http_url, &format!("{m} {u}"));
            }
            if let Some(a) = str_at(ua, r) {
                keep(&mut e.http_user_agent, a);
            }
            if p == AppProtocol::Mysql && !m.is_empty() {
                e.mysql_login_attempts += m.len() as u64;
                for user in &u {
                    keep(&mut e.mysql_user, user);
                }
                e.mysql_from_sessions = true;
            }
            if !payload.is_empty() {
                let facts = payload::parse(payload, dst_port);
                if let Some(c) = facts.rdp_cookie {
                    keep(&mut e.rdp_cookie, &c);
                }
                for t in facts.tags {
                    if !e.payload_tags.contains(&t) {
                        e.payload_tags.push(t);
                    }
                }
            }
        }
        Ok(())
    }

    /// After the sessions pass: each source's session times in order.
    pub fn sort_session_times(&mut self) {
        for s in self.ips.iter_mut().filter_map(|s| s.sessions.as_mut()) {
            s.times.sort_unstable();
        }
    }
}
