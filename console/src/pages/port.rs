//! One port's page: sources, scanners and packets per day (`port_daily`), and over the sources
//! that probed it (`ip_daily`): the top organisations and tools, the other ports they probe
//! (co-occurrence), and example sources.
use scanscope_lake::tables::{
    ip_daily::{IpColumns, IpRow},
    port_daily::{PortColumns, PortRow},
};
use serde_json::json;

use super::{Ctx, date, matched, top, top_sources};
use crate::{
    col::{Num, Ports, Text},
    error::ConsoleError,
    view::{ColumnKind as K, Range, Table, View},
};

const IP: IpColumns = IpRow::COL;
const PORT: PortColumns = PortRow::COL;

/// Rows of each top list.
pub const TOP: usize = 20;

/// `tcp` or `udp`, as `port_daily` names them.
pub fn proto(s: &str) -> Result<&'static str, ConsoleError> {
    match s.to_ascii_lowercase().as_str() {
        "tcp" => Ok("tcp"),
        "udp" => Ok("udp"),
        _ => Err(ConsoleError::param(
            "proto",
            format!("{s:?} is not tcp or udp"),
        )),
    }
}

/// The page of `proto`/`port` over `range`.
pub fn build(
    ctx: &Ctx,
    range: Range,
    proto: &'static str,
    port: u16,
) -> Result<View, ConsoleError> {
    let mut v = ctx.view(range);
    let mut daily = Table::new(&[
        ("date", K::Date),
        ("packets", K::Number),
        ("sources", K::Number),
        ("scanners", K::Number),
        ("sessions", K::Number),
        ("payload_sources", K::Number),
    ]);
    for d in ctx.catalog.rollups(PortRow::TABLE, range.from, range.to)? {
        let b = &d.all()?;
        let pr = Text::of(b, PORT.proto);
        let p = Num::of(b, PORT.port);
        if let Some(i) = (0..b.num_rows())
            .find(|i| pr.get(*i) == Some(proto) && p.get(*i) == Some(u64::from(port)))
        {
            daily.push(vec![
                date(d.date),
                json!(Num::of(b, PORT.packets).or0(i)),
                json!(Num::of(b, PORT.sources).or0(i)),
                json!(Num::of(b, PORT.scanners).or0(i)),
                json!(Num::of(b, PORT.sessions).or0(i)),
                json!(Num::of(b, PORT.payload_sources).or0(i)),
            ]);
        }
    }
    v.tables.insert("daily", daily);

    let col = if proto == "tcp" {
        IP.tcp_ports
    } else {
        IP.udp_ports
    };
    let days = ctx.catalog.rollups(IpRow::TABLE, range.from, range.to)?;
    let found = matched(&days, &[], |b| {
        Ports::of(b, col).any_within(b.num_rows(), &[(port, 0)])
    })?;
    let c = found.counts();
    v.summary.insert("proto".into(), json!(proto));
    v.summary.insert("port".into(), json!(port));
    v.summary.insert("sources".into(), json!(found.len()));
    v.summary.insert("scanners".into(), json!(c.scanners));
    v.summary
        .insert("packets_of_its_sources".into(), json!(c.packets));
    let orgs = top(c.org, TOP);
    let tools = top(c.tool, TOP);
    let related = top(c.ports.iter().filter(|(p, _)| *p != (proto, port)), TOP);
    let mut t = Table::new(&[("org", K::Org), ("sources", K::Number)]);
    for (o, n) in orgs {
        t.push(vec![json!(o), json!(n)]);
    }
    v.tables.insert("orgs", t);
    let mut t = Table::new(&[("tool", K::Text), ("sources", K::Number)]);
    for (o, n) in tools {
        t.push(vec![json!(o), json!(n)]);
    }
    v.tables.insert("tools", t);
    let mut t = Table::new(&[
        ("proto", K::Text),
        ("port", K::Port),
        ("sources", K::Number),
        ("share", K::Number),
    ]);
    for ((pr, p), n) in related {
        let share = if found.is_empty() {
            0.0
        } else {
            n as f64 / found.len() as f64
        };
        t.push(vec![
            json!(pr),
            json!(p),
            json!(n),
            json!((share * 1000.0).round() / 1000.0),
        ]);
    }
    v.tables.insert("related_ports", t);
    v.tables.insert("sources", top_sources(&found, TOP));
    Ok(v)
}
