#!/usr/bin/env python3
"""Provisions a stack from the SAM template in a local AWS emulator (moto).

    .venv/bin/python scripts/provision.py --endpoint http://127.0.0.1:5000 [--stack beacon]
        [--template infra/template.yaml] [--public-base-url http://127.0.0.1:3000]
        [--param Key=Value ...] [--out FILE]

Reads the template, so local names always equal the ones CloudFormation would give, and
creates every resource type the emulator can stand in for: Kinesis streams, DynamoDB
tables, S3 buckets, Secrets Manager secrets, SQS queues, SES identities. Other types
(IAM, Lambda permissions, the HTTP API, Glue, Athena, alarms, schedules) are listed on
stderr as not emulated locally. Re-running on the same endpoint and stack is harmless:
what exists is kept (a secret keeps its value, so links signed earlier still verify).

Prints one JSON document (stdout, or --out FILE): the stack, every created resource's
name and ARN, each resolved Output, and per function its binary, its environment
(Globals merged with its own, every intrinsic resolved to a string), its HTTP routes,
schedules and Kinesis event sources. A URL of the HTTP API
(https://${HttpApi}.execute-api.${AWS::Region}.amazonaws.com) resolves to
--public-base-url, where the local gateway serves the routes.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import string
import sys
import time
import urllib.parse
from typing import Any, Callable

NO_VALUE = object()  # AWS::NoValue: the key or list item disappears

API_TYPES = {
    "AWS::Serverless::HttpApi",
    "AWS::Serverless::Api",
    "AWS::ApiGatewayV2::Api",
    "AWS::ApiGateway::RestApi",
}
FUNCTION_TYPES = {"AWS::Serverless::Function", "AWS::Lambda::Function"}
# SAM creates these when a function has an Api/HttpApi event and no ApiId.
IMPLICIT_APIS = {"ServerlessHttpApi": "AWS::Serverless::HttpApi", "ServerlessRestApi": "AWS::Serverless::Api"}
INTRINSICS = {
    "Ref", "Condition", "Fn::Sub", "Fn::GetAtt", "Fn::If", "Fn::Equals", "Fn::Not", "Fn::And",
    "Fn::Or", "Fn::Join", "Fn::Select", "Fn::Split", "Fn::GetAZs", "Fn::Base64", "Fn::FindInMap",
    "Fn::ImportValue", "Fn::ToJsonString", "Fn::Length",
}


class ProvisionError(Exception):
    pass


def log(message: str) -> None:
    print(f"provision: {message}", file=sys.stderr, flush=True)


# --- template -------------------------------------------------------------------------


def plain(value: Any) -> Any:
    """The decoder's node classes as plain dicts, lists and scalars."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, str):
        return str(value)
    return value


def load_template(path: str) -> dict:
    """Reads a YAML or JSON template; short-form tags (!Ref, !Sub, ...) come back in
    their long form, as cfn-lint (and CloudFormation) read them."""
    from cfnlint.decode import decode

    if not os.path.exists(path):
        raise ProvisionError(f"template {path} does not exist")
    template, matches = decode(path)
    if matches:
        raise ProvisionError(f"cannot read {path}: " + "; ".join(str(m) for m in matches))
    template = plain(template)
    if not isinstance(template.get("Resources"), dict):
        raise ProvisionError(f"{path} has no Resources")
    return template


def snake(name: str) -> str:
    """BatchSize -> batch_size, MaximumRecordAgeInSeconds -> maximum_record_age_in_seconds."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()


def env_string(value: Any) -> str:
    """A resolved value as CloudFormation passes it in an environment variable."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, str)):
        return str(value)
    raise ProvisionError(f"an environment variable resolved to a non-string: {value!r}")


# --- the stack --------------------------------------------------------------------------


