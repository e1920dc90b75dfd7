"""scripts/moto_server.py: moto with DynamoDB transactions that back up only the items they
touch, and Queries that read only their partition. Each rollback test runs against the
patched server and against moto unpatched (BEACON_MOTO_UNPATCHED=1), and the Query test
compares the two servers' answers, so they also show the patches keep moto's own
semantics."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import urllib.request
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError

from conftest import free_port, wait_until_answering

ROOT = Path(__file__).resolve().parents[2]
LAUNCHER = ROOT / "scripts" / "moto_server.py"


def load_launcher():
    spec = importlib.util.spec_from_file_location("beacon_moto_server", LAUNCHER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Server:
    def __init__(self, venv_bin: Path, log: Path, unpatched: bool):
        env = {k: v for k, v in os.environ.items() if k != "BEACON_MOTO_UNPATCHED"}
        if unpatched:
            env["BEACON_MOTO_UNPATCHED"] = "1"
        for _ in range(3):  # the free port can be taken before moto binds it
            self.endpoint = f"http://127.0.0.1:{free_port()}"
            with open(log, "w") as out:
                self.proc = subprocess.Popen(
                    [str(venv_bin / "python"), str(LAUNCHER), "-H", "127.0.0.1", "-p", self.endpoint.rsplit(":", 1)[1]],
                    env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
            try:
                wait_until_answering(self.endpoint, self.proc, log)
                break
            except RuntimeError:
                self.stop()
                if "in use" not in log.read_text():
                    raise
        self.dynamodb = boto3.client("dynamodb", endpoint_url=self.endpoint, region_name="us-east-1")
        self.streams = boto3.client("dynamodbstreams", endpoint_url=self.endpoint, region_name="us-east-1")

    def stats(self) -> dict:
        with urllib.request.urlopen(self.endpoint + "/moto-api/beacon/transactions", timeout=10) as r:
            return json.load(r)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="module", params=["patched", "unpatched"])
def server(request, venv_bin, tmp_path_factory):
    unpatched = request.param == "unpatched"
    s = Server(venv_bin, tmp_path_factory.mktemp("moto") / "moto.log", unpatched)
    assert s.stats()["patched"] is not unpatched
    yield s
    s.stop()


@pytest.fixture(scope="module")
def patched(venv_bin, tmp_path_factory):
    s = Server(venv_bin, tmp_path_factory.mktemp("moto") / "moto.log", unpatched=False)
    yield s
    s.stop()


@pytest.fixture(scope="module")
def unpatched(venv_bin, tmp_path_factory):
    s = Server(venv_bin, tmp_path_factory.mktemp("moto") / "moto.log", unpatched=True)
    yield s
    s.stop()


def s(v: str) -> dict:
    return {"S": v}


def n(v: int) -> dict:
    return {"N": str(v)}


def make_tables(d, prefix: str, stream: bool = False) -> tuple[str, str]:
    """A hash-key table and a hash+range table, with a few items each."""
    one, two = f"{prefix}-one", f"{prefix}-two"
    extra = {"StreamSpecification": {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}} if stream else {}
    d.create_table(TableName=one, BillingMode="PAY_PER_REQUEST",
                   KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                   AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}], **extra)
    d.create_table(TableName=two, BillingMode="PAY_PER_REQUEST",
                   KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
                   AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                         {"AttributeName": "sk", "AttributeType": "S"}])
    for key in ("counted", "replaced", "deleted", "untouched"):
        d.put_item(TableName=one, Item={"pk": s(key), "n": n(1), "tags": {"SS": ["a", "b"]}})
    for sk in ("counted", "deleted"):
        d.put_item(TableName=two, Item={"pk": s("p"), "sk": s(sk), "n": n(1), "m": {"M": {"x": n(1)}}})
    return one, two


def every_item(d, *tables: str) -> dict[str, list]:
    def key(item):
        return json.dumps(item, sort_keys=True)
    return {t: sorted(d.scan(TableName=t, ConsistentRead=True)["Items"], key=key) for t in tables}


def actions(one: str, two: str, last_condition: str) -> list[dict]:
    """Every kind of write the project's transactions make, on existing and new items,
    in both tables; the last action's condition is `last_condition`."""
    add = {"UpdateExpression": "ADD n :one SET m.x = :one", "ExpressionAttributeValues": {":one": n(1)}}
    return [
        {"Update": {"TableName": one, "Key": {"pk": s("counted")}, "UpdateExpression": "ADD n :one DELETE tags :a",
                    "ExpressionAttributeValues": {":one": n(1), ":a": {"SS": ["a"]}}}},
        {"Put": {"TableName": one, "Item": {"pk": s("replaced"), "other": s("new")}}},
        {"Delete": {"TableName": one, "Key": {"pk": s("deleted")}}},
        {"Put": {"TableName": one, "Item": {"pk": s("created"), "n": n(5)}, "ConditionExpression": "attribute_not_exists(pk)"}},
        {"Update": {"TableName": one, "Key": {"pk": s("created-by-update")}, "UpdateExpression": "ADD n :one",
                    "ExpressionAttributeValues": {":one": n(1)}}},
        {"Update": {"TableName": two, "Key": {"pk": s("p"), "sk": s("counted")}, **add}},
        {"Delete": {"TableName": two, "Key": {"pk": s("p"), "sk": s("deleted")}}},
        # A new item in an existing partition and one in a new partition.
        {"Put": {"TableName": two, "Item": {"pk": s("p"), "sk": s("created"), "n": n(1)}}},
        {"Update": {"TableName": two, "Key": {"pk": s("fresh"), "sk": s("created")},
                    "UpdateExpression": "SET v = :v", "ExpressionAttributeValues": {":v": s("x")}}},
        {"ConditionCheck": {"TableName": one, "Key": {"pk": s("untouched")}, "ConditionExpression": last_condition,
                            "ExpressionAttributeValues": {":one": n(1)}}},
    ]


