#!/usr/bin/env python3
"""moto's server (what `moto_server` runs), with DynamoDB transactions that back up only
the items they touch, and Queries that read only the partition they name.
scripts/moto.sh starts this instead of `moto_server`.

Why: moto 5.2.5's `DynamoDBBackend.transact_write_items` deep-copies every table named by
an action, once per action, before it applies anything (its rollback backup). A local
pipeline writing a transaction per batch to a table of thousands of items makes every
transaction slow and the server's memory grow by gigabytes within minutes.

The patch: the function's own source, with three hunks replaced (the whole-table backup,
and the two rollbacks that swap the tables back), compiled again in moto's module
namespace. The new backup deep-copies, before anything is applied, the current version of
each item an action writes (Put, Update, Delete: the key each of them writes, computed the
way moto computes it), or notes that it is absent; a rollback puts those copies back and
removes the items that were absent, so a cancelled transaction leaves every item exactly
as it was, including items it created. DynamoDB stream records the cancelled actions
appended are dropped again too (unless a Lambda mapping already consumed them).

Invariants the patch relies on, checked at start (the server refuses to start otherwise,
with a message saying so): moto is 5.2.5, the function's source is byte-for-byte the
one this patch was written against (sha256 below), and each hunk matches exactly where
expected. Set BEACON_MOTO_UNPATCHED=1 to run moto as it is (for comparisons).

Queries: moto 5.2.5's `Table.query` gathers a main-table Query's candidates from
`self.all_items()`, which lists and sorts every item of the table, then keeps those of the
named partition: each Query costs time in proportion to the whole table (about 9 µs per
item on the project's machine), where DynamoDB reads only the partition. The patch takes
the candidates from the partition's own bucket (`self.items[hash_key]`, where moto keeps
them), then sorts and filters them exactly as before, so every answer is the same (the
tests compare both servers). A Query of an index still looks at every item (moto keeps
no index), but no longer sorts the whole table first: its candidates are sorted by the
index's keys and then the table's right after, a total order, so the table order they
arrive in never shows. Same checks: the method's source must be byte-for-byte the one
below (sha256), each hunk found once.

Either way the server answers `GET /moto-api/beacon/transactions` with counters:
{"patched": bool, "transactions": n, "items_copied": n, "keys_backed_up": n,
 "rollbacks": n, "partition_queries": n}. `items_copied` is how many items the backups deep-copied: patched, one
per existing item an action writes; unpatched, every item of the named table per action.

Usage: scripts/moto_server.py [moto_server's arguments, e.g. -H 127.0.0.1 -p 5000]
"""

from __future__ import annotations

import copy
import hashlib
import inspect
import json
import os
import re
import sys
import textwrap
import threading
from typing import Any, Callable

MOTO_VERSION = "5.2.5"
# sha256 of inspect.getsource(DynamoDBBackend.transact_write_items) in moto 5.2.5.
SOURCE_SHA256 = "81db2cb7d94e39c90b3a2077e1f4bb41a449c558ef9b1b1e2910fdaa39978ad4"
STATS_PATH = "/moto-api/beacon/transactions"
UNPATCHED_ENV = "BEACON_MOTO_UNPATCHED"

# sha256 of inspect.getsource(Table.query) in moto 5.2.5.
QUERY_SOURCE_SHA256 = "002b4d00be6df07cf37f6cbe0132e5eb89455ae12a8e79b23db3fb492450f21e"
# A main-table Query's candidates: every item of the table, kept if in the partition.
QUERY_HUNK = """\
            possible_results = [
                item
                for item in self.all_items()
                if isinstance(item, Item) and item.hash_key == hash_key
            ]
"""
QUERY_REPLACEMENT = """\
            # Beacon: the partition's own items (scripts/moto_server.py).
            possible_results = _beacon_partition_items(self, hash_key)
"""
# An index Query's candidates: every item of the table, listed sorted by the table's
# keys although the Query sorts them by the index's keys next (with the table's keys
# after them, a total order): the same items unsorted give the same answer.
INDEX_HUNK = """\
            for item in self.all_items():
"""
INDEX_REPLACEMENT = """\
            for item in _beacon_unsorted_items(self):
"""