class Stack:
    def __init__(self, template: dict, args: argparse.Namespace, clients: Callable[[str], Any]):
        self.template = template
        self.name = args.stack
        self.endpoint = args.endpoint
        self.region = args.region
        self.public_base_url = args.public_base_url.rstrip("/")
        self.client = clients
        self.account = "123456789012"  # moto's default; replaced by STS's answer
        self.resources: dict = template["Resources"]
        self.parameters = self._parameters(args.param)
        self.condition_values: dict[str, bool] = {}
        self.infos: dict[str, dict] = {}  # logical id -> what Ref/GetAtt give, once known
        self.in_progress: set[str] = set()
        self.not_emulated: list[str] = []

    # parameters and conditions

    def _parameters(self, overrides: list[str]) -> dict[str, Any]:
        declared = self.template.get("Parameters") or {}
        given: dict[str, str] = {}
        for item in overrides:
            key, sep, value = item.partition("=")
            if not sep:
                raise ProvisionError(f"--param {item!r}: expected Key=Value")
            if key not in declared:
                raise ProvisionError(f"--param {key}: the template declares no such parameter")
            given[key] = value
        values: dict[str, Any] = {}
        for key, spec in declared.items():
            if key in given:
                value = given[key]
            elif "Default" in spec:
                value = spec["Default"]
            else:
                raise ProvisionError(f"parameter {key} has no Default: pass --param {key}=VALUE")
            allowed = spec.get("AllowedValues")
            if allowed is not None and str(value) not in [str(a) for a in allowed]:
                raise ProvisionError(f"parameter {key}={value!r} is not one of {allowed}")
            kind = spec.get("Type", "String")
            if kind == "CommaDelimitedList" or kind.startswith("List<"):
                value = [] if value in ("", None) else [v.strip() for v in str(value).split(",")]
            elif not isinstance(value, str):
                value = json.dumps(value) if isinstance(value, bool) else str(value)
            values[key] = value
        return values

    def condition(self, name: str) -> bool:
        if name not in self.condition_values:
            conditions = self.template.get("Conditions") or {}
            if name not in conditions:
                raise ProvisionError(f"unknown condition {name}")
            self.condition_values[name] = bool(self.resolve(conditions[name]))
        return self.condition_values[name]

    def enabled(self, logical_id: str) -> bool:
        cond = self.resources[logical_id].get("Condition")
        return cond is None or self.condition(cond)

    # intrinsics

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            items = [self.resolve(v) for v in value]
            return [v for v in items if v is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            (key, arg), = value.items()
            if key in INTRINSICS:
                return self._intrinsic(key, arg)
        out = {}
        for k, v in value.items():
            r = self.resolve(v)
            if r is not NO_VALUE:
                out[k] = r
        return out

    def _intrinsic(self, key: str, arg: Any) -> Any:
        if key == "Ref":
            return self.ref(arg)
        if key == "Condition":
            return self.condition(arg)
        if key == "Fn::GetAtt":
            if isinstance(arg, str):
                arg = arg.split(".", 1)
            logical, attr = self.resolve(arg[0]), self.resolve(arg[1])
            return self.getatt(logical, attr)
        if key == "Fn::Sub":
            return self.sub(arg)
        if key == "Fn::If":
            cond, yes, no = arg
            return self.resolve(yes if self.condition(cond) else no)
        if key == "Fn::Equals":
            a, b = (self.resolve(x) for x in arg)
            return str(a) == str(b) if not isinstance(a, (list, dict)) else a == b
        if key == "Fn::Not":
            return not self.resolve(arg[0])
        if key == "Fn::And":
            return all(self.resolve(x) for x in arg)
        if key == "Fn::Or":
            return any(self.resolve(x) for x in arg)
        if key == "Fn::Join":
            sep, items = arg
            items = self.resolve(items)
            return self.local_api_urls(self.resolve(sep).join(env_string(i) for i in items))
        if key == "Fn::Select":
            index, items = self.resolve(arg[0]), self.resolve(arg[1])
            return items[int(index)]
        if key == "Fn::Split":
            sep, text = self.resolve(arg[0]), self.resolve(arg[1])
            return text.split(sep)
        if key == "Fn::GetAZs":
            return [f"{self.region}{z}" for z in "abc"]
        if key == "Fn::Base64":
            import base64

            return base64.b64encode(self.resolve(arg).encode()).decode()
        if key == "Fn::FindInMap":
            name, top, second = (self.resolve(x) for x in arg[:3])
            try:
                return self.template["Mappings"][name][top][second]
            except KeyError:
                raise ProvisionError(f"Fn::FindInMap {name}/{top}/{second}: no such entry") from None
        if key == "Fn::ToJsonString":
            return json.dumps(self.resolve(arg), separators=(",", ":"))
        if key == "Fn::Length":
            return len(self.resolve(arg))
        if key == "Fn::ImportValue":
            raise ProvisionError(f"Fn::ImportValue {arg!r}: other stacks' exports are not emulated")
        raise ProvisionError(f"unsupported intrinsic {key}")

    def sub(self, arg: Any) -> str:
        if isinstance(arg, list):
            text, variables = arg[0], {k: self.resolve(v) for k, v in (arg[1] or {}).items()}
        else:
            text, variables = arg, {}

        # The API's own URL is where the local gateway serves it.
        def api_url(match: re.Match) -> str:
            target = match.group(1)
            if target not in variables and self.type_of(target) in API_TYPES:
                return self.public_base_url
            return match.group(0)

        text = re.sub(
            r"https://\$\{([A-Za-z0-9]+)\}\.execute-api\.(?:\$\{AWS::Region\}|[a-z0-9-]+)"
            r"\.(?:\$\{AWS::URLSuffix\}|amazonaws\.com)",
            api_url,
            text,
        )

        def var(match: re.Match) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in variables:
                value = variables[name]
            elif "." in name and not name.startswith("AWS::"):
                logical, attr = name.split(".", 1)
                value = self.getatt(logical, attr)
            else:
                value = self.ref(name)
            return env_string(value)

        return self.local_api_urls(re.sub(r"\$\{([^}]+)\}", var, text))

    def local_api_urls(self, text: str) -> str:
        """https://<id of one of our APIs>.execute-api.<region>.amazonaws.com, however it
        was put together (Fn::Join, a Sub variable), is the local gateway."""
        ids = {info["attrs"].get("ApiId") for info in self.infos.values() if info.get("type") in API_TYPES}
        ids.discard(None)
        if not ids or ".execute-api." not in text:
            return text
        pattern = (r"https://(" + "|".join(re.escape(i) for i in sorted(ids)) +
                   r")\.execute-api\.[a-z0-9-]+\.amazonaws\.com(?:\.cn)?")
        return re.sub(pattern, lambda _: self.public_base_url, text)

    def type_of(self, logical_id: str) -> str | None:
        if logical_id in self.resources:
            return self.resources[logical_id].get("Type")
        return IMPLICIT_APIS.get(logical_id)

    def ref(self, name: str) -> Any:
        pseudo = {
            "AWS::StackName": self.name,
            "AWS::Region": self.region,
            "AWS::AccountId": self.account,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackId": f"arn:aws:cloudformation:{self.region}:{self.account}:stack/{self.name}/local",
            "AWS::NotificationARNs": [],
        }
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in pseudo:
            return pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        return self.info(name)["ref"]

    def getatt(self, logical_id: str, attr: str) -> Any:
        attrs = self.info(logical_id)["attrs"]
        if attr not in attrs:
            raise ProvisionError(
                f"Fn::GetAtt {logical_id}.{attr}: not emulated (known: {', '.join(sorted(attrs)) or 'none'})"
            )
        return attrs[attr]

    def info(self, logical_id: str) -> dict:
        """What Ref and GetAtt give for a resource, creating it first if it is emulated."""
        if logical_id in self.infos:
            return self.infos[logical_id]
        kind = self.type_of(logical_id)
        if kind is None:
            raise ProvisionError(f"reference to {logical_id}, which is neither a parameter nor a resource")
        if logical_id in self.in_progress:
            raise ProvisionError(f"circular reference through {logical_id}")
        self.in_progress.add(logical_id)
        try:
            props = self.resources.get(logical_id, {}).get("Properties") or {}
            emulator = EMULATORS.get(kind)
            if emulator is not None and logical_id in self.resources:
                if not self.enabled(logical_id):
                    raise ProvisionError(f"reference to {logical_id}, whose Condition is false")
                info = emulator(self, logical_id, props)
                info["emulated"] = True
            else:
                info = self.synthetic(logical_id, kind, props)
                info["emulated"] = False
            info = {"type": kind, **info}
            self.infos[logical_id] = info
            return info
        finally:
            self.in_progress.discard(logical_id)

    def synthetic(self, logical_id: str, kind: str, props: dict) -> dict:
        """Plausible values for a resource that exists only in AWS, for references to it."""
        region, account = self.region, self.account
        if kind in API_TYPES:
            api_id = re.sub(r"[^a-z0-9]", "", f"{self.name}{logical_id}".lower())[:10]
            return {"ref": api_id, "attrs": {"ApiEndpoint": self.public_base_url, "ApiId": api_id,
                                             "RootResourceId": "root"}}
        if kind in FUNCTION_TYPES:
            name = self.resolve(props.get("FunctionName")) if "FunctionName" in props else f"{self.name}-{logical_id}"
            return {"ref": name, "attrs": {"Arn": f"arn:aws:lambda:{region}:{account}:function:{name}"}}
        if kind == "AWS::IAM::Role":
            name = self.resolve(props.get("RoleName")) if "RoleName" in props else f"{self.name}-{logical_id}"
            return {"ref": name, "attrs": {"Arn": f"arn:aws:iam::{account}:role/{name}", "RoleId": name}}
        service = kind.split("::")[1].lower() if kind.count("::") >= 2 else "unknown"
        name = f"{self.name}-{logical_id}"
        return {"ref": name, "attrs": {"Arn": f"arn:aws:{service}:{region}:{account}:{logical_id.lower()}/{name}"}}

    # the whole template

    def provision(self) -> dict:
        try:
            self.account = self.client("sts").get_caller_identity()["Account"]
        except Exception as err:  # noqa: BLE001 - any failure here means no emulator
            raise ProvisionError(f"cannot reach the emulator: {err}") from err
        for logical_id, resource in self.resources.items():
            kind = resource.get("Type", "")
            if not self.enabled(logical_id):
                log(f"skipped {logical_id} ({kind}): its condition is false")
            elif kind in EMULATORS:
                self.info(logical_id)
            elif kind not in FUNCTION_TYPES:
                self.not_emulated.append(f"{logical_id} ({kind})")
        self.sender_identities()
        functions = {
            logical_id: self.function(logical_id, resource)
            for logical_id, resource in self.resources.items()
            if resource.get("Type") in FUNCTION_TYPES and self.enabled(logical_id)
        }
        for item in self.not_emulated:
            log(f"not emulated locally: {item}")
        return {
            "stack": self.name,
            "endpoint": self.endpoint,
            "region": self.region,
            "account": self.account,
            "parameters": dict(self.parameters),
            "resources": {
                logical_id: {k: v for k, v in info.items() if k not in ("ref", "attrs", "emulated")}
                for logical_id, info in self.infos.items()
                if info["emulated"]
            },
            "outputs": self.outputs(),
            "functions": functions,
        }

    def sender_identities(self) -> None:
        """A parameter naming the sender (SenderEmail, FromAddress, SenderDomain, ...)
        becomes an SES identity, as if verified in the account."""
        for key, value in self.parameters.items():
            if value and isinstance(value, str) and re.search(r"(?i)sender|from(email|address|domain)", key):
                create_email_identity(self, value, f"parameter {key}")

    def outputs(self) -> dict:
        out = {}
        for key, spec in (self.template.get("Outputs") or {}).items():
            if "Condition" in spec and not self.condition(spec["Condition"]):
                continue
            try:
                value = self.resolve(spec.get("Value"))
            except ProvisionError as err:
                log(f"output {key} not resolved locally: {err}")
                continue
            if value is not NO_VALUE:
                out[key] = value if isinstance(value, str) else json.dumps(value)
        return out

    def function(self, logical_id: str, resource: dict) -> dict:
        globals_ = {}
        if resource["Type"] == "AWS::Serverless::Function":
            globals_ = (self.template.get("Globals") or {}).get("Function") or {}
        props = resource.get("Properties") or {}
        raw_env = dict(((globals_.get("Environment") or {}).get("Variables")) or {})
        raw_env.update(((props.get("Environment") or {}).get("Variables")) or {})
        env = {}
        for key, raw in raw_env.items():
            try:
                value = self.resolve(raw)
            except ProvisionError as err:
                raise ProvisionError(f"{logical_id}: environment variable {key}: {err}") from err
            if value is not NO_VALUE:
                env[key] = env_string(value)
        metadata = resource.get("Metadata") or {}
        binary = (metadata.get("BuildProperties") or {}).get("Binary") or default_binary(logical_id)
        routes, schedules, streams = [], [], []
        for event_name, event in (props.get("Events") or {}).items():
            kind = event.get("Type")
            ep = event.get("Properties") or {}
            if kind in ("HttpApi", "Api"):
                method = str(self.resolve(ep.get("Method", "ANY"))).upper()
                path = self.resolve(ep.get("Path", "$default" if kind == "HttpApi" else "/"))
                if method == "X-AMAZON-APIGATEWAY-ANY-METHOD":
                    method = "ANY"
                routes.append({"method": method, "path": path})
            elif kind in ("Schedule", "ScheduleV2"):
                schedules.append(self.schedule(event_name, kind, ep))
            elif kind == "Kinesis":
                streams.append(self.stream_source(event_name, ep))
            else:
                log(f"{logical_id}: event {event_name} of type {kind} is not emulated locally")
        props_g = {**globals_, **props}
        return {
            "binary": binary,
            "env": env,
            "routes": routes,
            "schedules": schedules,
            "streams": streams,
            "timeout": int(self.resolve(props_g.get("Timeout", 3))),
            "memory_size": int(self.resolve(props_g.get("MemorySize", 128))),
        }

    def schedule(self, event_name: str, kind: str, ep: dict) -> dict:
        resolved = self.resolve(ep)
        raw_input = resolved.get("Input")
        try:
            parsed = json.loads(raw_input) if isinstance(raw_input, str) else raw_input
        except json.JSONDecodeError as err:
            raise ProvisionError(f"schedule {event_name}: Input is not JSON: {err}") from None
        out = {
            "name": event_name,
            "event": event_name,
            "type": kind,
            "expression": resolved.get("Schedule") or resolved.get("ScheduleExpression"),
            "input": parsed,
            "enabled": resolved.get("Enabled", resolved.get("State", "ENABLED") != "DISABLED"),
        }
        for key, value in resolved.items():
            if key not in ("Schedule", "ScheduleExpression", "Input", "Enabled", "State"):
                out[snake(key)] = value
        return out

    def stream_source(self, event_name: str, ep: dict) -> dict:
        resolved = self.resolve(ep)
        arn = resolved.get("Stream")
        if not isinstance(arn, str):
            raise ProvisionError(f"Kinesis event {event_name}: Stream did not resolve to an ARN")
        window = resolved.get("MaximumBatchingWindowInSeconds", 0)
        out = {
            "name": event_name,
            "event": event_name,
            "stream": arn.rsplit("/", 1)[-1],
            "stream_arn": arn,
            "batch_size": resolved.get("BatchSize", 100),
            "starting_position": resolved.get("StartingPosition", "LATEST"),
            "maximum_batching_window_seconds": window,
            "maximum_batching_window_in_seconds": window,
            "enabled": resolved.get("Enabled", True),
            # Lambda's defaults: no bisection, retry and keep records forever (-1).
            "bisect_batch_on_function_error": resolved.get("BisectBatchOnFunctionError", False),
            "maximum_retry_attempts": resolved.get("MaximumRetryAttempts", -1),
            "maximum_record_age_seconds": resolved.get("MaximumRecordAgeInSeconds", -1),
            "function_response_types": list(resolved.get("FunctionResponseTypes") or []),
            "destination": ((resolved.get("DestinationConfig") or {}).get("OnFailure") or {}).get("Destination"),
        }
        for key, value in resolved.items():
            if key not in ("Stream", "BatchSize", "StartingPosition", "MaximumBatchingWindowInSeconds", "Enabled",
                           "BisectBatchOnFunctionError", "MaximumRetryAttempts", "FunctionResponseTypes"):
                out[snake(key)] = value
        return out


def default_binary(logical_id: str) -> str:
    """OpenPixelFunction -> open-pixel, when the template names no Binary."""
    base = re.sub(r"Function$", "", logical_id) or logical_id
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "-", base).lower()


