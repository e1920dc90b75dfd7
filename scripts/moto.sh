#!/usr/bin/env bash
# The local AWS emulator (moto from the project venv, started through
# scripts/moto_server.py: moto_server with DynamoDB transactions that back up only the
# items they touch; BEACON_MOTO_UNPATCHED=1 runs it unpatched) on a free loopback port.
#
#   scripts/moto.sh run -- CMD ARGS...   start moto, run CMD with the AWS_* variables
#                                        pointing at it, stop moto, exit with CMD's status
#   scripts/moto.sh start                start it in the background (idempotent); the
#                                        endpoint goes to .beacon/moto.endpoint and stdout
#   scripts/moto.sh stop                 stop the one `start` started
#   scripts/moto.sh status               print the endpoint if it is running, else exit 1
#   scripts/moto.sh env                  print `export ...` lines for a running one
#
# Every variable CMD sees: AWS_ENDPOINT_URL=http://127.0.0.1:PORT, AWS_ACCESS_KEY_ID and
# AWS_SECRET_ACCESS_KEY=testing, AWS_REGION and AWS_DEFAULT_REGION=us-east-1 (and, with
# `run`, BEACON_MOTO_PID: the emulator's pid). Nothing reaches AWS. MOTO_START_TIMEOUT
# (seconds, default 30) bounds the wait for moto to answer.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${BEACON_VENV:-$ROOT/.venv}"
PYTHON="$VENV/bin/python"
MOTO="$ROOT/scripts/moto_server.py"
STATE="$ROOT/.beacon"
TIMEOUT="${MOTO_START_TIMEOUT:-30}"

say() { printf 'moto.sh: %s\n' "$*" >&2; }
die() { printf 'moto.sh: ERROR: %s\n' "$*" >&2; exit 1; }

