//! One source's page: every day it was seen, its ports, what it sent (URLs, user agents, login
//! attempts, JA4/HASSH), its user rule fields, its responder sessions and its payload samples
//! (as escaped ASCII and hex).
use std::{
    collections::{BTreeMap, BTreeSet},
    net::IpAddr,
};

use arrow::{array::RecordBatch, datatypes::DataType};
use scanscope_lake::tables::{
    events::{EventColumns, EventRow},
    ip_daily::{self, IpColumns, IpRow},
    sessions::{SessionColumns, SessionRow},
};
use serde_json::{Value, json};

use super::{Ctx, WIDE_TAG, date, per_day, time};
use crate::{
    col::{Bytes, Flag, Num, Ports, Text, TextList, Time},
    error::ConsoleError,
    eval::Classes,
    view::{ColumnKind as K, Range, Table, View, bytes_value},
};

const IP: IpColumns = IpRow::COL;
const SESSION: SessionColumns = SessionRow::COL;
const EVENT: EventColumns = EventRow::COL;

/// Sessions and payload samples listed (the newest).
pub const MAX_SAMPLES: usize = 200;

/// The payload summaries of `ip_daily` the page lists, by the name it shows.
const PAYLOAD_LISTS: &[(&str, &str)] = &[
    ("url", IP.http_url),
    ("user_agent", IP.http_user_agent),
    ("rdp_cookie", IP.rdp_cookie),
    ("mysql_user", IP.mysql_user),
    ("user", IP.users),
    ("password", IP.passwords),
    ("ja4", IP.ja4),
    ("hassh", IP.hassh),
    ("ssh_banner", IP.ssh_client_banners),
    ("command", IP.session_commands),
    ("protocol", IP.session_protocols),
];

