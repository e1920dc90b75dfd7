"""Each function binary under a real Lambda runtime emulator (cargo-lambda), invoked with
its sample payload from events/, writing to the emulator's Kinesis stream."""

import base64
import hashlib
import json
import os
import socket
import subprocess
import time
import uuid

import boto3
import pytest

SAMPLE_KEYS = '{"active":"sample","sample":"beacon-sample-key-for-events-only-not-for-production"}'
SAMPLE_INGEST_KEYS = '{"active":"k1","k1":"beacon-sample-ingest-key-for-events-only-not-for-production"}'
SAMPLE_API_KEY = "bk_sample_events_key_not_for_production_000000000"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stream_events(kinesis, stream):
    events = []
    for shard in kinesis.list_shards(StreamName=stream)["Shards"]:
        it = kinesis.get_shard_iterator(StreamName=stream, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        while it:
            out = kinesis.get_records(ShardIterator=it)
            events += [json.loads(r["Data"]) for r in out["Records"]]
            it = out.get("NextShardIterator") if out["Records"] else None
    return events


@pytest.fixture
def lambda_emulator(repo_root, moto_endpoint, provision):
    stack = provision(f"lam{uuid.uuid4().hex[:8]}")
    collect_env = stack["functions"]["CollectFunction"]["env"]
    aggregate_env = stack["functions"]["AggregateFunction"]["env"]
    dynamodb = boto3.client("dynamodb", endpoint_url=moto_endpoint, region_name="us-east-1")
    dynamodb.put_item(
        TableName=collect_env["BEACON_API_KEYS_TABLE"],
        Item={
            "key_hash": {"S": hashlib.sha256(SAMPLE_API_KEY.encode()).hexdigest()},
            "tenant_id": {"S": "acme"},
            "name": {"S": "sample"},
            "created_at": {"S": ""},
            "revoked": {"BOOL": False},
        },
    )
    port = free_port()
    env = dict(os.environ)
    env.update(
        AWS_ENDPOINT_URL=moto_endpoint,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_REGION="us-east-1",
        AWS_DEFAULT_REGION="us-east-1",
        BEACON_STREAM_NAME=collect_env["BEACON_STREAM_NAME"],
        BEACON_API_KEYS_TABLE=collect_env["BEACON_API_KEYS_TABLE"],
        BEACON_ROLLUPS_TABLE=aggregate_env["BEACON_ROLLUPS_TABLE"],
        BEACON_DEAD_LETTER_QUEUE_URL=aggregate_env["BEACON_DEAD_LETTER_QUEUE_URL"],
        BEACON_LAKE_BUCKET=stack["functions"]["EtlFunction"]["env"]["BEACON_LAKE_BUCKET"],
        BEACON_REPORTS_TABLE=stack["functions"]["ReportFunction"]["env"]["BEACON_REPORTS_TABLE"],
        BEACON_REPORTS_BUCKET=stack["functions"]["ReportFunction"]["env"]["BEACON_REPORTS_BUCKET"],
        BEACON_REPORTS_FROM=stack["functions"]["ReportFunction"]["env"]["BEACON_REPORTS_FROM"],
        BEACON_ALERTS_TABLE=stack["functions"]["AlertsFunction"]["env"]["BEACON_ALERTS_TABLE"],
        BEACON_ALERTS_FROM=stack["functions"]["AlertsFunction"]["env"]["BEACON_ALERTS_FROM"],
        BEACON_TRACKING_KEYS=SAMPLE_KEYS,
        BEACON_PROVIDERS_TABLE=stack["functions"]["IngestSesFunction"]["env"]["BEACON_PROVIDERS_TABLE"],
        BEACON_INGEST_KEYS=SAMPLE_INGEST_KEYS,
        # The samples keep their dates; ingestion takes events up to 30 days old by default.
        BEACON_MAX_EVENT_AGE_HOURS=str(24 * 365 * 20),
        PATH=f"{repo_root / '.venv' / 'bin'}:{env['PATH']}",
    )
    log = open(repo_root / ".beacon" / f"cargo-lambda-{port}.log", "w") if (repo_root / ".beacon").exists() else subprocess.DEVNULL
    watch = subprocess.Popen(
        ["cargo", "lambda", "watch", "-A", "127.0.0.1", "-P", str(port)],
        cwd=repo_root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    deadline = time.time() + 120
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert watch.poll() is None, "cargo lambda watch exited early"
            assert time.time() < deadline, "cargo lambda watch did not start listening"
            time.sleep(0.5)

    def invoke(function):
        out = subprocess.run(
            ["cargo", "lambda", "invoke", function, "-A", "127.0.0.1", "-P", str(port), "-F", f"events/{function}.json", "-o", "json"],
            cwd=repo_root, env=env, capture_output=True, text=True, timeout=600,
        )
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    invoke.lake_bucket = env["BEACON_LAKE_BUCKET"]
    invoke.reports_bucket = env["BEACON_REPORTS_BUCKET"]

    yield invoke, collect_env["BEACON_STREAM_NAME"], boto3.client("kinesis", endpoint_url=moto_endpoint, region_name="us-east-1"), aggregate_env
    os.killpg(watch.pid, 15)
    watch.wait(timeout=30)


def test_sample_events_under_the_lambda_runtime_emulator(lambda_emulator):
    invoke, stream, kinesis, aggregate_env = lambda_emulator

    pixel = invoke("open-pixel")
    assert pixel["statusCode"] == 200
    assert pixel["isBase64Encoded"] is True
    gif = base64.b64decode(pixel["body"])
    assert gif[:6] == b"GIF89a" and len(gif) == 43
    assert pixel["headers"]["content-type"] == "image/gif"

    click = invoke("click-redirect")
    assert click["statusCode"] == 302
    assert click["headers"]["location"] == "https://shop.example.com/sale?utm_source=email"

    collect = invoke("collect")
    assert collect["statusCode"] == 202, collect
    body = json.loads(collect["body"])
    assert body["accepted"] == 3 and body["rejected"] == 0

    events = stream_events(kinesis, stream)
    kinds = sorted(e["type"] for e in events)
    assert kinds == sorted(["message.opened", "link.clicked", "message.sent", "message.delivered", "message.bounced"])
    opened = next(e for e in events if e["type"] == "message.opened")
    assert (opened["tenant_id"], opened["campaign_id"], opened["recipient_id"]) == ("acme", "spring-sale", "rcpt-0001")
    assert opened["context"]["ip"] == "203.0.113.0"


def test_ses_events_under_the_lambda_runtime_emulator(lambda_emulator):
    """events/ingest-ses.json, an SES delivery as the EventBridge rule delivers it."""
    invoke, stream, kinesis, _ = lambda_emulator
    done = invoke("ingest-ses")
    assert done == {"recorded": 1, "skipped": 0, "failed": 0}, done
    events = [e for e in stream_events(kinesis, stream) if e.get("provider") == "ses"]
    assert len(events) == 1
    e = events[0]
    assert (e["type"], e["tenant_id"], e["campaign_id"], e["duration_ms"]) == ("message.delivered", "acme", "spring-sale", 1488)
    assert e["recipient_id"].startswith("rh_") and "recipient@example.com" not in json.dumps(e)
    assert invoke("ingest-ses") == done, "a redelivery is accepted (and counts once downstream)"


def test_aggregate_and_stats_under_the_lambda_runtime_emulator(lambda_emulator, moto_endpoint):
    invoke, _, _, aggregate_env = lambda_emulator

    batch = invoke("aggregate")
    assert batch == {"batchItemFailures": []}, batch
    again = invoke("aggregate")  # redelivery of the same batch changes nothing
    assert again == {"batchItemFailures": []}

    sqs = boto3.client("sqs", endpoint_url=moto_endpoint, region_name="us-east-1")
    letters = sqs.receive_message(QueueUrl=aggregate_env["BEACON_DEAD_LETTER_QUEUE_URL"], MaxNumberOfMessages=10)["Messages"]
    assert len(letters) == 1
    letter = json.loads(letters[0]["Body"])
    assert letter["sequence"].endswith("7447042") and "not an event" in letter["reason"]

    overview = invoke("stats")
    assert overview["statusCode"] == 200, overview
    body = json.loads(overview["body"])
    counts = body["counts"]
    assert (counts["sent"], counts["delivered"], counts["opens_human"]) == (1, 1, 1), body
    assert body["unique"]["opens_human"] == 1
    assert body["rates"]["delivery_rate"] == 1.0
    assert body["rates"]["open_rate"] == 1.0

    # The five-minute schedule: acme (known from the batch) is judged by the two
    # built-in rules; one send is far below their 100-message minimum, so nothing fires.
    alerts = invoke("alerts")
    assert (alerts["tenants"], alerts["fired"], alerts["errors"]) == (1, 0, 0), alerts
    assert alerts["outcomes"][0]["tenant"] == "acme" and alerts["outcomes"][0]["rules"] == 2


def test_etl_and_compact_under_the_lambda_runtime_emulator(lambda_emulator, moto_endpoint, tmp_path):
    """events/etl.json (three events and a poison record) lands in staging; the
    scheduled run of events/compact.json (11:20, the 10:00 hour closed) curates it."""
    import pyarrow.parquet as pq

    invoke, _, _, aggregate_env = lambda_emulator
    assert invoke("etl") == {"batchItemFailures": []}
    assert invoke("etl") == {"batchItemFailures": []}  # a retry overwrites its own piece
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
    bucket = invoke.lake_bucket
    staged = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="staging/").get("Contents", [])]
    assert len(staged) == 1 and staged[0].startswith("staging/events/dt=2026-11-23/hour=10/"), staged

    answer = invoke("compact")
    assert [h["partition"] for h in answer["hours"]] == ["dt=2026-11-23/hour=10"], answer
    assert answer["hours"][0]["rows"] == 3
    assert s3.list_objects_v2(Bucket=bucket, Prefix="staging/").get("KeyCount", 0) == 0
    body = s3.get_object(Bucket=bucket, Key="curated/events/dt=2026-11-23/hour=10/events.parquet")["Body"].read()
    (tmp_path / "events.parquet").write_bytes(body)
    table = pq.read_table(tmp_path / "events.parquet")
    assert sorted(table.column("event_type").to_pylist()) == ["message.delivered", "message.opened", "message.sent"]

    sqs = boto3.client("sqs", endpoint_url=moto_endpoint, region_name="us-east-1")
    letters = sqs.receive_message(QueueUrl=aggregate_env["BEACON_DEAD_LETTER_QUEUE_URL"], MaxNumberOfMessages=10)["Messages"]
    assert any(json.loads(m["Body"])["reason"].startswith("lake: not an event") for m in letters)



def test_report_under_the_lambda_runtime_emulator(lambda_emulator, moto_endpoint):
    """events/report.json renders the sample campaign's day (after aggregate.json) on
    demand: files in the reports bucket, one email accepted by SES."""
    invoke, _, _, _ = lambda_emulator
    assert invoke("aggregate") == {"batchItemFailures": []}
    answer = invoke("report")
    assert answer["status"] == "sent", answer
    prefix = "tenants/acme/reports/spring-daily/2026-11-23/spring-daily-2026-11-23"
    assert answer["files"] == [f"{prefix}.html", f"{prefix}.csv", f"{prefix}.pdf"]
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
    csv = s3.get_object(Bucket=invoke.reports_bucket, Key=f"{prefix}.csv")["Body"].read().decode("utf-8-sig")
    summary = {line.split(",")[1]: line.split(",")[3] for line in csv.splitlines() if line.startswith("summary,")}
    assert summary.get("sent") == "1" and summary.get("delivered") == "1", csv
    ses = boto3.client("ses", endpoint_url=moto_endpoint, region_name="us-east-1")
    assert answer["message_id"] and ses.get_send_quota()["SentLast24Hours"] >= 1