# --- emulated resource types --------------------------------------------------------


def error_code(err: Exception) -> str:
    return getattr(err, "response", {}).get("Error", {}).get("Code", "")


def kinesis_stream(stack: Stack, logical_id: str, props: dict) -> dict:
    client = stack.client("kinesis")
    name = stack.resolve(props["Name"]) if "Name" in props else f"{stack.name}-{logical_id}"
    mode = (stack.resolve(props.get("StreamModeDetails")) or {}).get("StreamMode")
    request: dict[str, Any] = {"StreamName": name}
    if mode == "ON_DEMAND":
        request["StreamModeDetails"] = {"StreamMode": "ON_DEMAND"}
    else:
        request["ShardCount"] = int(stack.resolve(props.get("ShardCount", 1)))
        if mode:
            request["StreamModeDetails"] = {"StreamMode": mode}
    created = False
    try:
        client.create_stream(**request)
        created = True
    except Exception as err:
        if error_code(err) != "ResourceInUseException":
            raise
    summary = wait_for(lambda: client.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"],
                       lambda s: s["StreamStatus"] == "ACTIVE", f"stream {name} to become ACTIVE")
    if created:
        hours = int(stack.resolve(props.get("RetentionPeriodHours", 24)))
        if hours > summary.get("RetentionPeriodHours", 24):
            client.increase_stream_retention_period(StreamName=name, RetentionPeriodHours=hours)
        encryption = stack.resolve(props.get("StreamEncryption"))
        if encryption:
            try:
                client.start_stream_encryption(StreamName=name, EncryptionType=encryption["EncryptionType"],
                                               KeyId=encryption["KeyId"])
            except Exception as err:  # noqa: BLE001 - fidelity only; the stream works without
                log(f"stream {name}: encryption not emulated ({err})")
        log(f"created stream {name} ({mode or 'PROVISIONED'})")
    else:
        log(f"stream {name} exists")
    arn = summary["StreamARN"]
    return {"name": name, "arn": arn, "ref": name, "attrs": {"Arn": arn}}


