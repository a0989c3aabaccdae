//! Rows stage of the rollup: per-source state → classified `ip_daily` rows (enrichment and
//! user rules are applied to them afterwards); the `port_daily`, `dos_daily` and `series_daily`
//! rows.
use std::collections::HashMap;

use scanscope_common::{AppProtocol, Kind, Tool};
use scanscope_lake::tables::{
    dos_daily::DosRow, ip_daily::IpRow, port_daily::PortRow, series_daily::SeriesRow,
};

use super::{
    aggregate::{CLASS_ICMP, CLASS_TCP, CLASS_UDP, DayAgg, IpState, SERIES_BUCKETS},
    classify::{self, SpoofReason},
    config::RollupConfig,
    sessions,
};

fn bits<T: Copy>(mask: u64, names: &[T]) -> Vec<T> {
    names
        .iter()
        .enumerate()
        .filter(|(i, _)| mask & (1 << i) != 0)
        .map(|(_, n)| *n)
        .collect()
}

/// The `ip_daily` row of one source, classified (everything but enrichment and user rules).
pub fn ip_row(agg: &DayAgg, s: &mut IpState, cfg: &RollupConfig, active: u64) -> IpRow {
    s.compact();
    let mut targets: Vec<u64> = s.probes.iter().map(|p| p >> 18).collect();
    targets.dedup(); // probes are sorted by target first
    let (mut tcp, mut udp) = (Vec::new(), Vec::new());
    for p in &s.probes {
        let port = (*p & 0xffff) as u16;
        match (*p >> 16) & 3 {
            CLASS_TCP => tcp.push(port),
            CLASS_UDP => udp.push(port),
            CLASS_ICMP => {}
            _ => {}
        }
    }
    tcp.sort_unstable();
    tcp.dedup();
    udp.sort_unstable();
    udp.dedup();
    let mut ports: Vec<u16> = tcp.iter().chain(udp.iter()).copied().collect();
    ports.sort_unstable();
    ports.dedup();
    let ev = s.events.as_deref();
    let tools: Vec<Tool> = bits(u64::from(ev.map_or(0, |e| e.tools)), &Tool::ALL);
    let mut spoof = s.spoof;
    if ev.is_some_and(|e| e.high_ttl)
        && let Some(r) = classify::spoof_reason_ttl(255, &tools)
    {
        spoof |= r.bit();
    }
    let spoof_reasons: Vec<&'static str> = bits(u64::from(spoof), &SpoofReason::ALL)
        .into_iter()
        .map(SpoofReason::name)
        .collect();
    let probe_pairs = s.probes.len() as u64;
    let scanner = classify::is_scanner(&cfg.scanner, probe_pairs, targets.len() as u64, spoof != 0);
    let sensor_count = s.sensors.len() as u64;
    let breadth = classify::scan_breadth(sensor_count, active);
    let mut sensors: Vec<std::sync::Arc<str>> = s
        .sensors
        .iter()
        .map(|i| agg.sensor_names[i as usize].clone())
        .collect();
    sensors.sort();
    let mut tags = Vec::new();
    if scanner {
        tags.push("scanner".to_string());
        if breadth >= cfg.scanner.wide_breadth {
            tags.push("wide_scanner".to_string());
        }
    }
    if s.backscatter_packets > 0 {
        tags.push("backscatter".to_string());
    }
    for r in &spoof_reasons {
        tags.push(format!("spoofed:{r}"));
    }
    if s.max_icmp_flow_bytes > 2048 {
        tags.push("icmp_tunnel_hint".to_string());
    }
    if s.max_dns_flow_bytes > 1024 {
        tags.push("dns_tunnel_hint".to_string());
    }
    let none_if_empty = |v: &Vec<String>| (!v.is_empty()).then(|| v.clone());
    let has_payloads = ev.is_some_and(|e| e.payloads > 0 || e.mysql_from_sessions);
    if let Some(e) = ev {
        tags.extend(e.payload_tags.iter().map(|t| t.to_string()));
    }
    let ss = s.sessions.as_deref();
    if let Some(x) = ss {
        tags.push("responded".to_string());
        if x.two_phase.is_some() {
            tags.push("two_phase".to_string());
        }
        if x.logins.iter().any(|(_, n)| *n > 0) {
            tags.push("login_attempts".to_string());
        }
    }
    let mut logins: Vec<(usize, u64)> = ss.map(|x| x.logins.clone()).unwrap_or_default();
    logins.sort_unstable();
    let scan_type = classify::scan_type(
        targets.len() as u64,
        (tcp.len() + udp.len()) as u64,
        cfg.scanner.few,
    )
    .as_str();
    // The probes are summarised: free them now (the largest part of the day's state).
    s.probes = Vec::new();
    IpRow {
        src_ip: agg.addrs.name(s.addr).to_string(),
        first_seen: s.first,
        last_seen: s.last,
        packets: s.packets,
        bytes: s.bytes,
        flows: Some(s.flows),
        sensor_count: sensor_count as u32,
        sensors,
        scan_breadth: breadth,
        dst_hosts: targets.len() as u64,
        port_count: ports.len() as u32,
        ports,
        tcp_ports: tcp,
        udp_ports: udp,
        probe_pairs,
        icmp_ping: s.icmp_ping,
        kinds: bits(u64::from(s.kinds), &Kind::ALL),
        scan_type,
        is_scanner: scanner,
        tools,
        os_hint: ev.and_then(|e| {
            e.os_hints
                .iter()
                .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)))
                .map(|h| h.0.clone())
        }),
        spoofed_suspect: spoof != 0,
        spoof_reasons,
        backscatter_packets: s.backscatter_packets,
        tags,
        http_url: ev.and_then(|e| none_if_empty(&e.http_url)),
        http_user_agent: ev.and_then(|e| none_if_empty(&e.http_user_agent)),
        rdp_cookie: ev.and_then(|e| none_if_empty(&e.rdp_cookie)),
        mysql_login_attempts: ev.filter(|_| has_payloads).map(|e| e.mysql_login_attempts),
        mysql_user: ev.and_then(|e| none_if_empty(&e.mysql_user)),
        payload_samples: ev.map_or(0, |e| e.payloads),
        sessions: ss.map_or(0, |x| x.sessions),
        session_protocols: bits(u64::from(ss.map_or(0, |x| x.protocols)), AppProtocol::ALL)
            .into_iter()
            .map(AppProtocol::name)
            .collect(),
        login_attempts: logins.iter().map(|(_, n)| n).sum(),
        login_protocols: logins
            .iter()
            .map(|(i, _)| AppProtocol::ALL[*i].name())
            .collect(),
        login_counts: logins.iter().map(|(_, n)| *n).collect(),
        users: ss.map(|x| sessions::top(&x.users)).unwrap_or_default(),
        passwords: ss.map(|x| sessions::top(&x.passwords)).unwrap_or_default(),
        ja4: ss.map(|x| x.ja4.clone()).unwrap_or_default(),
        hassh: ss.map(|x| x.hassh.clone()).unwrap_or_default(),
        ssh_client_banners: ss.map(|x| x.banners.clone()).unwrap_or_default(),
        session_commands: ss.map(|x| x.commands.clone()).unwrap_or_default(),
        two_phase_tool: ss.and_then(|x| x.two_phase),
        ..IpRow::default()
    }
}

