//! Tor exit nodes: per exit node and day (the rollup's `tor_exit` sources), the flows,
//! packets and bytes it sent (NetFlow rows scaled by their sampling rate), its destinations
//! and ports, and the sensors and exporters that saw it.
use scanscope_lake::tables::ip_daily::{IpColumns, IpRow};
use serde_json::json;

use super::{Ctx, date, per_day};
use crate::{
    col::{Flag, Num, Ports, Text, TextList},
    error::ConsoleError,
    view::{ColumnKind as K, Range, Table, View},
};

const IP: IpColumns = IpRow::COL;

/// Ports listed per row.
pub const PORTS_LISTED: usize = 20;

/// The Tor page's view.
pub fn build(ctx: &Ctx, range: Range) -> Result<View, ConsoleError> {
    let mut v = ctx.view(range);
    let days = ctx.catalog.rollups(IpRow::TABLE, range.from, range.to)?;
    let cols = [
        IP.src_ip,
        IP.tor_exit,
        IP.flows,
        IP.packets,
        IP.bytes,
        IP.dst_hosts,
        IP.tcp_ports,
        IP.udp_ports,
        IP.sensors,
    ];
    let per = per_day(&days, |d| -> Result<_, ConsoleError> {
        let mut rows = Vec::new();
        d.each_batch(&cols, |b| {
            let exit = Flag::of(b, IP.tor_exit);
            let src = Text::of(b, IP.src_ip);
            let [flows, packets, bytes, dsts] =
                [IP.flows, IP.packets, IP.bytes, IP.dst_hosts].map(|c| Num::of(b, c));
            let (tcp, udp) = (Ports::of(b, IP.tcp_ports), Ports::of(b, IP.udp_ports));
            let sensors = TextList::of(b, IP.sensors);
            for i in (0..b.num_rows()).filter(|i| exit.get(*i) == Some(true)) {
                let ports: Vec<String> = tcp
                    .get(i)
                    .iter()
                    .map(|p| format!("tcp/{p}"))
                    .chain(udp.get(i).iter().map(|p| format!("udp/{p}")))
                    .collect();
                rows.push(vec![
                    date(d.date),
                    json!(src.get(i)),
                    json!(flows.get(i)),
                    json!(packets.or0(i)),
                    json!(bytes.or0(i)),
                    json!(dsts.or0(i)),
                    json!(ports.len()),
                    json!(ports.iter().take(PORTS_LISTED).collect::<Vec<_>>()),
                    json!(sensors.get(i).collect::<Vec<_>>()),
                ]);
            }
            Ok(())
        })?;
        Ok(rows)
    });
    let mut t = Table::new(&[
        ("date", K::Date),
        ("exit_node", K::Ip),
        ("flows", K::Number),
        ("packets", K::Number),
        ("bytes", K::Number),
        ("destinations", K::Number),
        ("ports", K::Number),
        ("port_list", K::List),
        ("sensors", K::List),
    ]);
    let mut nodes = std::collections::BTreeSet::new();
    for rows in per {
        for r in rows? {
            nodes.insert(r[1].to_string());
            t.push(r);
        }
    }
    v.summary.insert("exit_nodes".into(), json!(nodes.len()));
    v.tables.insert("tor", t);
    Ok(v)
}
