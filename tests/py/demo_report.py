"""The demo's last step: what was scanned, per source and tool, straight from the lake.

usage: python3 demo_report.py LAKE_DIR
"""
import sys

import duckdb

lake = sys.argv[1]
con = duckdb.connect()
con.execute(
    f"CREATE VIEW flows AS SELECT * FROM read_parquet('{lake}/flows/*/*.parquet', hive_partitioning = true)"
)
con.execute(
    f"CREATE VIEW events AS SELECT * FROM read_parquet('{lake}/events/*/*.parquet', hive_partitioning = true)"
)
print("-- per source (DuckDB over the Parquet lake)")
con.sql(
    """
    WITH f AS (
        SELECT src_ip, string_agg(DISTINCT kind, ',' ORDER BY kind) AS kinds,
               sum(packets) AS packets, count(DISTINCT dst_port) AS ports,
               min(dst_port) AS min_port, max(dst_port) AS max_port
        FROM flows WHERE kind <> 'icmp_other' GROUP BY src_ip),
    t AS (
        SELECT src_ip, string_agg(DISTINCT tool, ',' ORDER BY tool) AS tools
        FROM (SELECT src_ip, unnest(tools) AS tool FROM events) GROUP BY src_ip)
    SELECT f.src_ip, kinds, packets, ports, min_port, max_port, coalesce(tools, '') AS tools
    FROM f LEFT JOIN t USING (src_ip) ORDER BY packets DESC, src_ip
    """
).show(max_width=200)
print("-- per tool")
con.sql(
    """
    SELECT tool, count(DISTINCT src_ip) AS sources, sum(weight) AS packets
    FROM (SELECT src_ip, weight, unnest(tools) AS tool FROM events)
    GROUP BY tool ORDER BY packets DESC
    """
).show()