# The whole-table backup, replaced by a backup of the touched items.
BACKUP_HUNK = """\
        # Create a backup in case any of the transactions fail
        original_table_state: dict[str, Table] = {}
        for item in transact_items:
            _, op = next(iter(item.items()))
            table_name = op.get("TableName")
            if table_name and table_name in self.tables:
                original_table_state[table_name] = copy.deepcopy(
                    self.tables[table_name]
                )
"""
BACKUP_REPLACEMENT = """\
        # Beacon: back up only the items the actions write (scripts/moto_server.py).
        touched_items_backup = _beacon_backup_touched_items(self, transact_items)
"""
# Both rollbacks swap the backed-up tables in; they put the backed-up items back instead.
ROLLBACK_HUNK = re.compile(
    r"^(?P<indent> +)for table_name in original_table_state:\n"
    r"(?P=indent)    self\.tables\[table_name\] = original_table_state\[table_name\]\n",
    re.MULTILINE,
)
ROLLBACK_REPLACEMENT = r"\g<indent>_beacon_restore_touched_items(touched_items_backup)\n"
ROLLBACKS = 2


class PatchDoesNotApply(RuntimeError):
    pass


class Stats:
    """The counters behind STATS_PATH; moto serves requests on many threads."""

    def __init__(self, patched: bool) -> None:
        self.patched = patched
        self._lock = threading.Lock()
        self._counts = {"transactions": 0, "items_copied": 0, "keys_backed_up": 0, "rollbacks": 0,
                        "partition_queries": 0}

    def add(self, **counts: int) -> None:
        with self._lock:
            for name, n in counts.items():
                self._counts[name] += n

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {"patched": self.patched, **self._counts}


class ItemBackup:
    """What a transaction's actions will write, as it was before the first one ran."""

    def __init__(self) -> None:
        # (table, hash key, range key or None, had a bucket for the hash key, the item
        # as it was, deep-copied, or None when absent)
        self.items: list[tuple[Any, Any, Any, bool, Any]] = []
        # (stream shard, its record list, the list's length) per table with a stream
        self.streams: list[tuple[Any, list, int]] = []


def written_key(backend: Any, action: dict[str, Any]) -> tuple[Any, Any, Any] | None:
    """(table, hash key, range key) of the item `action` writes, exactly as moto's
    transact_write_items finds it (`get_keys_value` on the Put item's key attributes or
    on the action's Key), or None if the action writes nothing. An action whose key moto
    cannot read fails before it writes anything, so it needs no backup either."""
    try:
        op_type, op = next(iter(action.items()))
        if op_type not in ("Put", "Update", "Delete"):
            return None
        table = backend.tables.get(op.get("TableName"))
        if table is None:
            return None
        if op_type == "Put":
            attrs = op["Item"]
            key = {table.hash_key_attr: attrs[table.hash_key_attr]}
            if table.range_key_attr is not None:
                key[table.range_key_attr] = attrs[table.range_key_attr]
        else:
            key = op["Key"]
        hash_key, range_key = backend.get_keys_value(table, key)
        return table, hash_key, range_key
    except Exception:  # noqa: BLE001 - moto raises its own error for this action later
        return None


def backup_touched_items(backend: Any, transact_items: list[dict[str, Any]], stats: Stats) -> ItemBackup:
    backup = ItemBackup()
    seen: set[tuple[int, Any, Any]] = set()
    copied = 0
    for action in transact_items:
        found = written_key(backend, action)
        if found is None:
            continue
        table, hash_key, range_key = found
        if (id(table), hash_key, range_key) in seen:
            continue  # moto refuses two actions on one item; the first backup is the one
        seen.add((id(table), hash_key, range_key))
        # Table.get_item would add an empty bucket to the defaultdict; look without it.
        bucket = table.items.get(hash_key)
        if table.range_key_attr is None:
            current = bucket
        else:
            current = None if bucket is None else bucket.get(range_key)
        if current is not None:
            current = copy.deepcopy(current)  # Update changes the stored Item in place
            copied += 1
        backup.items.append((table, hash_key, range_key, bucket is not None, current))
        shard = table.stream_shard
        if shard is not None and all(s is not shard for s, _, _ in backup.streams):
            backup.streams.append((shard, shard.items, len(shard.items)))
    stats.add(transactions=1, items_copied=copied, keys_backed_up=len(backup.items))
    return backup


