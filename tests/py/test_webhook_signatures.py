"""Provider webhooks signed by an independent implementation (Python's `cryptography`
and `hmac`), posted through the local gateway to the ingest-webhooks function:
signatures made the providers' way verify; every single-byte change of the signed
body, the signature or the timestamp is refused, as are stale timestamps, replayed
Mailgun tokens and wrong Postmark tokens; and nothing refused reaches the stream.
Credentials are stored with the `beacon provider` command, as an operator would."""

import base64
import hashlib
import hmac
import json
import os
import subprocess
import time
import urllib.parse
import uuid

import boto3
import pytest
import requests
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from test_browser import TARGET, gateway  # noqa: F401 (the fixture)
from test_lambda_emulator import stream_events

TENANT = "acme"


def provider_add(env, stack, provider, secret, tenant=TENANT):
    cli_env = dict(env, BEACON_INGEST_KEYS_SECRET=f"{stack}/ingest-keys", BEACON_PROVIDERS_TABLE=f"{stack}-providers")
    done = subprocess.run([str(TARGET / "beacon"), "provider", "add", "--tenant", tenant, provider],
                          input=secret, env=cli_env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert secret not in done.stdout + done.stderr, "the credential is never printed"
    return done


def flipped(data: bytes, i: int) -> bytes:
    return data[:i] + bytes([data[i] ^ 0x01]) + data[i + 1:]


def flipped_text(text: str, i: int) -> str:
    """`text` with character i replaced by another printable one."""
    c = text[i]
    other = "B" if c != "B" else "C"
    return text[:i] + other + text[i + 1:]


@pytest.fixture
def hooks(gateway):  # noqa: F811
    url, stack, env = gateway
    session = requests.Session()
    kinesis = boto3.client("kinesis", endpoint_url=env["AWS_ENDPOINT_URL"], region_name="us-east-1")
    return url, stack, env, session, lambda: [e for e in stream_events(kinesis, f"{stack}-events") if e.get("provider")]


def test_sendgrid_signatures(hooks):
    url, stack, env, http, provider_events = hooks
    key = ec.generate_private_key(ec.SECP256R1())
    public = base64.b64encode(key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).decode()
    provider_add(env, stack, "sendgrid", public)
    listed = subprocess.run([str(TARGET / "beacon"), "provider", "list", "--tenant", TENANT],
                            env=dict(env, BEACON_PROVIDERS_TABLE=f"{stack}-providers"), capture_output=True, text=True)
    assert listed.returncode == 0 and "sendgrid" in listed.stdout and public not in listed.stdout

    at = int(time.time()) - 30
    body = json.dumps([
        {"email": "ann@example.com", "timestamp": at, "event": "delivered", "sg_event_id": "e-1",
         "sg_message_id": "m-1.filter", "beacon-campaign": "sig"},
        {"email": "bob@example.com", "timestamp": at, "event": "open", "sg_event_id": "e-2",
         "sg_message_id": "m-2.filter", "useragent": "Mozilla/5.0", "ip": "192.0.2.7", "sg_machine_open": True,
         "beacon-campaign": "sig"},
    ]).encode()

    def post(body, signature, timestamp):
        return http.post(f"{url}/v1/webhooks/sendgrid/{TENANT}", data=body, headers={
            "content-type": "application/json",
            "x-twilio-email-event-webhook-signature": signature,
            "x-twilio-email-event-webhook-timestamp": timestamp})

    def sign(body, timestamp):
        return base64.b64encode(key.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))).decode()

    timestamp = str(int(time.time()))
    signature = sign(body, timestamp)
    ok = post(body, signature, timestamp)
    assert ok.status_code == 200, ok.text
    assert ok.json()["recorded"] == 2

    refused = []
    for i in range(len(body)):
        refused.append(post(flipped(body, i), signature, timestamp).status_code)
    for i in range(len(signature)):
        refused.append(post(body, flipped_text(signature, i), timestamp).status_code)
    for i in range(len(timestamp)):
        refused.append(post(body, signature, flipped_text(timestamp, i)).status_code)
    assert set(refused) == {401}, sorted(set(refused))
    stale = str(int(time.time()) - 600)
    answer = post(body, sign(body, stale), stale)
    assert answer.status_code == 401 and answer.json()["error"]["code"] == "stale_timestamp"
    assert post(body, "", timestamp).status_code == 401
    # A tenant without a credential, or another tenant's path: refused, not recorded.
    assert post(body, signature, timestamp).status_code == 200
    other = http.post(f"{url}/v1/webhooks/sendgrid/globex", data=body, headers={
        "x-twilio-email-event-webhook-signature": signature, "x-twilio-email-event-webhook-timestamp": timestamp})
    assert other.status_code == 403 and other.json()["error"]["code"] == "unknown_tenant"

    events = provider_events()
    assert len(events) == 4, "two accepted posts of two events; nothing refused was recorded"
    assert all(e["provider"] == "sendgrid" and e["tenant_id"] == TENANT for e in events)
    assert not any("example.com" in json.dumps(e) for e in events), "addresses are hashed"
    opens = [e for e in events if e["type"] == "message.opened"]
    assert opens and all(e["context"]["network"] == "provider-flagged" for e in opens)