def dynamodb_table(stack: Stack, logical_id: str, props: dict) -> dict:
    client = stack.client("dynamodb")
    p = stack.resolve(props)
    name = p.get("TableName") or f"{stack.name}-{logical_id}"
    # Without a BillingMode, on demand unless throughput is declared (CloudFormation's
    # PROVISIONED default would need ProvisionedThroughput anyway).
    billing = p.get("BillingMode") or ("PROVISIONED" if p.get("ProvisionedThroughput") else "PAY_PER_REQUEST")
    request: dict[str, Any] = {
        "TableName": name,
        "KeySchema": p["KeySchema"],
        "AttributeDefinitions": p["AttributeDefinitions"],
        "BillingMode": billing,
    }
    default_throughput = {"ReadCapacityUnits": 5, "WriteCapacityUnits": 5}
    if billing == "PROVISIONED":
        request["ProvisionedThroughput"] = p.get("ProvisionedThroughput", default_throughput)
    for key in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
        if p.get(key):
            indexes = []
            for index in p[key]:
                index = {k: v for k, v in index.items() if k in ("IndexName", "KeySchema", "Projection",
                                                                   "ProvisionedThroughput")}
                if billing == "PAY_PER_REQUEST" or key == "LocalSecondaryIndexes":
                    index.pop("ProvisionedThroughput", None)
                elif "ProvisionedThroughput" not in index:
                    index["ProvisionedThroughput"] = default_throughput
                indexes.append(index)
            request[key] = indexes
    if p.get("StreamSpecification"):
        request["StreamSpecification"] = {"StreamEnabled": True,
                                          "StreamViewType": p["StreamSpecification"]["StreamViewType"]}
    sse = p.get("SSESpecification") or {}
    if sse.get("SSEEnabled"):
        request["SSESpecification"] = {"Enabled": True, **({"SSEType": sse["SSEType"]} if "SSEType" in sse else {}),
                                       **({"KMSMasterKeyId": sse["KMSMasterKeyId"]} if "KMSMasterKeyId" in sse else {})}
    try:
        client.create_table(**request)
        log(f"created table {name}")
    except Exception as err:
        if error_code(err) != "ResourceInUseException":
            raise
        log(f"table {name} exists")
    table = wait_for(lambda: client.describe_table(TableName=name)["Table"],
                     lambda t: t["TableStatus"] == "ACTIVE", f"table {name} to become ACTIVE")
    ttl = p.get("TimeToLiveSpecification")
    if ttl and ttl.get("Enabled"):
        current = client.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
        if current.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING"):
            client.update_time_to_live(TableName=name, TimeToLiveSpecification={
                "Enabled": True, "AttributeName": ttl["AttributeName"]})
            log(f"table {name}: time to live on {ttl['AttributeName']}")
    pitr = p.get("PointInTimeRecoverySpecification") or {}
    if pitr.get("PointInTimeRecoveryEnabled"):
        try:
            client.update_continuous_backups(TableName=name, PointInTimeRecoverySpecification={
                "PointInTimeRecoveryEnabled": True})
        except Exception as err:  # noqa: BLE001 - fidelity only
            log(f"table {name}: point-in-time recovery not emulated ({err})")
    info = {"name": name, "arn": table["TableArn"], "ref": name, "attrs": {"Arn": table["TableArn"]}}
    if table.get("LatestStreamArn"):
        info["stream_arn"] = table["LatestStreamArn"]
        info["attrs"]["StreamArn"] = table["LatestStreamArn"]
    return info


