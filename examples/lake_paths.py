"""Where the lake's tables are, for the examples: the layout of docs/lake.md in one place.

LAKE is a directory or an object-store URL (`s3://bucket/lake`); the layout is the same:
`LAKE/<table>/date=YYYY-MM-DD/*.parquet`.
"""


def table(lake, name):
    """The table's root (a hive-partitioned dataset for pandas / pyarrow)."""
    return f"{lake.rstrip('/')}/{name}"


def day_files(lake, name, date=None):
    """A glob of the table's files for one day (every day when `date` is None)."""
    part = f"date={date}" if date else "*"
    return f"{table(lake, name)}/{part}/*.parquet"


def clickhouse(lake, name, date=None):
    """A ClickHouse table function reading the table's files: file() on disk, s3() for URLs."""
    glob = day_files(lake, name, date)
    if "://" in lake and not lake.startswith("file://"):
        return f"s3('{glob}', 'Parquet')"
    return f"file('{glob.removeprefix('file://')}', Parquet)"