/// `port_daily` rows from the finished `ip_daily` rows and the per-port packet counters.
pub fn port_rows(agg: &DayAgg, rows: &[IpRow]) -> Vec<PortRow> {
    // (class, port) → (sources, scanners, org → sources)
    type PortAgg<'a> = (u64, u64, HashMap<&'a str, u64>);
    let mut per: HashMap<(u8, u16), PortAgg<'_>> = HashMap::new();
    for r in rows {
        for (class, list) in [(1u8, &r.tcp_ports), (2u8, &r.udp_ports)] {
            for p in list {
                let e = per.entry((class, *p)).or_default();
                e.0 += 1;
                if r.is_scanner {
                    e.1 += 1;
                }
                if let Some(o) = &r.org {
                    *e.2.entry(o.as_str()).or_default() += 1;
                }
            }
        }
    }
    let mut payload_sources: HashMap<u32, u64> = HashMap::new();
    for (key, _) in &agg.payload_sources {
        *payload_sources.entry(*key).or_default() += 1;
    }
    let mut out: Vec<PortRow> = per
        .into_iter()
        .map(|((class, port), (sources, scanners, orgs))| {
            let mut orgs: Vec<(&str, u64)> = orgs.into_iter().collect();
            orgs.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
            PortRow {
                proto: if class == 1 { "tcp" } else { "udp" },
                port,
                packets: agg.port_packets[usize::from(class - 1) * 65536 + usize::from(port)],
                sources,
                scanners,
                top_orgs: orgs.into_iter().take(5).map(|o| o.0.to_string()).collect(),
                sessions: agg.port_sessions[usize::from(class - 1) * 65536 + usize::from(port)],
                payload_sources: payload_sources
                    .get(&(u32::from(class) << 16 | u32::from(port)))
                    .copied()
                    .unwrap_or(0),
            }
        })
        .collect();
    out.sort_by(|a, b| a.proto.cmp(b.proto).then(a.port.cmp(&b.port)));
    out
}