def stream_records(server: Server, table: str) -> int:
    arn = server.dynamodb.describe_table(TableName=table)["Table"]["LatestStreamArn"]
    shard = server.streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    it = server.streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")
    return len(server.streams.get_records(ShardIterator=it["ShardIterator"])["Records"])


def test_a_failing_last_condition_leaves_every_item_as_it_was(server):
    d = server.dynamodb
    one, two = make_tables(d, "cancelled", stream=True)
    before = every_item(d, one, two)
    records_before = stream_records(server, one)
    rollbacks = server.stats()["rollbacks"]

    with pytest.raises(ClientError) as raised:
        d.transact_write_items(TransactItems=actions(one, two, last_condition="n = :one AND attribute_not_exists(n)"))

    assert raised.value.response["Error"]["Code"] == "TransactionCanceledException"
    reasons = [r["Code"] for r in raised.value.response["CancellationReasons"]]
    assert reasons == ["None"] * 9 + ["ConditionalCheckFailed"], reasons
    assert every_item(d, one, two) == before
    assert stream_records(server, one) == records_before, "the cancelled writes left stream records"
    # Nothing reads back from the partition the cancelled Update created.
    assert d.query(TableName=two, KeyConditionExpression="pk = :p",
                   ExpressionAttributeValues={":p": s("fresh")})["Count"] == 0
    if server.stats()["patched"]:
        assert server.stats()["rollbacks"] == rollbacks + 1


def test_a_successful_transaction_applies_every_action(server):
    d = server.dynamodb
    one, two = make_tables(d, "applied")

    d.transact_write_items(TransactItems=actions(one, two, last_condition="n = :one"))

    after = every_item(d, one, two)
    assert after[one] == sorted([
        {"pk": s("counted"), "n": n(2), "tags": {"SS": ["b"]}},
        {"pk": s("replaced"), "other": s("new")},
        {"pk": s("created"), "n": n(5)},
        {"pk": s("created-by-update"), "n": n(1)},
        {"pk": s("untouched"), "n": n(1), "tags": {"SS": ["a", "b"]}},
    ], key=lambda i: json.dumps(i, sort_keys=True))
    assert after[two] == sorted([
        {"pk": s("p"), "sk": s("counted"), "n": n(2), "m": {"M": {"x": n(1)}}},
        {"pk": s("p"), "sk": s("created"), "n": n(1)},
        {"pk": s("fresh"), "sk": s("created"), "v": s("x")},
    ], key=lambda i: json.dumps(i, sort_keys=True))


def test_two_actions_on_one_item_roll_back_what_ran_before(server):
    # moto's other rollback: a validation error raised part-way through the actions.
    d = server.dynamodb
    one, two = make_tables(d, "twice")
    before = every_item(d, one, two)

    with pytest.raises(ClientError) as raised:
        d.transact_write_items(TransactItems=[
            {"Put": {"TableName": one, "Item": {"pk": s("created")}}},
            {"Update": {"TableName": one, "Key": {"pk": s("counted")}, "UpdateExpression": "ADD n :one",
                        "ExpressionAttributeValues": {":one": n(1)}}},
            {"Delete": {"TableName": one, "Key": {"pk": s("counted")}}},
        ])

    assert raised.value.response["Error"]["Code"] == "ValidationException"
    assert every_item(d, one, two) == before


