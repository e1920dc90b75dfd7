"""Shared fixtures for the Python-side tests.

- `repo_root`, `venv_bin`: where the project and its virtualenv's tools are.
- `moto_endpoint`: a moto server for this test session (started here on a free loopback
  port through scripts/moto_server.py, as scripts/moto.sh starts it, and stopped
  afterwards; `AWS_ENDPOINT_URL`, when set, names one to reuse).
- `aws`: `aws("kinesis")` is a boto3 client for the emulator.
- `stack_name`: a fresh stack name per test, so tests never share resources.
- `provision`: runs scripts/provision.py and returns its JSON.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Whatever the caller's shell holds, the tests talk to the emulator only.
for key, value in {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
}.items():
    os.environ[key] = value
for key in ("AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_PROFILE"):
    os.environ.pop(key, None)


def _venv_bin() -> Path:
    venv = os.environ.get("BEACON_VENV")
    if venv:
        return Path(venv) / "bin"
    default = ROOT / ".venv" / "bin"
    return default if default.exists() else Path(sys.executable).parent


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def venv_bin() -> Path:
    return _venv_bin()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_answering(url: str, proc: subprocess.Popen | None, log: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(url + "/moto-api/", timeout=2)
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            pass
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"moto_server exited with {proc.returncode}; its log:\n{log.read_text()}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"moto_server did not answer on {url} within {timeout}s; its log:\n{log.read_text()}")
        time.sleep(0.1)


@pytest.fixture(scope="session")
def moto_endpoint(venv_bin: Path, tmp_path_factory: pytest.TempPathFactory):
    existing = os.environ.get("AWS_ENDPOINT_URL")
    if existing:
        yield existing
        return
    if not (venv_bin / "moto_server").exists():
        pytest.fail(f"{venv_bin / 'moto_server'} is missing: run scripts/venv.sh first")
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    endpoint = proc = None
    for _ in range(3):  # the free port can be taken before moto binds it
        port = free_port()
        endpoint = f"http://127.0.0.1:{port}"
        with open(log, "w") as out:
            proc = subprocess.Popen([str(venv_bin / "python"), str(ROOT / "scripts" / "moto_server.py"),
                                     "-H", "127.0.0.1", "-p", str(port)],
                                    stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_until_answering(endpoint, proc, log)
            break
        except RuntimeError:
            proc.kill()
            proc.wait()
            if "in use" not in log.read_text():
                raise
    else:
        raise RuntimeError(f"moto_server found no free port; its log:\n{log.read_text()}")
    os.environ["AWS_ENDPOINT_URL"] = endpoint
    try:
        yield endpoint
    finally:
        os.environ.pop("AWS_ENDPOINT_URL", None)
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def aws(moto_endpoint: str):
    import boto3

    clients: dict[str, object] = {}

    def client(service: str):
        if service not in clients:
            clients[service] = boto3.client(service, endpoint_url=moto_endpoint, region_name="us-east-1")
        return clients[service]

    return client


@pytest.fixture
def stack_name() -> str:
    return "t" + uuid.uuid4().hex[:12]


class ProvisionFailed(AssertionError):
    pass


@pytest.fixture(scope="session")
def provision(moto_endpoint: str, venv_bin: Path):
    """provision(stack, template=None, params=(), public_base_url=..., check=True) ->
    the parsed JSON (or, with check=False, the CompletedProcess). `provision.last_stderr`
    is the last run's progress output."""

    def run(stack: str, template: str | Path | None = None, params: tuple | list = (),
            public_base_url: str = "http://127.0.0.1:3000", check: bool = True, extra: list | None = None):
        cmd = [str(venv_bin / "python"), str(ROOT / "scripts" / "provision.py"),
               "--endpoint", moto_endpoint, "--stack", stack, "--public-base-url", public_base_url]
        if template is not None:
            cmd += ["--template", str(template)]
        for param in params:
            cmd += ["--param", param]
        cmd += extra or []
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        run.last_stderr = done.stderr
        if not check:
            return done
        if done.returncode != 0:
            raise ProvisionFailed(f"provision.py exited with {done.returncode}:\n{done.stderr}")
        try:
            return json.loads(done.stdout)
        except json.JSONDecodeError as err:
            raise ProvisionFailed(f"provision.py printed no JSON ({err}):\n{done.stdout}\n{done.stderr}") from err

    run.last_stderr = ""
    return run


@pytest.fixture(scope="session")
def demo(moto_endpoint, tmp_path_factory):
    """Runs the demo once for the session (80 recipients, a stack of its own) and
    returns its output folder: the lake and report tests read what it left."""
    target = Path(os.environ.get("CARGO_TARGET_DIR", Path.home() / ".cache" / "beacon-target"))
    binary = target / "debug" / "beacon-local"
    if not binary.exists():
        pytest.fail(f"{binary} is missing: `make build` (make test-py does it first)")
    out = tmp_path_factory.mktemp("demo")
    env = dict(os.environ, AWS_ENDPOINT_URL=moto_endpoint)
    done = subprocess.run(
        [str(binary), "demo", "--recipients", "80", "--seed", "11", "--out", str(out),
         "--stack", "demo" + uuid.uuid4().hex[:8], "--serve", "never"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return out


@pytest.fixture(scope="session")
def summary(demo) -> dict:
    return json.loads((demo / "demo-summary.json").read_text())