def s3_bucket(stack: Stack, logical_id: str, props: dict) -> dict:
    client = stack.client("s3")
    # CloudFormation's generated bucket names are lowercase too (S3 allows nothing else).
    name = stack.resolve(props["BucketName"]) if "BucketName" in props else f"{stack.name}-{logical_id}".lower()
    request: dict[str, Any] = {"Bucket": name}
    if stack.region != "us-east-1":
        request["CreateBucketConfiguration"] = {"LocationConstraint": stack.region}
    try:
        client.head_bucket(Bucket=name)
        log(f"bucket {name} exists")
    except Exception as err:
        if error_code(err) not in ("404", "NoSuchBucket", "NotFound"):
            raise
        try:
            client.create_bucket(**request)
            log(f"created bucket {name}")
        except Exception as err2:
            if error_code(err2) != "BucketAlreadyOwnedByYou":
                raise
            log(f"bucket {name} exists")
    versioning = stack.resolve(props.get("VersioningConfiguration"))
    if versioning and versioning.get("Status"):
        client.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": versioning["Status"]})
    arn = f"arn:aws:s3:::{name}"
    return {"name": name, "arn": arn, "ref": name, "attrs": {
        "Arn": arn,
        "DomainName": f"{name}.s3.amazonaws.com",
        "RegionalDomainName": f"{name}.s3.{stack.region}.amazonaws.com",
    }}


