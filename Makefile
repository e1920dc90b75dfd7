# Beacon: the two commands that matter are `make demo` and `make test`.
# Both set up everything they need (Python virtualenv with moto, the emulator itself,
# Chromium and poppler for the browser and report tests) and clean up after themselves.

SHELL := /bin/bash
export CARGO_TARGET_DIR ?= $(HOME)/.cache/beacon-target
export CARGO_TERM_COLOR ?= never
VENV ?= .venv
export BEACON_VENV := $(abspath $(VENV))
BIN := $(CARGO_TARGET_DIR)/debug

.PHONY: demo test venv tools dashboard-deps build lint fmt clippy cfn-lint test-rust test-py serve soak fuzz bench bench-lake bench-dashboard clean

## demo: run a simulated campaign through the whole local pipeline, then print the
## dashboard's signed link and keep serving it until Ctrl-C (when run from a terminal)
demo: venv tools
	@echo "==> building" >&2
	cargo build -p beacon-local
	@echo "==> running the demo against a local AWS emulator" >&2
	scripts/moto.sh run -- $(BIN)/beacon-local demo --out out

## test: every test (lint, unit, end-to-end, browser, Lambda emulator, template)
test: venv tools lint test-rust test-py
	@echo "==> all tests passed" >&2

venv:
	@scripts/venv.sh

## dashboard-deps: the dashboard's pinned npm packages (uPlot, and axe-core for the
## accessibility test) from functions/stats/dashboard/package-lock.json
dashboard-deps:
	cd functions/stats/dashboard && npm ci --ignore-scripts --no-audit --no-fund

tools:
	@scripts/debian-tools.sh

build:
	cargo build --workspace --all-targets

lint: fmt clippy cfn-lint

fmt:
	cargo fmt --all -- --check

clippy:
	cargo clippy --workspace --all-targets -- -D warnings

cfn-lint: venv
	$(VENV)/bin/cfn-lint infra/template.yaml

## Rust unit and end-to-end tests, sharing one emulator.
test-rust: venv
	scripts/moto.sh run -- cargo test --workspace

## Python-side tests: template and provisioning, the browser tests, each function
## binary under cargo-lambda's Lambda runtime emulator with its sample event.
test-py: venv tools build dashboard-deps
	$(VENV)/bin/pytest -q tests/py

## serve: the emulator and the local gateway for manual use (Ctrl-C stops both)
serve: venv
	cargo build -p beacon-local
	scripts/moto.sh run -- $(BIN)/beacon-local serve --trust-forwarded-for

## soak: `make serve`'s stack under the demo's traffic mix for SOAK_MINUTES (default 30),
## sampling the emulator's memory every 30 s; fails if it peaks above 1 GB
SOAK_MINUTES ?= 30
soak: venv
	cargo build -p beacon-local
	$(VENV)/bin/python benches/moto_soak.py --no-build --minutes $(SOAK_MINUTES)

## fuzz: each cargo-fuzz target in fuzz/ for FUZZ_SECONDS (default 60) on nightly, seeded
## from events/; prints runs and crashes per target (installs cargo-fuzz if missing).
## Not part of `make test`.
FUZZ_SECONDS ?= 60
fuzz:
	python3 scripts/fuzz.py --seconds $(FUZZ_SECONDS)

## bench: criterion benchmarks (figures in target/criterion), then bench-lake
bench: venv
	# --noplot: criterion's own plotter needs system fonts, and the figures are the point.
	cargo bench -p beacon-benches --benches -- --noplot
	$(MAKE) bench-lake

## bench-lake: NDJSON -> Parquet on 1M events, beacon lake convert against DuckDB and
## pyarrow, then Beacon on 3M (inputs cached in .beacon/bench-lake)
bench-lake: venv
	$(VENV)/bin/python benches/lake_convert.py

## bench-dashboard: the campaign page's first load in headless Chromium (bytes, time to
## the numbers) and every dashboard request's latency, after a 300-recipient demo
bench-dashboard: venv dashboard-deps
	cargo build -p beacon-local -p beacon-cli
	$(VENV)/bin/python benches/dashboard.py --no-build

clean:
	rm -rf out .beacon
