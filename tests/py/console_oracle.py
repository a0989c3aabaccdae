#!/usr/bin/env python3
"""Every figure the console's API returns for a lake equals the same figure computed by DuckDB
straight from the lake's Parquet files (an independent reader and engine).

  console_oracle.py BASE LAKE FROM TO

Compares: sources, scanners, wide scanners, malicious and packets per day; sources per
organisation per day; the breadth and ports-per-source distributions; the top ports; search
counts and port facets of several queries; each port page's sources, scanners and co-occurring
ports; organisation pages (IPs and new IPs per day); IP pages (days, packets); the sensors page
(packets per sensor and kind, losses, agent version and spool backlog). Prints one JSON line; exits non-zero on a difference.
"""
import json
import sys
import urllib.request
from urllib.parse import quote

import duckdb

BASE, LAKE, FROM, TO = sys.argv[1:5]
RANGE = f"from={FROM}&to={TO}"
checked = {}


def api(path):
    sep = "&" if "?" in path else "?"
    with urllib.request.urlopen(f"{BASE}/api/v1/{path}{sep}{RANGE}", timeout=120) as r:
        return json.loads(r.read())


def fail(msg):
    print(f"FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def same(what, got, want):
    if got != want:
        fail(f"{what}:\n  api    {got}\n  duckdb {want}")
    checked[what] = checked.get(what, 0) + 1


db = duckdb.connect()
db.execute(f"""CREATE VIEW ip AS SELECT * FROM read_parquet('{LAKE}/ip_daily/*/*.parquet', hive_partitioning = true)
               WHERE date BETWEEN DATE '{FROM}' AND DATE '{TO}'""")
db.execute(f"""CREATE VIEW port AS SELECT * FROM read_parquet('{LAKE}/port_daily/*/*.parquet', hive_partitioning = true)
               WHERE date BETWEEN DATE '{FROM}' AND DATE '{TO}'""")
db.execute(f"""CREATE VIEW stats AS SELECT * FROM read_parquet('{LAKE}/sensor_stats/*/*.parquet', hive_partitioning = true)
               WHERE date BETWEEN DATE '{FROM}' AND DATE '{TO}'""")
# A lake without losses has no `lost` files.
try:
    db.execute(f"""CREATE VIEW lost AS SELECT * FROM read_parquet('{LAKE}/lost/*/*.parquet', hive_partitioning = true)
                   WHERE date BETWEEN DATE '{FROM}' AND DATE '{TO}'""")
except duckdb.IOException:
    db.execute("CREATE VIEW lost AS SELECT ''::VARCHAR sensor, ''::VARCHAR stage, ''::VARCHAR unit, 0::BIGINT count WHERE false")
# The console's class rule (docs/api.md): benign with an organisation; malicious with an
# exploit/payload tag or a login attempt; else unknown.
MALICIOUS = """(org IS NULL AND (coalesce(login_attempts, 0) + coalesce(mysql_login_attempts, 0) > 0
                OR len(list_filter(tags, lambda t: t LIKE 'exploit:%' OR t LIKE 'payload:%')) > 0))"""


def rows(sql):
    return [tuple(r) for r in db.execute(sql).fetchall()]


# ---- overview
ov = api("overview")
same("overview daily",
     [(r["date"], r["sources"], r["scanners"], r["wide_scanners"], r["malicious"], r["packets"]) for r in ov["tables"]["daily"]["rows"]],
     [(str(d), n, s, w, m, p) for d, n, s, w, m, p in rows(f"""
        SELECT date, count(*), count(*) FILTER (is_scanner), count(*) FILTER (list_contains(tags, 'wide_scanner')),
               count(*) FILTER ({MALICIOUS}), sum(packets)::BIGINT
        FROM ip GROUP BY date ORDER BY date""")])
orgs_api = {(r["date"], r["org"]): r["sources"] for r in ov["tables"]["orgs_daily"]["rows"]}
org_names = sorted({o for _, o in orgs_api})
db_orgs = {(str(d), o): n for d, o, n in rows("SELECT date, org, count(*) FROM ip WHERE org IS NOT NULL GROUP BY ALL")}
top_orgs = [o for o, _ in rows("SELECT org, count(*) n FROM ip WHERE org IS NOT NULL GROUP BY org ORDER BY n DESC, org LIMIT 10")]
same("overview organisations", org_names, sorted(top_orgs))
same("overview sources per organisation per day", orgs_api,
     {(d, o): db_orgs.get((d, o), 0) for d, o in orgs_api})
buckets = "CASE WHEN scan_breadth >= 90 THEN '90-100' ELSE (scan_breadth // 10 * 10)::VARCHAR || '-' || (scan_breadth // 10 * 10 + 9)::VARCHAR END"
want = {b: (n, s) for b, n, s in rows(f"SELECT {buckets}, count(*), count(*) FILTER (is_scanner) FROM ip GROUP BY 1")}
same("breadth distribution",
     {r["bucket"]: (r["source_days"], r["scanner_days"]) for r in ov["tables"]["breadth"]["rows"] if r["source_days"]},
     want)
pc = """CASE WHEN port_count = 1 THEN '1' WHEN port_count < 10 THEN '2-9' WHEN port_count < 100 THEN '10-99'
             WHEN port_count < 1000 THEN '100-999' WHEN port_count < 10000 THEN '1000-9999' ELSE '10000-131072' END"""
same("ports-per-source distribution",
     {r["bucket"]: (r["source_days"], r["scanner_days"]) for r in ov["tables"]["ports_per_source"]["rows"] if r["source_days"]},
     {b: (n, s) for b, n, s in rows(f"SELECT {pc}, count(*), count(*) FILTER (is_scanner) FROM ip WHERE port_count > 0 GROUP BY 1")})
# Top ports: packets and source-days summed from port_daily; distinct sources and scanners (a
# scanner on a day it probed the port) over the range from ip_daily's port lists.
db.execute("""CREATE VIEW ip_port AS
    SELECT src_ip, is_scanner, 'tcp' proto, unnest(tcp_ports) port FROM ip UNION ALL
    SELECT src_ip, is_scanner, 'udp', unnest(udp_ports) FROM ip""")
distinct = {(pr, p): (n, s) for pr, p, n, s in rows(
    "SELECT proto, port, count(DISTINCT src_ip), count(DISTINCT src_ip) FILTER (is_scanner) FROM ip_port GROUP BY ALL")}
ports_db = {(pr, p): (pk, *distinct.get((pr, p), (0, 0)), sd)
            for pr, p, pk, sd in rows("SELECT proto, port, sum(packets)::BIGINT, sum(sources)::BIGINT FROM port GROUP BY ALL")}
for key, (n, s) in distinct.items():
    ports_db.setdefault(key, (0, n, s, 0))
same("overview distinct sources and scanners", (ov["summary"]["sources"], ov["summary"]["scanners"]),
     rows("SELECT count(DISTINCT src_ip), count(DISTINCT src_ip) FILTER (is_scanner) FROM ip")[0])
for name, k in [("top_ports_by_packets", 0), ("top_ports_by_sources", 1)]:
    got = ov["tables"][name]["rows"]
    same(f"{name} figures", [(r["packets"], r["sources"], r["scanners"], r["source_days"]) for r in got],
         [ports_db[(r["proto"], r["port"])] for r in got])
    same(f"{name} order", [(r["packets"], r["sources"])[k] for r in got],
         sorted((v[k] for v in ports_db.values()), reverse=True)[:len(got)])

# ---- search: counts and port facets
def distinct_ips(where):
    return rows(f"SELECT count(DISTINCT src_ip) FROM ip WHERE {where}")[0][0]


def port_facet(where):
    return rows(f"""
        WITH m AS (SELECT src_ip, tcp_ports, udp_ports FROM ip WHERE {where}),
        p AS (SELECT src_ip, 'tcp' proto, unnest(tcp_ports) port FROM m UNION ALL
              SELECT src_ip, 'udp', unnest(udp_ports) FROM m)
        SELECT proto, port, count(DISTINCT src_ip) n FROM p GROUP BY ALL ORDER BY n DESC, proto, port LIMIT 10""")


for q, where in [
    ("port:80", "list_contains(ports, 80)"),
    ("scanner:true", "is_scanner"),
    ("-scanner:true", "NOT is_scanner"),
    ("tag:wide_scanner", "list_contains(tags, 'wide_scanner')"),
    ("port:80 -scanner:true", "list_contains(ports, 80) AND NOT is_scanner"),
    ("breadth:>=7", "scan_breadth >= 7"),
    ("kind:tcp_syn_ack", "list_contains(kinds, 'tcp_syn_ack')"),
    ("org:censys OR org:shadowserver", "org IN ('censys', 'shadowserver')"),
    ("ip:203.0.113.0/24", "src_ip LIKE '203.0.113.%'"),
]:
    v = api(f"search?q={quote(q)}&limit=1000")
    same(f"search {q}: sources", v["summary"]["sources"], distinct_ips(where))
    same(f"search {q}: port facet", [(r["proto"], r["port"], r["sources"]) for r in v["tables"]["facet_port"]["rows"]],
         port_facet(where))
    same(f"search {q}: packets per source",
         {r["ip"]: r["packets"] for r in v["tables"]["sources"]["rows"]},
         {ip: pk for ip, pk in rows(f"SELECT src_ip, sum(packets)::BIGINT FROM ip WHERE {where} GROUP BY src_ip")})

# ---- port pages: sources, scanners, co-occurring ports
for proto, p in rows("SELECT proto, port FROM port GROUP BY ALL ORDER BY sum(sources) DESC, port LIMIT 6"):
    col = "tcp_ports" if proto == "tcp" else "udp_ports"
    v = api(f"port/{proto}/{p}")
    where = f"list_contains({col}, {p})"
    same(f"port {proto}/{p}: sources", v["summary"]["sources"], distinct_ips(where))
    same(f"port {proto}/{p}: scanners", v["summary"]["scanners"],
         rows(f"SELECT count(DISTINCT src_ip) FROM ip WHERE {where} AND is_scanner")[0][0])
    same(f"port {proto}/{p}: daily", [(r["date"], r["packets"], r["sources"]) for r in v["tables"]["daily"]["rows"]],
         [(str(d), pk, s) for d, pk, s in rows(f"SELECT date, packets, sources FROM port WHERE proto = '{proto}' AND port = {p} ORDER BY date")])
    related = rows(f"""
        WITH m AS (SELECT src_ip, tcp_ports, udp_ports FROM ip WHERE {where}),
        o AS (SELECT src_ip, 'tcp' proto, unnest(tcp_ports) port FROM m UNION ALL SELECT src_ip, 'udp', unnest(udp_ports) FROM m)
        SELECT proto, port, count(DISTINCT src_ip) n FROM o WHERE NOT (proto = '{proto}' AND port = {p})
        GROUP BY ALL ORDER BY n DESC, proto, port LIMIT 20""")
    same(f"port {proto}/{p}: co-occurring ports", [(r["proto"], r["port"], r["sources"]) for r in v["tables"]["related_ports"]["rows"]], related)

# ---- organisation pages
for (org,) in rows("SELECT DISTINCT org FROM ip WHERE org IS NOT NULL ORDER BY org"):
    v = api(f"org/{quote(org)}")
    want = rows(f"""
        WITH d AS (SELECT DISTINCT date FROM ip),
        o AS (SELECT date, src_ip, min(date) OVER (PARTITION BY src_ip) first FROM ip WHERE org = '{org}')
        SELECT d.date, count(o.src_ip), count(o.src_ip) FILTER (o.first = d.date)
        FROM d LEFT JOIN o USING (date) GROUP BY d.date ORDER BY d.date""")
    same(f"org {org}: daily", [(r["date"], r["ips"], r["new_ips"]) for r in v["tables"]["daily"]["rows"]],
         [(str(d), n, new) for d, n, new in want])

# ---- IP pages of the scanners
for ip, days, pk in rows("SELECT src_ip, count(*), sum(packets)::BIGINT FROM ip WHERE is_scanner GROUP BY src_ip ORDER BY src_ip"):
    v = api(f"ip/{ip}")
    same(f"ip {ip}: days and packets", (v["summary"]["days"], v["summary"]["packets"]), (days, pk))

# ---- sensors
v = api("sensors")
same("sensors: packets per sensor and kind",
     {(r["sensor"], r["kind"]): r["packets"] for r in v["tables"]["kinds"]["rows"]},
     {(s, k): n for s, k, n in rows("SELECT sensor, kind, sum(value)::BIGINT FROM stats WHERE counter = 'packets' AND port IS NULL GROUP BY ALL")})
lost_db = {(s, st, u): n for s, st, u, n in rows("SELECT sensor, stage, unit, sum(count)::BIGINT FROM lost GROUP BY ALL")}
same("sensors: losses", {(r["sensor"], r["stage"], r["unit"]): r["count"] for r in v["tables"]["losses"]["rows"]}, lost_db)
newest = {s: (ver, spool, pending) for s, ver, spool, pending in rows(
    """SELECT sensor, arg_max(agent_version, interval_start) FILTER (agent_version IS NOT NULL),
              arg_max(value, interval_start) FILTER (counter = 'uplink_spool_bytes'),
              arg_max(value, interval_start) FILTER (counter = 'uplink_pending_batches')
       FROM stats GROUP BY sensor""")}
if any(ver is None or spool is None for ver, spool, _ in newest.values()):
    fail(f"sensors: every agent of the lab reports its version and spool backlog: {newest}")
same("sensors: agent version and spool backlog (newest interval)",
     {r["sensor"]: (r["agent_version"], r["spool_bytes"], r["pending_batches"]) for r in v["tables"]["sensors"]["rows"]},
     newest)

print(json.dumps({"comparisons": sum(checked.values()), "groups": len(checked)}))