def generate_secret(spec: dict) -> str:
    """A value as Secrets Manager's GenerateSecretString would make it."""
    length = int(spec.get("PasswordLength", 32))
    exclude = set(spec.get("ExcludeCharacters", ""))
    groups = []
    if not spec.get("ExcludeLowercase"):
        groups.append(string.ascii_lowercase)
    if not spec.get("ExcludeUppercase"):
        groups.append(string.ascii_uppercase)
    if not spec.get("ExcludeNumbers"):
        groups.append(string.digits)
    if not spec.get("ExcludePunctuation"):
        groups.append("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")
    if spec.get("IncludeSpace"):
        groups.append(" ")
    groups = ["".join(c for c in g if c not in exclude) for g in groups]
    groups = [g for g in groups if g]
    if not groups:
        raise ProvisionError("GenerateSecretString excludes every character")
    alphabet = "".join(groups)
    while True:
        value = "".join(secrets.choice(alphabet) for _ in range(length))
        if not spec.get("RequireEachIncludedType", True) or length < len(groups) \
                or all(any(c in g for c in value) for g in groups):
            break
    template = spec.get("SecretStringTemplate")
    key = spec.get("GenerateStringKey")
    if template is not None and key:
        document = json.loads(template)
        document[key] = value
        return json.dumps(document, separators=(",", ":"))
    return value