/// The page of `addr` over `range`.
pub fn build(ctx: &Ctx, range: Range, addr: &str) -> Result<View, ConsoleError> {
    let ip: IpAddr = addr
        .parse()
        .map_err(|_| ConsoleError::param("ip", format!("{addr:?} is not an IP address")))?;
    let key = canonical(ip);
    let mut v = ctx.view(range);
    let days = ctx.catalog.rollups(IpRow::TABLE, range.from, range.to)?;
    // Each day's row of the address, read from the row group that holds it.
    let mut seen: Vec<(chrono::NaiveDate, RecordBatch)> = Vec::new();
    for r in per_day(&days, |d| d.rows_with(&key).map(|b| (d.date, b))) {
        let (d, b) = r?;
        if b.num_rows() > 0 {
            seen.push((d, b.slice(0, 1)));
        }
    }
    if seen.is_empty() {
        return Err(ConsoleError::NotFound(format!(
            "{key} in {} … {}",
            range.from, range.to
        )));
    }

    let mut timeline = Table::new(&[
        ("date", K::Date),
        ("class", K::Class),
        ("packets", K::Number),
        ("port_count", K::Number),
        ("ports", K::PortList),
        ("kinds", K::List),
        ("tools", K::List),
        ("scan_type", K::Text),
        ("breadth", K::Number),
        ("hosts", K::Number),
        ("sensors", K::List),
        ("sessions", K::Number),
        ("login_attempts", K::Number),
        ("tags", K::Tags),
    ]);
    let mut ports: BTreeMap<(&str, u16), (u64, BTreeSet<chrono::NaiveDate>)> = BTreeMap::new();
    let mut lists: BTreeMap<(&str, String), BTreeSet<chrono::NaiveDate>> = BTreeMap::new();
    let mut user = Table::new(&[("date", K::Date), ("field", K::Text), ("value", K::Text)]);
    let mut summary = Summary::default();
    for (d, b) in &seen {
        let classes = Classes::of(b);
        let class = classes.get(0);
        summary.add(b, *d);
        timeline.push(vec![
            date(*d),
            json!(class),
            json!(Num::of(b, IP.packets).or0(0)),
            json!(Num::of(b, IP.port_count).or0(0)),
            json!(Ports::of(b, IP.ports).get(0)),
            json!(TextList::of(b, IP.kinds).get(0).collect::<Vec<_>>()),
            json!(TextList::of(b, IP.tools).get(0).collect::<Vec<_>>()),
            json!(Text::of(b, IP.scan_type).get(0)),
            json!(Num::of(b, IP.scan_breadth).or0(0)),
            json!(Num::of(b, IP.dst_hosts).or0(0)),
            json!(TextList::of(b, IP.sensors).get(0).collect::<Vec<_>>()),
            json!(Num::of(b, IP.sessions).or0(0)),
            json!(
                Num::of(b, IP.login_attempts).or0(0) + Num::of(b, IP.mysql_login_attempts).or0(0)
            ),
            json!(TextList::of(b, IP.tags).get(0).collect::<Vec<_>>()),
        ]);
        // Per-port packets are not in ip_daily; days per port are.
        for (proto, col) in [("tcp", IP.tcp_ports), ("udp", IP.udp_ports)] {
            for p in Ports::of(b, col).get(0) {
                ports.entry((proto, *p)).or_default().1.insert(*d);
            }
        }
        for (name, col) in PAYLOAD_LISTS {
            for val in TextList::of(b, col).get(0) {
                lists.entry((name, val.to_string())).or_default().insert(*d);
            }
        }
        for f in b.schema().fields() {
            if ip_daily::is_builtin(f.name()) {
                continue;
            }
            let value = match f.data_type() {
                DataType::Boolean => json!(Flag::of(b, f.name()).get(0)),
                DataType::Int64 => json!(Num::of(b, f.name()).get(0)),
                _ => json!(Text::of(b, f.name()).get(0)),
            };
            if !value.is_null() {
                user.push(vec![date(*d), json!(f.name()), value]);
            }
        }
    }
    let mut pt = Table::new(&[("proto", K::Text), ("port", K::Port), ("days", K::Number)]);
    for ((proto, p), (_, ds)) in &ports {
        pt.push(vec![json!(proto), json!(p), json!(ds.len())]);
    }
    let mut lt = Table::new(&[("field", K::Text), ("value", K::Text), ("days", K::Number)]);
    for ((name, val), ds) in &lists {
        lt.push(vec![json!(name), json!(val), json!(ds.len())]);
    }
    v.summary = summary.json(&key, seen.len());
    v.tables.insert("days", timeline);
    v.tables.insert("ports", pt);
    v.tables.insert("payloads", lt);
    v.tables.insert("user_fields", user);
    let seen_days: Vec<chrono::NaiveDate> = seen.iter().map(|(d, _)| *d).collect();
    v.tables
        .insert("sessions", sessions(ctx, &seen_days, &key)?);
    v.tables.insert("samples", samples(ctx, &seen_days, &key)?);
    Ok(v)
}

/// The address as the lake writes it (IPv4-mapped IPv6 as IPv4).
pub fn canonical(ip: IpAddr) -> String {
    match ip {
        IpAddr::V6(a) => a
            .to_ipv4_mapped()
            .map_or_else(|| a.to_string(), |v4| v4.to_string()),
        IpAddr::V4(a) => a.to_string(),
    }
}

#[derive(Debug, Default)]
struct Summary {
    first_seen: Option<i64>,
    last_seen: Option<i64>,
    packets: u64,
    org: Option<String>,
    org_source: Option<String>,
    rdns: Option<String>,
    country: Option<String>,
    asn: Option<u64>,
    as_org: Option<String>,
    os_hint: Option<String>,
    tor: bool,
    scanner: bool,
    wide: bool,
    spoofed: bool,
    tools: BTreeSet<String>,
    tags: BTreeSet<String>,
    logins: u64,
    sensors: BTreeSet<String>,
}