def test_mailgun_signatures_and_replays(hooks):
    url, stack, env, http, provider_events = hooks
    signing_key = "key-" + uuid.uuid4().hex
    provider_add(env, stack, "mailgun", signing_key)

    def payload(token, timestamp=None, signature=None):
        timestamp = timestamp or str(int(time.time()))
        signature = signature or hmac.new(signing_key.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()
        return {"signature": {"timestamp": timestamp, "token": token, "signature": signature},
                "event-data": {"event": "delivered", "id": token[:22], "timestamp": time.time() - 20,
                               "recipient": "ann@example.com",
                               "message": {"headers": {"message-id": f"{token}@mg.example.com"}},
                               "user-variables": {"beacon-campaign": "sig"}}}

    def post(p):
        return http.post(f"{url}/v1/webhooks/mailgun/{TENANT}", json=p)

    first = payload(uuid.uuid4().hex * 2)
    assert post(first).status_code == 200
    again = post(first)
    assert again.status_code == 403 and again.json()["error"]["code"] == "replayed"

    good = payload(uuid.uuid4().hex * 2)
    sig = good["signature"]
    for field in ("signature", "timestamp", "token"):
        for i in range(len(sig[field])):
            changed = json.loads(json.dumps(good))
            changed["signature"][field] = flipped_text(sig[field], i)
            assert post(changed).status_code == 401, (field, i)
    stale = str(int(time.time()) - 3600)
    assert post(payload(uuid.uuid4().hex * 2, timestamp=stale)).status_code == 401
    assert post(good).status_code == 200, "refusals did not burn the token"
    assert len([e for e in provider_events() if e["provider"] == "mailgun"]) == 2


def test_twilio_signatures(hooks):
    url, stack, env, http, provider_events = hooks
    token = uuid.uuid4().hex
    provider_add(env, stack, "twilio", token)
    endpoint = f"{url}/v1/webhooks/twilio/{TENANT}?beacon-campaign=sig-sms"
    params = {"AccountSid": "AC" + "0" * 32, "ApiVersion": "2010-04-01", "From": "+15550009999",
              "MessageSid": "SM" + "1" * 32, "MessageStatus": "delivered", "SmsSid": "SM" + "1" * 32,
              "SmsStatus": "delivered", "To": "+15550100001"}
    data = endpoint + "".join(k + params[k] for k in sorted(params))
    signature = base64.b64encode(hmac.new(token.encode(), data.encode(), hashlib.sha1).digest()).decode()
    body = urllib.parse.urlencode(params).encode()

    def post(body, signature, target=endpoint):
        return http.post(target, data=body, headers={
            "content-type": "application/x-www-form-urlencoded", "x-twilio-signature": signature})

    ok = post(body, signature)
    assert ok.status_code == 200, ok.text
    codes = {post(flipped(body, i), signature).status_code for i in range(len(body))}
    codes |= {post(body, flipped_text(signature, i)).status_code for i in range(len(signature))}
    # The URL is signed too: another campaign in the query is another signature.
    codes.add(post(body, signature, endpoint.replace("sig-sms", "sig-smz")).status_code)
    assert codes == {401}, codes
    events = [e for e in provider_events() if e["provider"] == "twilio"]
    assert len(events) == 1
    assert (events[0]["type"], events[0]["channel"], events[0]["campaign_id"]) == ("message.delivered", "sms", "sig-sms")
    assert "+1555" not in json.dumps(events[0])


def test_postmark_tokens(hooks):
    url, stack, env, http, provider_events = hooks
    token = uuid.uuid4().hex
    provider_add(env, stack, "postmark", token)
    body = {"RecordType": "Delivery", "ServerID": 23, "MessageStream": "outbound", "MessageID": "pm-1",
            "Recipient": "ann@example.com", "Tag": "sig", "DeliveredAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 30)),
            "Details": "Test delivery webhook details", "Metadata": {}}
    target = f"{url}/v1/webhooks/postmark/{TENANT}"
    assert http.post(target, json=body, auth=("beacon", token)).status_code == 200
    assert http.post(target, json=body, headers={"x-beacon-webhook-token": token}).status_code == 200
    assert http.post(target, json=body, auth=("beacon", token[:-1] + "x")).status_code == 401
    assert http.post(target, json=body).status_code == 401
    events = [e for e in provider_events() if e["provider"] == "postmark"]
    assert len(events) == 2 and len({e["event_id"] for e in events}) == 1, "a repeat keeps its id"
