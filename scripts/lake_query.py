#!/usr/bin/env python3
"""Reads the lake as an analyst would: DuckDB over the curated Parquet files, with the
Hive partitions (dt, hour) read from the paths.

    .venv/bin/python scripts/lake_query.py DIR

DIR holds a copy of the lake bucket's objects (DIR/curated/events/dt=.../hour=.../
events.parquet, as `make demo` leaves in out/lake). Prints one JSON document: the
files and rows read, and per tenant and campaign the counts the rollups also keep.

`connect(DIR)` gives a DuckDB connection with the view `events`, typed as the Glue
table is (dt string, hour int), for other scripts and tests.
"""

from __future__ import annotations

import glob
import json
import os
import sys

# Per campaign: the rollups' counters, from the raw events.
CAMPAIGN_COUNTS = """
SELECT
  tenant_id,
  campaign_id,
  count_if(event_type = 'message.sent') AS sent,
  count_if(event_type = 'message.delivered') AS delivered,
  count_if(event_type = 'message.bounced' AND bounce_type = 'hard') AS bounced_hard,
  count_if(event_type = 'message.bounced' AND bounce_type = 'soft') AS bounced_soft,
  count_if(event_type = 'message.failed') AS failed,
  count_if(event_type = 'message.complained') AS complained,
  count_if(event_type = 'message.unsubscribed') AS unsubscribed,
  count_if(event_type = 'message.opened') AS opens,
  count_if(event_type = 'link.clicked') AS clicks,
  count_if(event_type = 'message.opened' AND NOT machine) AS opens_human,
  count_if(event_type = 'message.opened' AND machine) AS opens_machine,
  count_if(event_type = 'link.clicked' AND NOT machine) AS clicks_human,
  count_if(event_type = 'link.clicked' AND machine) AS clicks_bot,
  count_if(event_type = 'conversion') AS conversions,
  count(DISTINCT CASE WHEN event_type = 'message.opened' AND NOT machine THEN recipient_id END) AS unique_opens,
  count(DISTINCT CASE WHEN event_type = 'link.clicked' AND NOT machine THEN recipient_id END) AS unique_clicks,
  count(*) AS events,
  count(DISTINCT event_id) AS distinct_event_ids
FROM events
WHERE campaign_id IS NOT NULL
GROUP BY tenant_id, campaign_id
ORDER BY tenant_id, campaign_id
"""


def files(lake_dir: str, prefix: str = "curated/events") -> list[str]:
    return sorted(glob.glob(os.path.join(lake_dir, prefix, "dt=*", "hour=*", "*.parquet")))


def connect(lake_dir: str):
    import duckdb

    con = duckdb.connect()
    found = files(lake_dir)
    if not found:
        raise SystemExit(f"no Parquet files under {lake_dir}/curated/events/")
    pattern = os.path.join(lake_dir, "curated", "events", "*", "*", "*.parquet").replace("'", "''")
    con.execute(
        f"CREATE VIEW events AS SELECT * FROM read_parquet('{pattern}', hive_partitioning = true, "
        "hive_types = {'dt': VARCHAR, 'hour': INTEGER})"
    )
    return con


def rows(con, sql: str) -> list[dict]:
    cursor = con.execute(sql)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, r)) for r in cursor.fetchall()]


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    con = connect(argv[0])
    total = con.execute("SELECT count(*), count(DISTINCT (tenant_id, event_id)) FROM events").fetchone()
    result = {
        "engine": "duckdb " + con.execute("SELECT version()").fetchone()[0],
        "files": len(files(argv[0])),
        "rows": total[0],
        "distinct_events": total[1],
        "campaigns": rows(con, CAMPAIGN_COUNTS),
    }
    json.dump(result, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
