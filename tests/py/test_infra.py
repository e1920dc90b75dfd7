"""The SAM template and its local provisioning (scripts/provision.py against moto)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

TEMPLATE = Path(__file__).resolve().parents[2] / "infra" / "template.yaml"
GENERIC = Path(__file__).resolve().parent / "templates" / "generic.yaml"

ROUTES = {
    "OpenPixelFunction": ("open-pixel", [{"method": "GET", "path": "/o/{token}"}]),
    "ClickRedirectFunction": ("click-redirect", [{"method": "GET", "path": "/c/{token}"}]),
    "CollectFunction": ("collect", [{"method": "POST", "path": "/v1/events"}]),
    "StatsFunction": (
        "stats",
        [
            {"method": "POST" if p.endswith("/check") else "GET", "path": p}
            for p in [
                "/v1/campaigns",
                "/v1/campaigns/{campaign}",
                "/v1/campaigns/{campaign}/timeseries",
                "/v1/campaigns/{campaign}/links",
                "/v1/campaigns/{campaign}/channels",
                "/v1/timeseries",
                "/v1/channels",
                "/v1/suppressions",
                "/v1/suppressions/check",
                "/v1/suppressions/{channel}/{recipient}",
                "/v1/recipients/{recipient}/engagement",
                "/v1/recipients/{recipient}/messages",
                "/v1/segments",
                "/v1/segments/{segment}",
                "/v1/session",
                "/v1/live",
                "/v1/alerts",
            ]
        ]
        + [
            {"method": "GET", "path": "/dashboard"},
            {"method": "GET", "path": "/dashboard/{path+}"},
            {"method": "POST", "path": "/dashboard/signout"},
        ],
    ),
    "AggregateFunction": ("aggregate", []),
    "EtlFunction": ("etl", []),
    "CompactFunction": ("compact", []),
    "ReportFunction": ("report", []),
    "AlertsFunction": ("alerts", []),
    "IngestSesFunction": ("ingest-ses", []),
    "IngestWebhooksFunction": ("ingest-webhooks", [{"method": "POST", "path": "/v1/webhooks/{provider}/{tenant}"}]),
}
SCHEDULED = {"CompactFunction", "ReportFunction", "AlertsFunction"}
STREAM_CONSUMERS = {"AggregateFunction", "EtlFunction"}


def load(path: Path) -> dict:
    from cfnlint.decode import decode

    template, matches = decode(str(path))
    assert not matches, matches
    return json.loads(json.dumps(template))


def assert_fully_resolved(value, where="") -> None:
    """Strings all the way down, and no intrinsic or ${...} left."""
    if isinstance(value, dict):
        for k, v in value.items():
            assert not (k == "Ref" or k.startswith("Fn::")), f"unresolved {k} at {where}"
            assert_fully_resolved(v, f"{where}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            assert_fully_resolved(v, f"{where}[{i}]")
    elif isinstance(value, str):
        assert "${" not in value, f"unresolved substitution at {where}: {value}"


# --- the template ---------------------------------------------------------------------


def test_cfn_lint_has_no_findings(venv_bin, repo_root):
    done = subprocess.run([str(venv_bin / "cfn-lint"), str(TEMPLATE)], capture_output=True, text=True,
                          cwd=repo_root, timeout=300)
    assert done.returncode == 0 and not done.stdout.strip(), done.stdout + done.stderr


def test_transformed_template_has_no_circular_dependency(monkeypatch):
    """cfn-lint checks the SAM template as written; CloudFormation deploys what SAM
    generates from it. A function referencing its own HTTP API is a cycle only there
    (the API's generated definition references every function's ARN), so translate
    with SAM and look for cycles in the result."""
    import samtranslator.translator.transform as samtranslator  # pinned in requirements-dev.txt
    from cfnlint.api import ManualArgs, lint

    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    template = load(TEMPLATE)
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::Serverless::Function":
            resource["Properties"]["CodeUri"] = "s3://beacon-artifacts/code.zip"  # as `sam package` does

    class NoManagedPolicies:
        def load(self):
            return {}

    translated = samtranslator.transform(template, {}, NoManagedPolicies())
    findings = lint(json.dumps(translated), config=ManualArgs(regions=["us-east-1"]))
    cycles = [str(f) for f in findings if f.rule.id == "E3004"]
    assert not cycles, "\n".join(cycles)
    errors = [str(f) for f in findings if f.rule.id.startswith("E")]
    assert not errors, "\n".join(errors)


def test_policies_are_least_privilege():
    template = load(TEMPLATE)
    expected = {
        "OpenPixelFunction": {"kinesis:PutRecord", "kinesis:PutRecords", "secretsmanager:GetSecretValue"},
        "ClickRedirectFunction": {"kinesis:PutRecord", "kinesis:PutRecords", "secretsmanager:GetSecretValue"},
        "CollectFunction": {"kinesis:PutRecord", "kinesis:PutRecords", "dynamodb:GetItem"},
        "EtlFunction": {"s3:PutObject", "sqs:SendMessage"},
        "StatsFunction": {"dynamodb:Query", "dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:UpdateItem",
                          "secretsmanager:GetSecretValue"},
        "CompactFunction": {"s3:ListBucket", "s3:GetObject", "s3:PutObject", "s3:DeleteObject"},
        "IngestSesFunction": {"kinesis:PutRecord", "kinesis:PutRecords", "dynamodb:GetItem",
                              "secretsmanager:GetSecretValue", "sqs:SendMessage"},
        "IngestWebhooksFunction": {"kinesis:PutRecord", "kinesis:PutRecords", "dynamodb:GetItem",
                                   "dynamodb:PutItem", "dynamodb:DeleteItem", "secretsmanager:GetSecretValue"},
    }
    for name, actions in expected.items():
        policies = template["Resources"][name]["Properties"]["Policies"]
        assert all(isinstance(p, dict) and set(p) == {"Statement"} for p in policies), policies
        granted = set()
        for policy in policies:
            for statement in policy["Statement"]:
                assert statement["Effect"] == "Allow"
                # No wildcard, except the objects under one prefix of a bucket.
                resource = re.sub(r'/[a-z_-]+/\*"', '"', json.dumps(statement["Resource"]))
                assert "*" not in resource, statement
                acts = statement["Action"]
                granted |= set([acts] if isinstance(acts, str) else acts)
        assert granted == actions, name


# --- provisioning -----------------------------------------------------------------------


def test_provision_creates_the_template_resources(provision, stack_name, aws):
    base = "http://127.0.0.1:48123"
    out = provision(stack_name, public_base_url=base)

    assert out["stack"] == stack_name
    assert out["region"] == "us-east-1"
    resources = out["resources"]
    assert resources["EventStream"]["name"] == f"{stack_name}-events"
    assert resources["ApiKeysTable"]["name"] == f"{stack_name}-api-keys"
    assert resources["TrackingKeysSecret"]["name"] == f"{stack_name}/tracking-keys"

    stream = aws("kinesis").describe_stream_summary(StreamName=f"{stack_name}-events")["StreamDescriptionSummary"]
    assert stream["StreamStatus"] == "ACTIVE"
    assert stream["StreamModeDetails"]["StreamMode"] == "ON_DEMAND"
    assert stream["RetentionPeriodHours"] == 168
    assert stream["StreamARN"] == resources["EventStream"]["arn"]

    table = aws("dynamodb").describe_table(TableName=f"{stack_name}-api-keys")["Table"]
    assert table["KeySchema"] == [{"AttributeName": "key_hash", "KeyType": "HASH"}]
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"

    secret = aws("secretsmanager").get_secret_value(SecretId=f"{stack_name}/tracking-keys")
    assert secret["ARN"] == resources["TrackingKeysSecret"]["arn"]
    keys = json.loads(secret["SecretString"])
    assert keys["active"] == "k1"
    assert len(keys["k1"]) == 64 and keys["k1"].isalnum()

    functions = out["functions"]
    assert set(functions) == set(ROUTES)
    for name, (binary, routes) in ROUTES.items():
        assert functions[name]["binary"] == binary
        assert functions[name]["routes"] == routes
        assert (functions[name]["schedules"] != []) == (name in SCHEDULED)
        assert (functions[name]["streams"] != []) == (name in STREAM_CONSUMERS)
    assert_fully_resolved(functions)
    for f in functions.values():
        assert all(isinstance(v, str) for v in f["env"].values()), f["env"]

    secret_arn = resources["TrackingKeysSecret"]["arn"]
    common = {"RUST_LOG": "info", "BEACON_STREAM_NAME": f"{stack_name}-events"}
    tracking = {**common, "BEACON_TRACKING_KEYS_SECRET": secret_arn}
    assert functions["OpenPixelFunction"]["env"] == tracking
    assert functions["ClickRedirectFunction"]["env"] == tracking
    assert functions["CollectFunction"]["env"] == {**common, "BEACON_API_KEYS_TABLE": f"{stack_name}-api-keys"}
    assert functions["StatsFunction"]["env"]["BEACON_DASHBOARD_KEYS_SECRET"] == resources["DashboardKeysSecret"]["arn"]
    assert functions["CollectFunction"]["timeout"] == 30
    assert functions["CollectFunction"]["memory_size"] == 256

    stream_mapping = functions["AggregateFunction"]["streams"][0]
    assert stream_mapping["stream"] == f"{stack_name}-events"
    assert stream_mapping["function_response_types"] == ["ReportBatchItemFailures"]
    assert stream_mapping["bisect_batch_on_function_error"] is True
    assert stream_mapping["maximum_retry_attempts"] >= 0, "never retry forever"
    rollups = aws("dynamodb").describe_table(TableName=f"{stack_name}-rollups")["Table"]
    assert [k["AttributeName"] for k in rollups["KeySchema"]] == ["pk", "sk"]
    assert aws("dynamodb").describe_time_to_live(TableName=f"{stack_name}-rollups")["TimeToLiveDescription"]["AttributeName"] == "ttl"
    assert resources["DeadLetterQueue"]["url"].endswith(f"{stack_name}-dead-letters")

    # Provider ingestion: credentials table with its token TTL, the ingest keys, the topic.
    providers = aws("dynamodb").describe_table(TableName=f"{stack_name}-providers")["Table"]
    assert providers["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
    ttl = aws("dynamodb").describe_time_to_live(TableName=f"{stack_name}-providers")["TimeToLiveDescription"]
    assert ttl["AttributeName"] == "expires_at"
    ingest_keys = json.loads(aws("secretsmanager").get_secret_value(SecretId=f"{stack_name}/ingest-keys")["SecretString"])
    assert ingest_keys["active"] == "k1" and len(ingest_keys["k1"]) == 64
    ingest_env = {**common, "BEACON_PROVIDERS_TABLE": f"{stack_name}-providers",
                  "BEACON_INGEST_KEYS_SECRET": resources["IngestKeysSecret"]["arn"]}
    assert functions["IngestWebhooksFunction"]["env"] == ingest_env
    assert functions["IngestSesFunction"]["env"] == {**ingest_env, "BEACON_SES_COST_PER_MESSAGE": "0.0001"}, \
        "no default tenant unless one is given"
    topic = resources["SesEventsTopic"]["arn"]
    assert topic in [t["TopicArn"] for t in aws("sns").list_topics()["Topics"]]
    assert out["outputs"]["SesEventsTopicArn"] == topic

    # Without a TrackingDomain the public URL is the API's own: here, the local gateway.
    assert out["outputs"]["ApiUrl"] == base
    assert out["outputs"]["PublicBaseUrl"] == base
    assert out["outputs"]["StreamName"] == f"{stack_name}-events"
    assert out["outputs"]["TrackingKeysSecretArn"] == secret_arn


def test_tracking_domain_reaches_every_function(provision, stack_name):
    out = provision(stack_name, params=["TrackingDomain=t.example.com", "LogLevel=debug"])
    for f in out["functions"].values():
        assert f["env"]["BEACON_PUBLIC_BASE_URL"] == "https://t.example.com"
        assert f["env"]["RUST_LOG"] == "debug"
    assert out["outputs"]["PublicBaseUrl"] == "https://t.example.com"


def test_provision_is_idempotent(provision, stack_name, aws):
    first = provision(stack_name)
    secret_id = f"{stack_name}/tracking-keys"
    value = aws("secretsmanager").get_secret_value(SecretId=secret_id)["SecretString"]
    second = provision(stack_name)
    assert second == first
    # The keys survive a re-run: links signed before it still verify.
    assert aws("secretsmanager").get_secret_value(SecretId=secret_id)["SecretString"] == value


def test_provision_json_to_file(provision, stack_name, tmp_path):
    out = tmp_path / "stack.json"
    done = provision(stack_name, check=False, extra=["--out", str(out)])
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    assert json.loads(out.read_text())["stack"] == stack_name


def test_provision_fails_clearly(provision, stack_name, venv_bin, repo_root):
    done = provision(stack_name, check=False, params=["NoSuchParam=1"])
    assert done.returncode != 0 and "NoSuchParam" in done.stderr

    done = provision(stack_name, check=False, params=["LogLevel=loud"])
    assert done.returncode != 0 and "LogLevel" in done.stderr

    env = {k: v for k, v in os.environ.items() if k != "AWS_ENDPOINT_URL"}
    done = subprocess.run([str(venv_bin / "python"), str(repo_root / "scripts" / "provision.py")],
                          capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode != 0 and "AWS_ENDPOINT_URL" in done.stderr

    done = subprocess.run([str(venv_bin / "python"), str(repo_root / "scripts" / "provision.py"),
                           "--endpoint", "https://kinesis.us-east-1.amazonaws.com"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "never AWS" in done.stderr


# --- genericity: resource types the template does not use yet --------------------------


def test_provision_is_generic_over_the_template(provision, stack_name, aws, moto_endpoint):
    out = provision(stack_name, template=GENERIC, public_base_url="http://127.0.0.1:9999")
    r = out["resources"]
    assert set(r) == {"RawStream", "RollupTable", "PlainTable", "LakeBucket", "NamedBucket", "DeadLetters",
                      "WorkQueue", "PlainSecret", "Identity"}
    assert out["endpoint"] == moto_endpoint
    for logical_id, kind in [("Alarm", "AWS::CloudWatch::Alarm"), ("Api", "AWS::Serverless::HttpApi")]:
        assert f"not emulated locally: {logical_id} ({kind})" in provision.last_stderr, provision.last_stderr

    plain_table = aws("dynamodb").describe_table(TableName=f"{stack_name}-PlainTable")["Table"]
    assert plain_table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"

    assert aws("kinesis").describe_stream_summary(StreamName=f"{stack_name}-RawStream")[
        "StreamDescriptionSummary"]["OpenShardCount"] == 2

    table = aws("dynamodb").describe_table(TableName=f"{stack_name}-RollupTable")["Table"]
    assert [i["IndexName"] for i in table["GlobalSecondaryIndexes"]] == ["by-campaign"]
    ttl = aws("dynamodb").describe_time_to_live(TableName=f"{stack_name}-RollupTable")["TimeToLiveDescription"]
    assert ttl["AttributeName"] == "expires_at"

    buckets = {b["Name"] for b in aws("s3").list_buckets()["Buckets"]}
    assert {f"{stack_name}-lakebucket", f"{stack_name}-reports-b"} <= buckets

    dlq_arn = r["DeadLetters"]["arn"]
    attrs = aws("sqs").get_queue_attributes(QueueUrl=r["WorkQueue"]["url"], AttributeNames=["All"])["Attributes"]
    assert json.loads(attrs["RedrivePolicy"])["deadLetterTargetArn"] == dlq_arn
    assert attrs["VisibilityTimeout"] == "60"

    plain = aws("secretsmanager").get_secret_value(SecretId=f"{stack_name}-PlainSecret")["SecretString"]
    assert len(plain) == 20 and not set("abc") & set(plain)

    identities = {i["IdentityName"] for i in aws("sesv2").list_email_identities()["EmailIdentities"]}
    assert {"example.org", "news@example.com"} <= identities

    rollup, report = out["functions"]["RollupFunction"], out["functions"]["ReportFunction"]
    # ${!Literal} is Fn::Sub's escape for a literal "${Literal}"; everything else resolves.
    assert_fully_resolved({k: v for k, v in rollup["env"].items() if k != "SUBLIST"})
    assert_fully_resolved(report)
    assert rollup["binary"] == "rollup" and report["binary"] == "report"
    env = rollup["env"]
    assert env["SHARED"] == f"{stack_name}:us-east-1:123456789012:aws"
    assert env["TABLE"] == f"{stack_name}-RollupTable"
    assert env["QUEUE_URL"] == r["WorkQueue"]["url"]
    assert env["SECRET"] == r["PlainSecret"]["arn"]
    assert env["BATCH"] == "10" and env["MODE"] == "development" and "PROD_QUEUE" not in env
    assert env["SUBLIST"] == f"{stack_name}-RawStream/http://127.0.0.1:9999/${{Literal}}"
    assert env["FLAG"] == "true" and env["JSON"] == '{"a":1}' and env["SPLIT"] == "z"
    assert report["env"]["API_URL"] == "http://127.0.0.1:9999"
    assert env["JOINED_URL"] == "http://127.0.0.1:9999/reports"
    assert env["SECRET_ARN"] == r["PlainSecret"]["arn"]
    assert env["PLAIN_TABLE"] == f"{stack_name}-PlainTable"
    assert rollup["timeout"] == 60 and report["timeout"] == 5

    assert rollup["streams"] == [{
        "name": "Raw",
        "event": "Raw",
        "stream": f"{stack_name}-RawStream",
        "stream_arn": r["RawStream"]["arn"],
        "batch_size": 10,
        "starting_position": "TRIM_HORIZON",
        "maximum_batching_window_seconds": 5,
        "maximum_batching_window_in_seconds": 5,
        "enabled": True,
        "bisect_batch_on_function_error": True,
        "maximum_retry_attempts": 3,
        "maximum_record_age_seconds": -1,
        "function_response_types": ["ReportBatchItemFailures"],
        "destination": dlq_arn,
        "destination_config": {"OnFailure": {"Type": "SQS", "Destination": dlq_arn}},
    }]
    assert rollup["schedules"] == [{"name": "Hourly", "event": "Hourly", "type": "ScheduleV2",
                                    "expression": "rate(1 hour)", "input": {"job": "hourly"}, "enabled": True}]
    assert report["schedules"][0]["expression"] == "cron(0 6 * * ? *)"
    assert report["schedules"][0]["input"] == {"job": "daily"}
    assert report["streams"] == []
    assert report["routes"] == [{"method": "ANY", "path": "/reports/{proxy+}"}]
    assert out["outputs"] == {"Url": "http://127.0.0.1:9999"}

    # A condition that turns on a resource, an env var and an output.
    prod = provision(stack_name + "p", template=GENERIC, params=["Stage=prod"])
    assert "ProdOnlyQueue" in prod["resources"]
    assert prod["functions"]["RollupFunction"]["env"]["PROD_QUEUE"] == prod["resources"]["ProdOnlyQueue"]["arn"]
    assert prod["functions"]["RollupFunction"]["env"]["BATCH"] == "500"
    assert prod["outputs"]["ProdQueue"] == prod["resources"]["ProdOnlyQueue"]["url"]

    again = provision(stack_name, template=GENERIC, public_base_url="http://127.0.0.1:9999")
    assert again == out


def test_lake_resources_are_declared_deliberately():
    resources = load(TEMPLATE)["Resources"]
    bucket = resources["LakeBucket"]["Properties"]
    assert bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]
    assert all(bucket["PublicAccessBlockConfiguration"].values())
    staging = [r for r in bucket["LifecycleConfiguration"]["Rules"] if r.get("Prefix") == "staging/"]
    assert staging and staging[0]["ExpirationInDays"] >= 7
    # The ETL may write staging only; compaction never writes staging.
    etl = resources["EtlFunction"]["Properties"]["Policies"][0]["Statement"][0]
    assert etl["Resource"] == {"Fn::Sub": "${LakeBucket.Arn}/staging/*"}
    mapping = resources["EtlFunction"]["Properties"]["Events"]["Stream"]["Properties"]
    for key in ("BatchSize", "MaximumBatchingWindowInSeconds", "BisectBatchOnFunctionError",
                "MaximumRetryAttempts", "MaximumRecordAgeInSeconds", "DestinationConfig"):
        assert key in mapping, key
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert 0 <= mapping["MaximumRetryAttempts"] and mapping["MaximumRecordAgeInSeconds"] == 604800
    schedule = resources["CompactFunction"]["Properties"]["Events"]["Hourly"]
    assert schedule["Type"] == "Schedule" and schedule["Properties"]["Schedule"].startswith("cron(")
    for name in ("EventsTable", "EventsStagingTable"):
        params = resources[name]["Properties"]["TableInput"]["Parameters"]
        template = params["storage.location.template"]["Fn::Sub"]
        assert "${!dt}" in template and "${!hour}" in template and template.endswith("/")
    workgroup = resources["LakeWorkGroup"]["Properties"]["WorkGroupConfiguration"]
    assert workgroup["BytesScannedCutoffPerQuery"] == {"Ref": "AthenaBytesScannedCutoff"}
    assert workgroup["ResultConfiguration"]["OutputLocation"]


def test_report_resources_are_declared_deliberately():
    resources = load(TEMPLATE)["Resources"]
    bucket = resources["ReportsBucket"]["Properties"]
    assert bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]
    assert all(bucket["PublicAccessBlockConfiguration"].values())
    [rule] = bucket["LifecycleConfiguration"]["Rules"]
    assert rule["Prefix"] == "tenants/" and rule["ExpirationInDays"] == {"Ref": "ReportsRetentionDays"}
    table = resources["ReportsTable"]["Properties"]
    assert table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    fn = resources["ReportFunction"]["Properties"]
    # Every hour: a day closes at a different UTC hour in every time zone.
    schedule = fn["Events"]["Hourly"]["Properties"]["Schedule"]
    assert schedule.startswith("cron(") and schedule.split()[1] == "*", schedule
    statements = fn["Policies"][-1]["Statement"]
    s3 = next(s for s in statements if "s3:PutObject" in s["Action"])
    assert s3["Resource"] == {"Fn::Sub": "${ReportsBucket.Arn}/tenants/*"}
    ses = next(s for s in statements if "ses:SendRawEmail" in s["Action"])
    assert ses["Condition"]["StringEquals"]["ses:FromAddress"] == {"Ref": "ReportsFromAddress"}
    assert resources["ReportFailureAlarm"]["Properties"]["MetricName"] == "ReportsFailed"