def test_the_backup_copies_only_the_items_the_actions_write(patched, unpatched):
    copied = {}
    for server in (patched, unpatched):
        d = server.dynamodb
        one, _ = make_tables(d, "big")
        with BatchPut(d, one) as put:
            for i in range(496):
                put({"pk": s(f"filler-{i}"), "n": n(i)})
        assert d.scan(TableName=one, Select="COUNT")["Count"] == 500
        start = server.stats()
        d.transact_write_items(TransactItems=actions(one, one + "-missing", "n = :one")[:4])
        end = server.stats()
        assert end["transactions"] == start["transactions"] + 1
        copied[server] = end["items_copied"] - start["items_copied"]
        if server is patched:
            assert end["keys_backed_up"] - start["keys_backed_up"] == 4
    # Patched: the three existing items the actions write (the fourth is new).
    assert copied[patched] == 3
    # Unpatched, moto copies the whole 500-item table once per action.
    assert copied[unpatched] == 4 * 500


class BatchPut:
    def __init__(self, d, table: str):
        self.d, self.table, self.pending = d, table, []

    def __enter__(self):
        return self.put

    def put(self, item: dict) -> None:
        self.pending.append({"PutRequest": {"Item": item}})
        if len(self.pending) == 25:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            self.d.batch_write_item(RequestItems={self.table: self.pending})
            self.pending = []

    def __exit__(self, *exc):
        self.flush()


def test_queries_answer_as_unpatched_moto_does_reading_only_their_partition(patched, unpatched):
    """Every shape of Query the project makes (key conditions, both orders, Limit and
    paging, projections, an unknown partition, a hash-only table) gets the same answer
    from both servers; the patched one counts them as partition reads."""
    def load(d):
        d.create_table(TableName="q-two", BillingMode="PAY_PER_REQUEST",
                       KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
                       AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                             {"AttributeName": "sk", "AttributeType": "S"}])
        d.create_table(TableName="q-one", BillingMode="PAY_PER_REQUEST",
                       KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                       AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}])
        with BatchPut(d, "q-two") as put:
            for p in range(20):
                for i in range(30):
                    put({"pk": s(f"p{p:02}"), "sk": s(f"D#2026-11-{i + 1:02}"), "n": n(p * 100 + i), "x": s("y" * i)})
        d.put_item(TableName="q-one", Item={"pk": s("only"), "n": n(1)})
        # An index like the trails' by recipient: some items in it, most not.
        d.create_table(TableName="q-index", BillingMode="PAY_PER_REQUEST",
                       KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
                       AttributeDefinitions=[{"AttributeName": a, "AttributeType": t} for a, t in
                                             (("pk", "S"), ("sk", "S"), ("g", "S"), ("gt", "N"))],
                       GlobalSecondaryIndexes=[{"IndexName": "by-g", "Projection": {"ProjectionType": "KEYS_ONLY"},
                                                "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"},
                                                              {"AttributeName": "gt", "KeyType": "RANGE"}]}])
        with BatchPut(d, "q-index") as put:
            for i in range(200):
                item = {"pk": s(f"M#{i:03}"), "sk": s("trail"), "body": s("x" * (i % 7))}
                if i % 3:
                    item.update({"g": s(f"t#r{i % 5}"), "gt": n(1000 - (i * 37) % 101)})
                put(item)

    def page_through(d, **kwargs):
        items, start = [], None
        while True:
            extra = {"ExclusiveStartKey": start} if start else {}
            out = d.query(**kwargs, **extra)
            items += out["Items"]
            start = out.get("LastEvaluatedKey")
            if not start:
                return items

    between = {"KeyConditionExpression": "pk = :p AND sk BETWEEN :a AND :b",
               "ExpressionAttributeValues": {":p": s("p07"), ":a": s("D#2026-11-05"), ":b": s("D#2026-11-20")}}
    queries = [
        {"TableName": "q-two", "KeyConditionExpression": "pk = :p", "ExpressionAttributeValues": {":p": s("p03")}},
        {"TableName": "q-two", **between},
        {"TableName": "q-two", **between, "ScanIndexForward": False, "Limit": 4},
        {"TableName": "q-two", "KeyConditionExpression": "pk = :p AND begins_with(sk, :d)",
         "ExpressionAttributeValues": {":p": s("p19"), ":d": s("D#2026-11-1")}, "ProjectionExpression": "sk, n"},
        {"TableName": "q-two", "KeyConditionExpression": "pk = :p", "ExpressionAttributeValues": {":p": s("nobody")}},
        {"TableName": "q-one", "KeyConditionExpression": "pk = :p", "ExpressionAttributeValues": {":p": s("only")}},
        {"TableName": "q-index", "IndexName": "by-g", "KeyConditionExpression": "g = :g",
         "ExpressionAttributeValues": {":g": s("t#r2")}, "ScanIndexForward": False, "Limit": 10},
        {"TableName": "q-index", "IndexName": "by-g", "KeyConditionExpression": "g = :g AND gt > :t",
         "ExpressionAttributeValues": {":g": s("t#r4"), ":t": n(950)}},
    ]
    answers = {}
    for server in (patched, unpatched):
        d = server.dynamodb
        load(d)
        start = server.stats()
        answers[server] = [d.query(**q) for q in queries]
        answers[server].append(page_through(d, TableName="q-two", Limit=7, **between))
        for a in answers[server][:-1]:
            a.pop("ResponseMetadata")
        if server is patched:
            assert server.stats()["partition_queries"] - start["partition_queries"] >= len(queries)
        # Asking for an unknown partition created nothing.
        assert d.scan(TableName="q-two", Select="COUNT")["Count"] == 600
    assert answers[patched] == answers[unpatched]
    assert len(answers[patched][1]["Items"]) == 16 and answers[patched][2]["Count"] == 4
    assert [i["sk"]["S"] for i in answers[patched][2]["Items"]][0] == "D#2026-11-20"
    assert len(answers[patched][-1]) == 16
    index_answer = answers[patched][6]
    assert index_answer["Count"] == 10 and set(index_answer["Items"][0]) == {"pk", "sk", "g", "gt"}
    times = [int(i["gt"]["N"]) for i in index_answer["Items"]]
    assert times == sorted(times, reverse=True)
    assert answers[patched][7]["Count"] > 0


