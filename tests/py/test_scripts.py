"""The shell helpers: scripts/venv.sh and scripts/moto.sh."""

from __future__ import annotations

import os
import subprocess
import time


def test_venv_is_instant_when_up_to_date(repo_root, venv_bin):
    env = {**os.environ, "BEACON_VENV": str(venv_bin.parent)}
    start = time.monotonic()
    done = subprocess.run([str(repo_root / "scripts" / "venv.sh")], env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr
    assert time.monotonic() - start < 5, "an up-to-date venv should not be reinstalled"


def test_moto_run_gives_the_command_an_emulator_and_its_status(repo_root, venv_bin):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["BEACON_VENV"] = str(venv_bin.parent)
    script = (
        "import boto3, os, sys\n"
        "assert os.environ['AWS_ENDPOINT_URL'].startswith('http://127.0.0.1:')\n"
        "assert os.environ['AWS_REGION'] == os.environ['AWS_DEFAULT_REGION'] == 'us-east-1'\n"
        "boto3.client('sqs').create_queue(QueueName='probe')\n"
        "print(os.environ['AWS_ENDPOINT_URL'])\n"
        "sys.exit(7)\n"
    )
    done = subprocess.run([str(repo_root / "scripts" / "moto.sh"), "run", "--", str(venv_bin / "python"), "-c",
                           script], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 7, done.stderr
    endpoint = done.stdout.strip()
    # moto is gone afterwards.
    probe = subprocess.run(["curl", "-s", "-o", "/dev/null", "--max-time", "2", endpoint + "/moto-api/"])
    assert probe.returncode != 0, f"moto still answers at {endpoint}"
