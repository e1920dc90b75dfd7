"""The Parquet lake as analysts' tools see it: the demo (the session's `demo` fixture)
builds a lake in the emulator (ETL consumer, compaction) and copies the curated objects
to DIR/lake; pyarrow and
DuckDB read them back, and the template's named queries are parsed as Trino SQL and
run with DuckDB on that lake, where their numbers must match the rollups'."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "infra" / "template.yaml"


def load_template() -> dict:
    from cfnlint.decode import decode

    template, matches = decode(str(TEMPLATE))
    assert not matches, matches
    return json.loads(json.dumps(template))


def lake_query():
    spec = importlib.util.spec_from_file_location("lake_query", ROOT / "scripts" / "lake_query.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def named_queries() -> dict[str, str]:
    resources = load_template()["Resources"]
    return {
        r["Properties"]["Name"]: r["Properties"]["QueryString"]
        for r in resources.values()
        if r["Type"] == "AWS::Athena::NamedQuery"
    }


@pytest.fixture(scope="module")
def files(demo) -> list[str]:
    found = lake_query().files(str(demo / "lake"))
    assert found, "the demo left no curated Parquet"
    return found


def test_pyarrow_reads_the_types_athena_needs(files):
    import pyarrow as pa
    import pyarrow.parquet as pq

    for path in files:
        schema = pq.read_schema(path)
        assert schema.field("event_time").type == pa.timestamp("ms", tz="UTC")
        assert schema.field("received_at").type == pa.timestamp("ms", tz="UTC")
        for field in schema:
            assert not pa.types.is_unsigned_integer(field.type), field
            assert field.name == field.name.lower() and " " not in field.name
        keys = schema.field("property_keys").type
        assert pa.types.is_list(keys) and keys.value_field.name == "element"
        parquet_schema = pq.ParquetFile(path).schema
        assert "property_keys.list.element" in [c.path for c in parquet_schema]
        metadata = pq.ParquetFile(path).metadata
        assert metadata.num_rows > 0
        for g in range(metadata.num_row_groups):
            for c in range(metadata.num_columns):
                column = metadata.row_group(g).column(c)
                assert column.compression == "ZSTD", column
                assert column.is_stats_set, column.path_in_schema
        # Hive layout: dt=YYYY-MM-DD/hour=HH/events.parquet, one object per hour.
        parts = Path(path).parts
        assert parts[-3].startswith("dt=") and parts[-2].startswith("hour=") and len(parts[-2]) == 7
        assert parts[-1] == "events.parquet"
        table = pq.read_table(path)
        hours = {t.hour for t in table.column("event_time").to_pylist()}
        assert hours == {int(parts[-2][5:])}, "an event outside its hour's partition"


def test_the_glue_tables_describe_the_files(files):
    import pyarrow as pa
    import pyarrow.parquet as pq

    glue = {
        pa.string(): "string", pa.float64(): "double", pa.int64(): "bigint", pa.bool_(): "boolean",
        pa.timestamp("ms", tz="UTC"): "timestamp",
    }
    schema = pq.read_schema(files[0])
    expected = [
        (f.name, "array<string>" if pa.types.is_list(f.type) else glue[f.type]) for f in schema
    ]
    resources = load_template()["Resources"]
    for name in ("EventsTable", "EventsStagingTable"):
        table = resources[name]["Properties"]["TableInput"]
        columns = [(c["Name"], c["Type"]) for c in table["StorageDescriptor"]["Columns"]]
        assert columns == expected, name
        assert [p["Name"] for p in table["PartitionKeys"]] == ["dt", "hour"]
        params = table["Parameters"]
        assert params["projection.enabled"] == "true"
        assert params["projection.dt.type"] == "date" and params["projection.hour.type"] == "integer"
        assert params["projection.hour.digits"] == "2"


def test_duckdb_counts_match_the_rollups(demo, summary, files):
    assert summary["matches"] is True
    assert summary["lake_counts"]["events"] == summary["lake_counts"]["distinct_event_ids"]
    # The totals agree; the human and machine columns may not (the lake keeps each
    # request's own verdict, the rollups also the trail's late ones).
    assert set(summary["rollup_totals"]) >= {"sent", "delivered", "opens", "clicks", "conversions"}
    for name, value in summary["rollup_totals"].items():
        assert summary["lake_counts"][name] == value, name
    assert summary["lake"]["staging_left"] == 0
    con = lake_query().connect(str(demo / "lake"))
    types = dict(con.execute("SELECT column_name, column_type FROM (DESCRIBE events)").fetchall())
    assert types["event_time"] == "TIMESTAMP WITH TIME ZONE"
    assert types["dt"] == "VARCHAR" and types["hour"] == "INTEGER"
    total, distinct = con.execute("SELECT count(*), count(DISTINCT event_id) FROM events").fetchone()
    assert total == distinct == summary["lake"]["duckdb"]["rows"]
    # Every event of the stream is in the lake: the demo's campaign and the webhook one
    # (its stream holds nothing else).
    assert total == summary["senders"]["stream_events"]
    assert total > sum(summary["stream_counts"].values())


def test_named_queries_parse_as_trino():
    import sqlglot
    from sqlglot.errors import ParseError

    queries = named_queries()
    assert set(queries) == {
        "opens and clicks per campaign per day", "human vs machine opens", "top links", "bounce reasons",
    }
    for name, sql in queries.items():
        tree = sqlglot.parse_one(sql, read="trino")
        assert tree.find(sqlglot.exp.Table).name == "events", name
    # The check can fail: a typo is a parse error.
    with pytest.raises(ParseError):
        sqlglot.parse_one(queries["top links"].replace("GROUP BY", "GROUP BYY", 1), read="trino")


def test_named_queries_answer_like_the_rollups(demo, summary):
    import sqlglot

    con = lake_query().connect(str(demo / "lake"))
    results = {}
    for name, sql in named_queries().items():
        duck = sqlglot.transpile(sql, read="trino", write="duckdb")[0]
        cursor = con.execute(duck)
        names = [d[0] for d in cursor.description]
        results[name] = [dict(zip(names, r)) for r in cursor.fetchall()]
    stats, campaign = summary["stats"], summary["campaign"]
    # The lake's human and machine columns are each request's own verdict: the named
    # queries answer as the lake's reference counts do; their totals as the rollups do.
    lake = summary["lake_counts"]
    mine = lambda rows: [r for r in rows if r["campaign_id"] == campaign]  # noqa: E731

    per_day = mine(results["opens and clicks per campaign per day"])
    assert sum(r["opens_human"] for r in per_day) == lake["opens_human"]
    assert sum(r["clicks_human"] for r in per_day) == lake["clicks_human"]
    assert sum(r["opens_human"] + r["opens_machine"] for r in per_day) == stats["opens_human"] + stats["opens_machine"]
    assert sum(r["clicks_human"] + r["clicks_bot"] for r in per_day) == stats["clicks_human"] + stats["clicks_bot"]
    if len(per_day) == 1:  # one day: the day's unique openers are the campaign's
        assert per_day[0]["unique_human_openers"] == lake["unique_opens"]
        assert per_day[0]["unique_human_clickers"] == lake["unique_clicks"]

    opens = mine(results["human vs machine opens"])
    assert sum(r["opens"] for r in opens if r["opened_by"] == "human") == lake["opens_human"]
    assert sum(r["opens"] for r in opens) == stats["opens_human"] + stats["opens_machine"]

    links = mine(results["top links"])
    assert sum(r["clicks_human"] for r in links) == lake["clicks_human"]
    assert links == sorted(links, key=lambda r: -r["clicks_human"])

    bounces = mine(results["bounce reasons"])
    assert sum(r["bounces"] for r in bounces) == stats["bounced_hard"] + stats["bounced_soft"]
    assert {r["bounce_type"] for r in bounces} <= {"hard", "soft"}