def restore_touched_items(backup: ItemBackup, stats: Stats) -> None:
    for table, hash_key, range_key, had_bucket, item in reversed(backup.items):
        if table.range_key_attr is None:
            if item is None:
                table.items.pop(hash_key, None)
            else:
                table.items[hash_key] = item
            continue
        if item is None:
            bucket = table.items.get(hash_key)
            if bucket is not None:
                bucket.pop(range_key, None)
                if not bucket and not had_bucket:
                    del table.items[hash_key]
        else:
            table.items[hash_key][range_key] = item
    for shard, records, length in backup.streams:
        # A Lambda mapping that consumed the records replaced the list: nothing to drop.
        if shard.items is records:
            del records[length:]
    stats.add(rollbacks=1)


def function_source(backend_class: Any) -> str:
    try:
        function = backend_class.transact_write_items
    except AttributeError:
        raise PatchDoesNotApply("DynamoDBBackend has no transact_write_items any more") from None
    try:
        return inspect.getsource(function)
    except (OSError, TypeError) as err:
        raise PatchDoesNotApply(f"the source of transact_write_items cannot be read ({err})") from None


def patched_source(source: str) -> str:
    """The method's source (as indented in its class) with the three hunks replaced,
    dedented to compile on its own; PatchDoesNotApply unless each hunk is found exactly
    where expected and nothing of the whole-table backup is left."""
    digest = hashlib.sha256(source.encode()).hexdigest()
    if digest != SOURCE_SHA256:
        raise PatchDoesNotApply(
            f"DynamoDBBackend.transact_write_items is not the moto {MOTO_VERSION} code this patch "
            f"was written against (source sha256 {digest}, expected {SOURCE_SHA256})")
    if source.count(BACKUP_HUNK) != 1:
        raise PatchDoesNotApply("the whole-table backup in transact_write_items was not found once")
    patched = source.replace(BACKUP_HUNK, BACKUP_REPLACEMENT)
    patched, rollbacks = ROLLBACK_HUNK.subn(ROLLBACK_REPLACEMENT, patched)
    if rollbacks != ROLLBACKS:
        raise PatchDoesNotApply(
            f"expected {ROLLBACKS} whole-table rollbacks in transact_write_items, found {rollbacks}")
    for leftover in ("original_table_state", "copy.deepcopy"):
        if leftover in patched:
            raise PatchDoesNotApply(f"`{leftover}` is still used in the patched transact_write_items")
    return textwrap.dedent(patched)


def partition_items(table: Any, hash_key: Any, stats: Stats) -> list[Any]:
    """The items of one partition, in no order (the Query sorts them next): moto keeps a
    hash+range table's items as {hash key: {range key: item}} and a hash-only table's as
    {hash key: item}. `.get`, so an unknown key adds no empty bucket to the defaultdict."""
    from moto.dynamodb.models.dynamo_type import Item

    stats.add(partition_queries=1)
    bucket = table.items.get(hash_key)
    if bucket is None:
        return []
    found = list(bucket.values()) if table.range_key_attr else [bucket]
    return [item for item in found if isinstance(item, Item)]


def unsorted_items(table: Any) -> list[Any]:
    """Every item of the table, as Table.all_items lists them but without its sort."""
    if table.range_key_attr:
        return [item for bucket in table.items.values() for item in bucket.values()]
    return list(table.items.values())


def patched_query_source(source: str) -> str:
    """Table.query's source with the candidates hunk replaced, dedented; PatchDoesNotApply
    unless the source is the one this was written against and the hunk is found once."""
    digest = hashlib.sha256(source.encode()).hexdigest()
    if digest != QUERY_SOURCE_SHA256:
        raise PatchDoesNotApply(
            f"Table.query is not the moto {MOTO_VERSION} code this patch was written against "
            f"(source sha256 {digest}, expected {QUERY_SOURCE_SHA256})")
    if source.count(QUERY_HUNK) != 1:
        raise PatchDoesNotApply("the main-table candidates in Table.query were not found once")
    if source.count(INDEX_HUNK) != 1:
        raise PatchDoesNotApply("the index candidates in Table.query were not found once")
    patched = source.replace(QUERY_HUNK, QUERY_REPLACEMENT).replace(INDEX_HUNK, INDEX_REPLACEMENT)
    return textwrap.dedent(patched)