def secret(stack: Stack, logical_id: str, props: dict) -> dict:
    client = stack.client("secretsmanager")
    p = stack.resolve(props)
    name = p.get("Name") or f"{stack.name}-{logical_id}"
    try:
        arn = client.describe_secret(SecretId=name)["ARN"]
        log(f"secret {name} exists (its value is kept)")
    except Exception as err:
        if error_code(err) != "ResourceNotFoundException":
            raise
        value = p["SecretString"] if "SecretString" in p else generate_secret(p.get("GenerateSecretString") or {})
        request = {"Name": name, "SecretString": value}
        if p.get("Description"):
            request["Description"] = p["Description"]
        arn = client.create_secret(**request)["ARN"]
        log(f"created secret {name}")
    # Ref of a secret is its ARN, as in CloudFormation.
    return {"name": name, "arn": arn, "ref": arn, "attrs": {"Id": arn, "Arn": arn}}


def sqs_queue(stack: Stack, logical_id: str, props: dict) -> dict:
    client = stack.client("sqs")
    p = stack.resolve(props)
    fifo = bool(p.get("FifoQueue"))
    name = p.get("QueueName") or f"{stack.name}-{logical_id}" + (".fifo" if fifo else "")
    attributes = {}
    for key, value in p.items():
        if key in ("QueueName", "Tags"):
            continue
        if key in ("RedrivePolicy", "RedriveAllowPolicy") and isinstance(value, dict):
            value = json.dumps(value)
        attributes[key] = env_string(value)
    try:
        url = client.get_queue_url(QueueName=name)["QueueUrl"]
        log(f"queue {name} exists")
    except Exception as err:
        if error_code(err) not in ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"):
            raise
        url = client.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        log(f"created queue {name}")
    arn = client.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return {"name": name, "arn": arn, "url": url, "ref": url,
            "attrs": {"Arn": arn, "QueueName": name, "QueueUrl": url}}