impl Summary {
    fn add(&mut self, b: &RecordBatch, _day: chrono::NaiveDate) {
        let f = Time::of(b, IP.first_seen).get(0);
        self.first_seen = match (self.first_seen, f) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.last_seen = self.last_seen.max(Time::of(b, IP.last_seen).get(0));
        self.packets += Num::of(b, IP.packets).or0(0);
        let set = |slot: &mut Option<String>, col: &str| {
            if let Some(v) = Text::of(b, col).get(0) {
                *slot = Some(v.to_string());
            }
        };
        set(&mut self.org, IP.org);
        set(&mut self.org_source, IP.org_source);
        set(&mut self.rdns, IP.rdns);
        set(&mut self.country, IP.country);
        set(&mut self.as_org, IP.as_org);
        set(&mut self.os_hint, IP.os_hint);
        if let Some(a) = Num::of(b, IP.asn).get(0) {
            self.asn = Some(a);
        }
        self.tor |= Flag::of(b, IP.tor_exit).get(0) == Some(true);
        self.scanner |= Flag::of(b, IP.is_scanner).get(0) == Some(true);
        self.spoofed |= Flag::of(b, IP.spoofed_suspect).get(0) == Some(true);
        let tags: Vec<&str> = TextList::of(b, IP.tags).get(0).collect();
        self.wide |= tags.contains(&WIDE_TAG);
        self.tags.extend(tags.iter().map(|t| t.to_string()));
        self.tools
            .extend(TextList::of(b, IP.tools).get(0).map(str::to_string));
        self.sensors
            .extend(TextList::of(b, IP.sensors).get(0).map(str::to_string));
        self.logins +=
            Num::of(b, IP.login_attempts).or0(0) + Num::of(b, IP.mysql_login_attempts).or0(0);
    }

    fn json(&self, ip: &str, days: usize) -> serde_json::Map<String, Value> {
        let class = crate::fields::class_of(
            self.org.as_deref(),
            self.tags.iter().map(String::as_str),
            self.logins,
        );
        let v = json!({
            "ip": ip,
            "class": class,
            "days": days,
            "first_seen": time(self.first_seen),
            "last_seen": time(self.last_seen),
            "packets": self.packets,
            "org": self.org,
            "org_source": self.org_source,
            "rdns": self.rdns,
            "country": self.country,
            "asn": self.asn,
            "as_org": self.as_org,
            "os_hint": self.os_hint,
            "tor_exit": self.tor,
            "scanner": self.scanner,
            "wide_scanner": self.wide,
            "spoofed_suspect": self.spoofed,
            "tools": self.tools,
            "tags": self.tags,
            "login_attempts": self.logins,
            "sensors": self.sensors,
        });
        match v {
            Value::Object(m) => m,
            _ => serde_json::Map::new(),
        }
    }
}

/// Whether each row's `src_ip` is `key`.
fn is_src(b: &RecordBatch, column: &str, key: &str) -> Vec<bool> {
    Text::of(b, column).test(b.num_rows(), |s| s == key)
}

