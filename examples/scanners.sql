-- DuckDB: the day's scanner questions straight from the lake.
-- Run:  sed -e "s|\${LAKE}|/var/lib/scanscope|g" -e "s|\${DATE}|2026-11-22|g" examples/scanners.sql | duckdb
-- (examples/run_duckdb.py does the same from Python and prints JSON.)

-- 1. Distinct sources and scanners (rollup table ip_daily).
SELECT count(*) AS sources, count(*) FILTER (WHERE is_scanner) AS scanners
FROM read_parquet('${LAKE}/ip_daily/*/*.parquet', hive_partitioning = true)
WHERE date = DATE '${DATE}';

-- 2. Scanners per organisation.
SELECT org, count(*) AS scanners
FROM read_parquet('${LAKE}/ip_daily/*/*.parquet', hive_partitioning = true)
WHERE date = DATE '${DATE}' AND is_scanner AND org IS NOT NULL
GROUP BY org ORDER BY scanners DESC, org;

-- 3. Top ports by distinct sources, from the raw flows (probe kinds only, backscatter is out).
SELECT proto, dst_port AS port, count(DISTINCT src_ip) AS sources
FROM read_parquet('${LAKE}/flows/*/*.parquet', hive_partitioning = true)
WHERE date = DATE '${DATE}'
  AND kind IN ('tcp_syn', 'tcp_fin', 'tcp_null', 'tcp_xmas', 'tcp_ack', 'tcp_other', 'udp')
GROUP BY proto, dst_port ORDER BY sources DESC, proto, port LIMIT 5;