def sns_topic(stack: Stack, logical_id: str, props: dict) -> dict:
    client = stack.client("sns")
    p = stack.resolve(props)
    name = p.get("TopicName") or f"{stack.name}-{logical_id}"
    # CreateTopic is idempotent: the same name gives the same ARN.
    arn = client.create_topic(Name=name)["TopicArn"]
    log(f"topic {name} ready")
    return {"name": name, "arn": arn, "ref": arn, "attrs": {"TopicArn": arn, "TopicName": name}}


def create_email_identity(stack: Stack, identity: str, why: str) -> None:
    client = stack.client("sesv2")
    try:
        client.get_email_identity(EmailIdentity=identity)
        log(f"email identity {identity} exists")
        return
    except Exception as err:
        if error_code(err) not in ("NotFoundException", "NotFound"):
            raise
    try:
        client.create_email_identity(EmailIdentity=identity)
        log(f"created email identity {identity} ({why})")
    except Exception as err:
        if error_code(err) != "AlreadyExistsException":
            raise
        log(f"email identity {identity} exists")


def ses_identity(stack: Stack, logical_id: str, props: dict) -> dict:
    identity = stack.resolve(props["EmailIdentity"])
    create_email_identity(stack, identity, logical_id)
    arn = f"arn:aws:ses:{stack.region}:{stack.account}:identity/{identity}"
    return {"name": identity, "arn": arn, "ref": identity, "attrs": {}}


EMULATORS: dict[str, Callable[[Stack, str, dict], dict]] = {
    "AWS::Kinesis::Stream": kinesis_stream,
    "AWS::DynamoDB::Table": dynamodb_table,
    "AWS::S3::Bucket": s3_bucket,
    "AWS::SecretsManager::Secret": secret,
    "AWS::SQS::Queue": sqs_queue,
    "AWS::SNS::Topic": sns_topic,
    "AWS::SES::EmailIdentity": ses_identity,
}


def wait_for(get: Callable[[], Any], done: Callable[[Any], bool], what: str, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = get()
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise ProvisionError(f"timed out waiting for {what}")
        time.sleep(0.1)


# --- main -----------------------------------------------------------------------------

def parse_args(argv: list[str]) -> argparse.Namespace:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--endpoint", default=os.environ.get("AWS_ENDPOINT_URL"),
                        help="the emulator's URL (default: $AWS_ENDPOINT_URL)")
    parser.add_argument("--stack", default="beacon", help="stack name (default: beacon)")
    parser.add_argument("--template", default=os.path.join(root, "infra", "template.yaml"))
    parser.add_argument("--public-base-url", default="http://127.0.0.1:3000",
                        help="what the HTTP API's URL is locally (default: http://127.0.0.1:3000)")
    parser.add_argument("--region", default=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
                        or "us-east-1")
    parser.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                        help="a template parameter's value (repeatable)")
    parser.add_argument("--out", help="write the JSON here instead of stdout")
    args = parser.parse_args(argv)
    if not args.endpoint:
        parser.error("no emulator: pass --endpoint URL or set AWS_ENDPOINT_URL (scripts/moto.sh start)")
    host = urllib.parse.urlparse(args.endpoint).hostname or ""
    if not host or host.endswith("amazonaws.com") or host.endswith("amazonaws.com.cn"):
        parser.error(f"--endpoint {args.endpoint}: this provisions a local emulator, never AWS")
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9-]{0,127}", args.stack):
        parser.error(f"--stack {args.stack!r}: a stack name is letters, digits and hyphens, starting with a letter")
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    try:
        import boto3
        from botocore.config import Config

        session = boto3.session.Session(
            aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID") or "testing",
            aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY") or "testing",
            region_name=args.region,
        )
        config = Config(connect_timeout=5, read_timeout=60, retries={"max_attempts": 3, "mode": "standard"})
        cache: dict[str, Any] = {}

        def client(service: str) -> Any:
            if service not in cache:
                cache[service] = session.client(service, endpoint_url=args.endpoint, config=config)
            return cache[service]

        template = load_template(args.template)
        log(f"provisioning stack {args.stack} from {args.template} at {args.endpoint}")
        result = Stack(template, args, client).provision()
    except ProvisionError as err:
        log(f"ERROR: {err}")
        return 1
    except Exception as err:  # noqa: BLE001 - a clear line instead of a traceback
        log(f"ERROR: {type(err).__name__}: {err}")
        return 1
    text = json.dumps(result, indent=2) + "\n"
    if args.out:
        tmp = args.out + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, args.out)
        log(f"wrote {args.out}")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
