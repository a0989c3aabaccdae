#!/usr/bin/env python3
"""ClickHouse (embedded, chdb): the day's scanner questions straight from the lake
(same answers as scanners.sql).

usage: chdb_scanners.py LAKE DATE
"""
import json
import sys

import chdb

from lake_paths import clickhouse

lake, date = sys.argv[1], sys.argv[2]


def rows(sql):
    out = chdb.query(sql, "JSONCompact")
    return json.loads(out.bytes() or b'{"data": []}')["data"]


# The hive `date=` directory names the day; ClickHouse filters on the path.
ip = clickhouse(lake, "ip_daily", date)
flows = clickhouse(lake, "flows", date)
(sources, scanners), = rows(f"SELECT count(), countIf(is_scanner) FROM {ip}")
orgs = {o: int(n) for o, n in rows(
    f"SELECT org, count() AS n FROM {ip} WHERE is_scanner AND org IS NOT NULL "
    f"GROUP BY org ORDER BY n DESC, org")}
top = rows(
    f"SELECT proto, dst_port, uniqExact(src_ip) AS sources FROM {flows} "
    f"WHERE kind IN ('tcp_syn','tcp_fin','tcp_null','tcp_xmas','tcp_ack','tcp_other','udp') "
    f"GROUP BY proto, dst_port ORDER BY sources DESC, proto, dst_port LIMIT 5")
print(json.dumps({
    "sources": int(sources),
    "scanners": int(scanners),
    "orgs": orgs,
    "top_ports": [[p, int(port), int(n)] for p, port, n in top],
}))
