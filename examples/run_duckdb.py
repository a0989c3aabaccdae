#!/usr/bin/env python3
"""Runs examples/scanners.sql with DuckDB on a lake and prints the answers as JSON.

usage: run_duckdb.py LAKE DATE
"""
import json
import pathlib
import sys

import duckdb

lake, date = sys.argv[1], sys.argv[2]
# scanners.sql names the tables as ${LAKE}/<table>/*/*.parquet (lake_paths.day_files).
sql = (pathlib.Path(__file__).with_name("scanners.sql").read_text()
       .replace("${LAKE}", lake.rstrip("/")).replace("${DATE}", date))
statements = [s for s in sql.split(";") if s.strip() and not all(
    l.strip().startswith("--") or not l.strip() for l in s.splitlines())]
con = duckdb.connect()
(sources, scanners), = con.execute(statements[0]).fetchall()
orgs = {o: n for o, n in con.execute(statements[1]).fetchall()}
top = [[p, int(port), n] for p, port, n in con.execute(statements[2]).fetchall()]
print(json.dumps({"sources": sources, "scanners": scanners, "orgs": orgs, "top_ports": top}))