def patch_query(stats: Stats) -> None:
    """Replaces Table.query with the one that reads the named partition only."""
    import moto.dynamodb.models.table as tables

    try:
        source = inspect.getsource(tables.Table.query)
    except (AttributeError, OSError, TypeError) as err:
        raise PatchDoesNotApply(f"the source of Table.query cannot be read ({err})") from None
    namespace = dict(vars(tables))
    namespace["_beacon_partition_items"] = lambda table, hash_key: partition_items(table, hash_key, stats)
    namespace["_beacon_unsorted_items"] = unsorted_items
    exec(compile(patched_query_source(source), f"<patched {tables.__file__}>", "exec"), namespace)  # noqa: S102
    tables.Table.query = namespace["query"]


def check_version(version: str) -> None:
    if version != MOTO_VERSION:
        raise PatchDoesNotApply(
            f"moto {version} is installed; this patch is for moto {MOTO_VERSION} "
            "(requirements-dev.txt pins it: run scripts/venv.sh)")


def patch(stats: Stats) -> None:
    """Replaces DynamoDBBackend.transact_write_items with the patched one."""
    import moto
    import moto.dynamodb.models as models

    check_version(moto.__version__)
    source = patched_source(function_source(models.DynamoDBBackend))
    namespace = dict(vars(models))
    namespace["_beacon_backup_touched_items"] = lambda backend, items: backup_touched_items(backend, items, stats)
    namespace["_beacon_restore_touched_items"] = lambda backup: restore_touched_items(backup, stats)
    exec(compile(source, f"<patched {models.__file__}>", "exec"), namespace)  # noqa: S102
    models.DynamoDBBackend.transact_write_items = namespace["transact_write_items"]
    patch_query(stats)


def count_unpatched(stats: Stats) -> None:
    """Unpatched, counts what moto's own backup copies: every item of each named table,
    once per action naming it."""
    import moto.dynamodb.models as models

    original: Callable[..., None] = models.DynamoDBBackend.transact_write_items

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        copied = 0
        for action in transact_items:
            try:
                _, op = next(iter(action.items()))
                table = self.tables.get(op.get("TableName"))
            except Exception:  # noqa: BLE001 - moto reports it
                table = None
            if table is not None:
                copied += len(table)
        stats.add(transactions=1, items_copied=copied)
        original(self, transact_items)

    models.DynamoDBBackend.transact_write_items = transact_write_items


def serve_stats(stats: Stats) -> None:
    from moto.moto_api._internal import urls

    def beacon_transactions(request: Any, full_url: str, headers: Any) -> tuple[int, dict[str, str], str]:
        return 200, {"Content-Type": "application/json"}, json.dumps(stats.snapshot())

    urls.url_paths["{0}" + STATS_PATH] = beacon_transactions


def main() -> int:
    unpatched = os.environ.get(UNPATCHED_ENV, "") not in ("", "0")
    stats = Stats(patched=not unpatched)
    try:
        if unpatched:
            count_unpatched(stats)
            print(f"moto_server.py: {UNPATCHED_ENV} is set: DynamoDB transactions copy whole tables, "
                  "and Queries walk every item",
                  file=sys.stderr)
        else:
            patch(stats)
    except PatchDoesNotApply as err:
        print(f"moto_server.py: ERROR: cannot patch moto's DynamoDB transactions and Queries: {err}.\n"
              f"Update the patch in {__file__} for this moto, or set {UNPATCHED_ENV}=1 to run "
              "moto unpatched (its transactions then copy whole tables: slow and memory-hungry).",
              file=sys.stderr)
        return 1
    serve_stats(stats)
    from moto.server import main as moto_server_main

    moto_server_main(sys.argv[1:])
    return 0


if __name__ == "__main__":
    sys.exit(main())