usage() {
    sed -n '2,17p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

need_moto() {
    [[ -x "$PYTHON" && -x "$VENV/bin/moto_server" ]] ||
        die "moto is not installed in $VENV: run scripts/venv.sh (make venv) first"
}

free_port() {
    "$VENV/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# answers URL: true once anything answers HTTP there (moto's status page is cheap).
answers() {
    if command -v curl >/dev/null; then
        curl -sS -o /dev/null --max-time 2 "$1/moto-api/" 2>/dev/null
    else
        "$VENV/bin/python" - "$1/moto-api/" 2>/dev/null <<'PY'
import sys, urllib.error, urllib.request
try:
    urllib.request.urlopen(sys.argv[1], timeout=2)
except urllib.error.HTTPError:
    pass
PY
    fi
}

export_env() {
    export AWS_ENDPOINT_URL="$1"
    export AWS_ACCESS_KEY_ID=testing
    export AWS_SECRET_ACCESS_KEY=testing
    export AWS_REGION=us-east-1
    export AWS_DEFAULT_REGION=us-east-1
    # A session token or profile from the caller's shell must not leak into requests.
    unset AWS_SESSION_TOKEN AWS_SECURITY_TOKEN AWS_PROFILE
}

# launch LOG: starts moto on a free port in its own session (so a Ctrl-C aimed at the
# command does not kill it half-way; we stop it ourselves) and waits until it answers.
# Sets MOTO_PID and ENDPOINT. Retries on another port if the chosen one was taken.
launch() {
    local log="$1" attempt port deadline
    for attempt in 1 2 3; do
        port="$(free_port)"
        ENDPOINT="http://127.0.0.1:$port"
        setsid "$PYTHON" "$MOTO" -H 127.0.0.1 -p "$port" </dev/null >"$log" 2>&1 &
        MOTO_PID=$!
        deadline=$((SECONDS + TIMEOUT))
        while ! answers "$ENDPOINT"; do
            if ! kill -0 "$MOTO_PID" 2>/dev/null; then
                if grep -q -i "address already in use" "$log" && ((attempt < 3)); then
                    say "port $port was taken, trying another"
                    continue 2
                fi
                wait "$MOTO_PID" 2>/dev/null || true
                MOTO_PID=
                die "moto_server exited before answering on $ENDPOINT; its log ($log):
$(tail -n 50 "$log")"
            fi
            if ((SECONDS >= deadline)); then
                kill_moto "$MOTO_PID"
                MOTO_PID=
                die "moto_server did not answer on $ENDPOINT within ${TIMEOUT}s; its log ($log):
$(tail -n 50 "$log")"
            fi
            sleep 0.2
        done
        return 0
    done
}

# kill_moto PID: TERM, then KILL after 5 s.
kill_moto() {
    local pid="$1" _
    [[ -n "$pid" ]] || return 0
    kill -TERM "$pid" 2>/dev/null || return 0
    for _ in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

cmd_run() {
    [[ "${1:-}" == "--" ]] && shift
    (($# > 0)) || die "usage: scripts/moto.sh run -- CMD [ARGS...]"
    need_moto
    mkdir -p "$STATE"
    local log
    log="$(mktemp "$STATE/moto-run.XXXXXX.log")"
    MOTO_PID=
    trap 'kill_moto "$MOTO_PID"; rm -f "$log"' EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    launch "$log"
    say "moto_server (pid $MOTO_PID) at $ENDPOINT; running: $*"
    export_env "$ENDPOINT"
    export BEACON_MOTO_PID="$MOTO_PID"
    local status=0
    "$@" || status=$?
    if ((status != 0)); then
        say "command exited with status $status; moto's log is kept at $STATE/moto-last.log"
        cp "$log" "$STATE/moto-last.log" 2>/dev/null || true
    fi
    exit "$status"
}

running_endpoint() {
    local pid
    [[ -f "$STATE/moto.pid" && -f "$STATE/moto.endpoint" ]] || return 1
    pid="$(cat "$STATE/moto.pid")"
    kill -0 "$pid" 2>/dev/null || return 1
    answers "$(cat "$STATE/moto.endpoint")" || return 1
    cat "$STATE/moto.endpoint"
}

cmd_start() {
    need_moto
    mkdir -p "$STATE"
    local endpoint
    if endpoint="$(running_endpoint)"; then
        say "already running (pid $(cat "$STATE/moto.pid")) at $endpoint"
        echo "$endpoint"
        return 0
    fi
    rm -f "$STATE/moto.pid" "$STATE/moto.endpoint"
    MOTO_PID=
    launch "$STATE/moto.log"
    echo "$MOTO_PID" >"$STATE/moto.pid"
    echo "$ENDPOINT" >"$STATE/moto.endpoint"
    say "started moto_server (pid $MOTO_PID) at $ENDPOINT; log in $STATE/moto.log"
    say "use it with: eval \"\$(scripts/moto.sh env)\"; stop it with: scripts/moto.sh stop"
    echo "$ENDPOINT"
}

cmd_stop() {
    local pid
    if [[ ! -f "$STATE/moto.pid" ]]; then
        say "not running (no $STATE/moto.pid)"
        return 0
    fi
    pid="$(cat "$STATE/moto.pid")"
    # Only ever kill our moto_server, not whatever reused the pid since.
    if kill -0 "$pid" 2>/dev/null && grep -q moto_server "/proc/$pid/cmdline" 2>/dev/null; then
        kill_moto "$pid"
        say "stopped moto_server (pid $pid)"
    else
        say "moto_server (pid $pid) was not running"
    fi
    rm -f "$STATE/moto.pid" "$STATE/moto.endpoint"
}

cmd_status() {
    local endpoint
    if endpoint="$(running_endpoint)"; then
        echo "$endpoint"
    else
        say "not running"
        return 1
    fi
}

cmd_env() {
    local endpoint
    endpoint="$(running_endpoint)" || die "not running: scripts/moto.sh start first"
    printf 'export AWS_ENDPOINT_URL=%s\n' "$endpoint"
    printf 'export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing\n'
    printf 'export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1\n'
}

case "${1:-}" in
    run) shift; cmd_run "$@" ;;
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    env) cmd_env ;;
    *) usage ;;
esac
