"""Reads a scanscope lake with DuckDB and with pandas/pyarrow, exactly as a user would, and
prints a JSON summary the end-to-end tests assert on.

usage: python3 check_lake.py LAKE_DIR
"""
import json
import sys

import duckdb
import pandas as pd
import pyarrow.dataset as ds

lake = sys.argv[1]
tables = ["flows", "events", "sensor_stats", "lost"]
out = {"duckdb": {}, "pandas": {}, "pyarrow": {}}
con = duckdb.connect()
for t in tables:
    src = f"read_parquet('{lake}/{t}/*/*.parquet', hive_partitioning = true)"
    try:
        cols = con.execute(f"DESCRIBE SELECT * FROM {src}").fetchall()
        rows = con.execute(f"SELECT count(*) FROM {src}").fetchone()[0]
    except duckdb.IOException:
        continue  # no file for this table (e.g. nothing lost)
    out["duckdb"][t] = {"columns": {c[0]: c[1] for c in cols}, "rows": rows}
    df = pd.read_parquet(f"{lake}/{t}")  # pyarrow engine, hive partitions
    out["pandas"][t] = {"columns": {c: str(df[c].dtype) for c in df.columns}, "rows": len(df)}
    dset = ds.dataset(f"{lake}/{t}", format="parquet", partitioning="hive")
    out["pyarrow"][t] = {f.name: str(f.type) for f in dset.schema}

flows = f"read_parquet('{lake}/flows/*/*.parquet', hive_partitioning = true)"
out["flows_by_src_kind"] = con.execute(
    f"SELECT src_ip, kind, sum(packets)::BIGINT, count(DISTINCT dst_port)::BIGINT "
    f"FROM {flows} GROUP BY ALL ORDER BY ALL"
).fetchall()
out["flow_ports"] = con.execute(
    f"SELECT src_ip, kind, list(DISTINCT dst_port ORDER BY dst_port) FROM {flows} "
    f"WHERE kind IN ('tcp_syn', 'udp') GROUP BY ALL ORDER BY ALL"
).fetchall()
stats = f"read_parquet('{lake}/sensor_stats/*/*.parquet', hive_partitioning = true)"
out["stats_packets_by_kind"] = dict(
    con.execute(
        f"SELECT kind, sum(value)::BIGINT FROM {stats} WHERE counter = 'packets' GROUP BY kind"
    ).fetchall()
)
out["tools_by_src"] = con.execute(
    f"SELECT src_ip, list(DISTINCT t ORDER BY t) FROM (SELECT src_ip, unnest(tools) AS t FROM "
    f"read_parquet('{lake}/events/*/*.parquet', hive_partitioning = true)) GROUP BY ALL ORDER BY ALL"
).fetchall()
print(json.dumps(out, default=str))