/// `dos_daily` rows: every backscatter source, with the attack rule applied.
pub fn dos_rows(agg: &DayAgg, cfg: &RollupConfig) -> Vec<DosRow> {
    let mut out: Vec<DosRow> = agg
        .dos
        .iter()
        .map(|(addr, d)| {
            let mut buckets: Vec<(i64, u64)> = d.buckets.iter().map(|(k, v)| (*k, *v)).collect();
            let mut targets = d.targets.clone();
            targets.sort_unstable();
            targets.dedup();
            buckets.sort_unstable();
            let attacks = classify::attacks(&cfg.dos, &buckets);
            DosRow {
                victim: agg.addrs.name(*addr).to_string(),
                first_seen: d.first,
                last_seen: d.last,
                packets: d.packets,
                bytes: d.bytes,
                peak_ppm: classify::peak_per_minute(&buckets),
                dst_hosts: targets.len() as u64,
                sensor_count: d.sensors.len() as u32,
                kinds: bits(u64::from(d.kinds), &Kind::ALL),
                attacks,
                is_attack: attacks > 0,
            }
        })
        .collect();
    out.sort_by(|a, b| b.packets.cmp(&a.packets).then(a.victim.cmp(&b.victim)));
    out
}

/// `series_daily`: 48 rows, one per 30 minutes, of probe packets, distinct sources, distinct
/// ports and distinct scanners.
pub fn series_rows(agg: &DayAgg, rows: &[IpRow]) -> Vec<SeriesRow> {
    let mut sources = [0u64; SERIES_BUCKETS];
    let mut scanners = [0u64; SERIES_BUCKETS];
    for (s, r) in agg.ips.iter().zip(rows) {
        for (b, n) in sources.iter_mut().enumerate() {
            if s.buckets & (1 << b) != 0 {
                *n += 1;
                if r.is_scanner {
                    scanners[b] += 1;
                }
            }
        }
    }
    let mut ports = [0u64; SERIES_BUCKETS];
    for m in &agg.port_buckets {
        if *m != 0 {
            for (b, n) in ports.iter_mut().enumerate() {
                if m & (1 << b) != 0 {
                    *n += 1;
                }
            }
        }
    }
    (0..SERIES_BUCKETS)
        .map(|b| SeriesRow {
            bucket_start: agg.day_start_us + b as i64 * 1_800_000_000,
            packets: agg.series_packets[b],
            sources: sources[b],
            ports: ports[b],
            scanners: scanners[b],
        })
        .collect()
}