def test_the_query_patch_refuses_code_it_was_not_written_for():
    launcher = load_launcher()
    import inspect

    import moto.dynamodb.models.table as tables

    source = inspect.getsource(tables.Table.query)
    assert launcher.patched_query_source(source).startswith("def query(")
    assert "_beacon_partition_items" in launcher.patched_query_source(source)
    with pytest.raises(launcher.PatchDoesNotApply, match="not the moto 5.2.5 code"):
        launcher.patched_query_source(source.replace("self.all_items()", "list(self.all_items())"))


def test_the_patch_refuses_code_it_was_not_written_for():
    launcher = load_launcher()
    import moto.dynamodb.models as models

    source = launcher.function_source(models.DynamoDBBackend)
    assert launcher.patched_source(source).startswith("def transact_write_items(")
    for changed in (
        source.replace("copy.deepcopy(", "copy.copy("),
        source.replace("for table_name in original_table_state:", "for table_name in list(original_table_state):"),
        source + "\n",
    ):
        with pytest.raises(launcher.PatchDoesNotApply, match="not the moto 5.2.5 code"):
            launcher.patched_source(changed)
    with pytest.raises(launcher.PatchDoesNotApply, match="moto 5.3.0 is installed; this patch is for moto 5.2.5"):
        launcher.check_version("5.3.0")


@pytest.mark.parametrize("tamper, message", [
    ("moto.__version__ = '5.3.0'", "moto 5.3.0 is installed"),
    ("import moto.dynamodb.models as m; m.DynamoDBBackend.transact_write_items = lambda self, items: None",
     "cannot be read"),
])
def test_the_server_does_not_start_when_the_patch_does_not_apply(venv_bin, tamper, message):
    script = f"import moto, runpy; {tamper}; runpy.run_path({str(LAUNCHER)!r}, run_name='__main__')"
    done = subprocess.run([str(venv_bin / "python"), "-c", script, "-p", str(free_port())],
                          env={k: v for k, v in os.environ.items() if k != "BEACON_MOTO_UNPATCHED"},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, done.stderr
    assert "cannot patch moto's DynamoDB transactions and Queries" in done.stderr
    assert message in done.stderr
    assert "BEACON_MOTO_UNPATCHED=1" in done.stderr
