"""Alerts, the suppression list and the budget from the outside: the demo's bounce
spike (its webhook requests checked here with Python's own HMAC, as a receiver would),
and `beacon alert` / `beacon suppression` against the emulator, including the
messages bad rule definitions are refused with."""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import json
import os
import subprocess
from pathlib import Path

import pytest

BEACON = Path(os.environ.get("CARGO_TARGET_DIR", Path.home() / ".cache" / "beacon-target")) / "debug" / "beacon"


def receiver_accepts(secret: str, header: str, body: bytes) -> bool:
    """What docs/alerts-suppression-engagement.md tells webhook receivers to do."""
    parts = dict(p.split("=", 1) for p in header.split(","))
    expected = hmac.new(secret.encode(), f"{parts['t']}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, parts["v1"])


def test_the_bounce_spike_fires_once_with_verifiable_webhooks(summary):
    alerts = summary["alerts"]
    assert alerts["ok"] is True, alerts
    assert alerts["first_run"]["fired"] == ["ses-bounce-rate"]
    assert alerts["second_run"][0]["fired"] == [], "one notice per breach"
    assert alerts["first_run"]["budget_level"] == 100
    kinds = sorted(json.loads(r["body"])["type"] for r in alerts["webhook_requests"])
    assert kinds == ["alert.firing", "budget.threshold"]
    for request in alerts["webhook_requests"]:
        body = request["body"].encode()
        assert receiver_accepts(alerts["webhook_secret"], request["signature"], body)
        assert not receiver_accepts(alerts["webhook_secret"], request["signature"], body.replace(b"\"tenant\":\"demo\"", b"\"tenant\":\"dem0\""))
        assert not receiver_accepts("whsec_wrong", request["signature"], body)
    firing = next(json.loads(r["body"]) for r in alerts["webhook_requests"] if b"firing" in r["body"].encode())
    assert firing["value"] >= 0.05 and firing["threshold"] == 0.05
    assert alerts["suppression_check"]["suppressed"][0]["reasons"].keys() == {"hard_bounce"}


@pytest.fixture
def cli(moto_endpoint, provision, stack_name):
    provision(stack_name)
    env = dict(os.environ, AWS_ENDPOINT_URL=moto_endpoint, BEACON_ALERTS_TABLE=f"{stack_name}-alerts",
               BEACON_ROLLUPS_TABLE=f"{stack_name}-rollups")
    env.pop("BEACON_ALLOW_LOCAL_WEBHOOKS", None)  # each test says whether it wants it
    if not BEACON.exists():
        pytest.fail(f"{BEACON} is missing: `make build` (make test-py does it first)")

    def run(*args: str, extra_env: dict | None = None) -> subprocess.CompletedProcess:
        return subprocess.run([str(BEACON), *args], capture_output=True, text=True, timeout=60,
                              env={**env, **(extra_env or {})})

    return run


def test_bad_rule_definitions_are_refused_with_clear_messages(cli, tmp_path):
    bad = cli("alert", "add", "--tenant", "acme", "--id", "x", "--metric", "bounces", "--operator", "~",
              "--threshold", "5", "--window", "2w")
    assert bad.returncode == 1
    for says in ("unknown metric `bounces`; one of bounce_rate", "unknown operator `~`", "window `2w`"):
        assert says in bad.stderr, bad.stderr
    rate = cli("alert", "add", "--tenant", "acme", "--id", "b", "--metric", "bounce_rate", "--operator", ">",
               "--threshold", "5")
    assert 'must be a percentage from 0% to 100%, like "5%" (got "5")' in rate.stderr
    rule = tmp_path / "rule.json"
    rule.write_text(json.dumps({"id": "dip", "metric": "open_rate", "sigmas": 3}))
    anomaly = cli("alert", "add", "--tenant", "acme", "--from-file", str(rule))
    assert "anomaly rules (sigmas) watch delivery_rate only" in anomaly.stderr
    rule.write_text(json.dumps({"id": "x", "metric": "spend", "treshold": 1}))
    typo = cli("alert", "add", "--tenant", "acme", "--from-file", str(rule))
    assert "unknown field `treshold`" in typo.stderr
    budget = cli("alert", "budget", "--tenant", "acme", "--monthly", "100", "--currency", "usd")
    assert "three-letter ISO 4217 code" in budget.stderr
    hook = cli("alert", "notify", "--tenant", "acme", "--webhook", "http://hooks.example.com/x")
    assert "must use https" in hook.stderr
    # Nothing was stored by any of them.
    listed = cli("alert", "list", "--tenant", "acme")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.count("\n") == 4, listed.stdout  # two built-ins, budget, destinations


def test_webhooks_that_lead_inside_are_refused_and_local_ones_need_the_switch(cli):
    for url, says in [
        ("https://169.254.169.254/latest/meta-data/", "goes to 169.254.169.254, the cloud instance metadata service"),
        ("https://2852039166/", "goes to 169.254.169.254"),
        ("https://[::ffff:169.254.169.254]/", "the cloud instance metadata service"),
        ("https://[fd00:ec2::254]/", "the cloud instance metadata service"),
        ("https://127.0.0.1:9001/2018-06-01/runtime/invocation/next", "a loopback address"),
        ("https://localhost/hook", "goes to this machine"),
        ("https://10.0.0.8/hook", "a private address (RFC 1918)"),
        ("https://user:pw@hooks.acme.example/x", "carries credentials"),
        ("https://hooks.acme.example/x\r\nX-Injected: 1", "control character"),
        ("http://127.0.0.1:9000/hook", "BEACON_ALLOW_LOCAL_WEBHOOKS=1"),
    ]:
        refused = cli("alert", "notify", "--tenant", "acme", "--webhook", url)
        assert refused.returncode == 1, (url, refused.stderr)
        assert says in refused.stderr, (url, refused.stderr)
    assert "notices to: no email\n" in cli("alert", "list", "--tenant", "acme").stdout, "nothing was stored"
    local = {"BEACON_ALLOW_LOCAL_WEBHOOKS": "1"}
    metadata = cli("alert", "notify", "--tenant", "acme", "--webhook", "http://169.254.169.254/", extra_env=local)
    assert metadata.returncode == 1 and "must use https" in metadata.stderr, "the switch allows loopback only"
    ok = cli("alert", "notify", "--tenant", "acme", "--webhook", "http://LOCALHOST:9000/a/../hook", extra_env=local)
    assert ok.returncode == 0, ok.stderr
    assert "notices to: no email, webhook http://localhost:9000/hook" in cli("alert", "list", "--tenant", "acme").stdout


def test_rules_budget_and_destinations_are_managed(cli):
    added = cli("alert", "add", "--tenant", "acme", "--id", "errors", "--metric", "error_rate", "--operator", ">",
                "--threshold", "2%", "--window", "6h")
    assert added.returncode == 0, added.stderr
    assert "error_rate > 2% over 6 h, at least 100 sent" in added.stderr
    assert cli("alert", "remove", "--tenant", "acme", "--id", "ses-complaint-rate").returncode == 0
    assert cli("alert", "budget", "--tenant", "acme", "--monthly", "500", "--currency", "USD").returncode == 0
    notify = cli("alert", "notify", "--tenant", "acme", "--email", "ops@acme.example", "--webhook",
                 "https://hooks.acme.example/beacon")
    assert notify.returncode == 0, notify.stderr
    assert notify.stdout.startswith("whsec_"), "the new secret is printed once"
    listed = cli("alert", "list", "--tenant", "acme").stdout
    assert "ses-bounce-rate (built-in): bounce_rate >= 5% over 24 h, at least 100 sent  [ok]" in listed
    assert "ses-complaint-rate (built-in): complaint_rate >= 0.1% over 24 h, at least 100 delivered  [disabled]" in listed
    assert "errors: error_rate > 2% over 6 h, at least 100 sent  [ok]" in listed
    assert "budget: 500.00 USD a month" in listed
    assert "notices to: ops@acme.example, webhook https://hooks.acme.example/beacon" in listed
    assert "no rule `nope`" in cli("alert", "remove", "--tenant", "acme", "--id", "nope").stderr
    evaluated = cli("alert", "evaluate", "--tenant", "acme", "--from", "alerts@example.com")
    assert evaluated.returncode == 0, evaluated.stderr
    assert json.loads(evaluated.stdout)[0]["rules"] == 2, "no traffic: judged, nothing fired"


def test_the_suppression_list_round_trips_through_the_cli(cli, tmp_path):
    assert cli("suppression", "add", "--tenant", "acme", "r-2", "r-1").returncode == 0
    assert cli("suppression", "add", "--tenant", "acme", "--channel", "sms", "r-3").returncode == 0
    check = cli("suppression", "check", "--tenant", "acme", "r-1", "r-9")
    assert check.returncode == 1, "exit 1 when any is suppressed"
    assert "r-1: suppressed since" in check.stdout and "(manual)" in check.stdout
    assert "r-9: not suppressed" in check.stdout
    out = tmp_path / "email.csv"
    assert cli("suppression", "export", "--tenant", "acme", "--out", str(out)).returncode == 0
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert [(r["recipient"], r["channel"], r["reasons"]) for r in rows] == [("r-1", "email", "manual"), ("r-2", "email", "manual")]
    assert cli("suppression", "remove", "--tenant", "acme", "r-1").returncode == 0
    gone = cli("suppression", "remove", "--tenant", "acme", "r-1")
    assert gone.returncode == 1 and "is not on the email list" in gone.stderr
    lines = cli("suppression", "export", "--tenant", "acme", "--format", "jsonl").stdout.splitlines()
    assert [json.loads(line)["recipient"] for line in lines] == ["r-2"]
