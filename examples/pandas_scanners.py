#!/usr/bin/env python3
"""pandas: the day's scanner questions straight from the lake (same answers as scanners.sql).

usage: pandas_scanners.py LAKE DATE
"""
import json
import sys

import pandas as pd

from lake_paths import table

lake, date = sys.argv[1], sys.argv[2]

ip = pd.read_parquet(table(lake, "ip_daily"), filters=[("date", "==", date)])
scanners = ip[ip["is_scanner"]]
orgs = scanners.dropna(subset=["org"]).groupby("org").size()
orgs = {o: int(n) for o, n in sorted(orgs.items(), key=lambda x: (-x[1], x[0]))}

flows = pd.read_parquet(table(lake, "flows"), columns=["src_ip", "proto", "kind", "dst_port", "date"],
                        filters=[("date", "==", date)])
probes = flows[flows["kind"].isin(
    ["tcp_syn", "tcp_fin", "tcp_null", "tcp_xmas", "tcp_ack", "tcp_other", "udp"])]
top = (probes.groupby(["proto", "dst_port"])["src_ip"].nunique().rename("sources").reset_index()
       .sort_values(["sources", "proto", "dst_port"], ascending=[False, True, True]).head(5))
print(json.dumps({
    "sources": int(len(ip)),
    "scanners": int(len(scanners)),
    "orgs": orgs,
    "top_ports": [[r.proto, int(r.dst_port), int(r.sources)] for r in top.itertuples()],
}))