fn sessions(ctx: &Ctx, days: &[chrono::NaiveDate], key: &str) -> Result<Table, ConsoleError> {
    let cols = [
        SESSION.ts,
        SESSION.sensor,
        SESSION.src_ip,
        SESSION.dst_port,
        SESSION.protocol,
        SESSION.end,
        SESSION.duration_ms,
        SESSION.http_method,
        SESSION.http_url,
        SESSION.http_user_agent,
        SESSION.ja4,
        SESSION.tls_sni,
        SESSION.hassh,
        SESSION.ssh_client_banner,
        SESSION.auth_users,
        SESSION.auth_secrets,
        SESSION.commands,
        SESSION.payload,
    ];
    let mut rows: Vec<(i64, Vec<Value>)> = Vec::new();
    for d in days {
        for b in ctx.catalog.scan(SessionRow::TABLE, *d, &cols, &|b| {
            is_src(b, SESSION.src_ip, key)
        })? {
            let ts = Time::of(&b, SESSION.ts);
            let text = |c: &str, i: usize| json!(Text::of(&b, c).get(i));
            let list = |c: &str, i: usize| json!(TextList::of(&b, c).get(i).collect::<Vec<_>>());
            for i in 0..b.num_rows() {
                let t = ts.get(i).unwrap_or(0);
                rows.push((
                    t,
                    vec![
                        time(Some(t)),
                        text(SESSION.sensor, i),
                        json!(Num::of(&b, SESSION.dst_port).or0(i)),
                        text(SESSION.protocol, i),
                        text(SESSION.end, i),
                        json!(Num::of(&b, SESSION.duration_ms).or0(i)),
                        text(SESSION.http_method, i),
                        text(SESSION.http_url, i),
                        text(SESSION.http_user_agent, i),
                        text(SESSION.ja4, i),
                        text(SESSION.tls_sni, i),
                        text(SESSION.hassh, i),
                        text(SESSION.ssh_client_banner, i),
                        list(SESSION.auth_users, i),
                        list(SESSION.auth_secrets, i),
                        list(SESSION.commands, i),
                        bytes_value(Bytes::of(&b, SESSION.payload).get(i)),
                    ],
                ));
            }
        }
    }
    let mut t = Table::new(&[
        ("ts", K::Time),
        ("sensor", K::Text),
        ("port", K::Port),
        ("protocol", K::Text),
        ("end", K::Text),
        ("duration_ms", K::Number),
        ("http_method", K::Text),
        ("url", K::Text),
        ("user_agent", K::Text),
        ("ja4", K::Text),
        ("sni", K::Text),
        ("hassh", K::Text),
        ("ssh_banner", K::Text),
        ("users", K::List),
        ("secrets", K::List),
        ("commands", K::List),
        ("payload", K::Bytes),
    ]);
    newest(&mut t, rows);
    Ok(t)
}

fn samples(ctx: &Ctx, days: &[chrono::NaiveDate], key: &str) -> Result<Table, ConsoleError> {
    let cols = [
        EVENT.ts,
        EVENT.sensor,
        EVENT.src_ip,
        EVENT.dst_port,
        EVENT.proto,
        EVENT.kind,
        EVENT.payload_len,
        EVENT.payload,
    ];
    let mut rows: Vec<(i64, Vec<Value>)> = Vec::new();
    for d in days {
        let keep = |b: &RecordBatch| {
            let len = Num::of(b, EVENT.payload_len);
            is_src(b, EVENT.src_ip, key)
                .into_iter()
                .enumerate()
                .map(|(i, m)| m && len.or0(i) > 0)
                .collect()
        };
        for b in ctx.catalog.scan(EventRow::TABLE, *d, &cols, &keep)? {
            let ts = Time::of(&b, EVENT.ts);
            for i in 0..b.num_rows() {
                let t = ts.get(i).unwrap_or(0);
                rows.push((
                    t,
                    vec![
                        time(Some(t)),
                        json!(Text::of(&b, EVENT.sensor).get(i)),
                        json!(Text::of(&b, EVENT.proto).get(i)),
                        json!(Num::of(&b, EVENT.dst_port).or0(i)),
                        json!(Text::of(&b, EVENT.kind).get(i)),
                        json!(Num::of(&b, EVENT.payload_len).or0(i)),
                        bytes_value(Bytes::of(&b, EVENT.payload).get(i)),
                    ],
                ));
            }
        }
    }
    let mut t = Table::new(&[
        ("ts", K::Time),
        ("sensor", K::Text),
        ("proto", K::Text),
        ("port", K::Port),
        ("kind", K::Text),
        ("payload_len", K::Number),
        ("payload", K::Bytes),
    ]);
    newest(&mut t, rows);
    Ok(t)
}

/// Fills `t` with the newest [`MAX_SAMPLES`] rows, newest first; `total` says how many there were.
fn newest(t: &mut Table, mut rows: Vec<(i64, Vec<Value>)>) {
    rows.sort_by_key(|r| std::cmp::Reverse(r.0));
    t.total = Some(rows.len() as u64);
    for (_, r) in rows.into_iter().take(MAX_SAMPLES) {
        t.push(r);
    }
}
