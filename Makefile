# bucketfn — the two commands a newcomer needs: `make up` and `make test`.
# Without a Docker engine (dev machines, CI) MinIO and RabbitMQ run natively:
# MinIO built from source with `go install`, RabbitMQ from Debian's package.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STATE ?= .state
export BUCKETFN_STATE := $(abspath $(STATE))

.PHONY: up down test lint unit venv servers init run stop-runtime stop-api bench bench-backfill faults cluster-faults polling clean

$(BIN)/bucketfn: pyproject.toml setup.py functions/csv_count/_scan.c functions/json_canonical/native/Cargo.toml functions/json_canonical/native/src/lib.rs
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

venv: $(BIN)/bucketfn

servers:
	infra/local/rabbitmq.sh start
	infra/local/minio.sh start

init: venv servers
	infra/local/init.sh

## up: everything from nothing — servers, buckets and queues, the runtime and the jobs API.
up:
	@if docker info >/dev/null 2>&1; then docker compose up -d --build; else \
	  $(MAKE) --no-print-directory init run; fi

run: venv
	@infra/local/runtime.sh start
	@infra/local/api.sh start

stop-runtime:
	@infra/local/runtime.sh stop

stop-api:
	@infra/local/api.sh stop

## down: stop only what `make up` started.
down:
	@if docker info >/dev/null 2>&1; then docker compose down; else \
	  infra/local/api.sh stop; infra/local/runtime.sh stop; infra/local/minio.sh stop; \
	  infra/local/rabbitmq.sh stop; fi

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/bucketfn routes check --offline

unit: venv
	infra/local/compose.sh install
	infra/local/helm.sh install
	$(BIN)/pytest -m "not integration and not e2e" -q

## test: lint, types, then every test tier against real MinIO and RabbitMQ.
test: venv
	$(MAKE) --no-print-directory lint
	infra/local/test.sh $(BIN)/pytest $(PYTEST_ARGS)

bench: init run
	$(BIN)/python -m tests.bench

## bench-backfill: `bucketfn backfill` over 10,000 objects no event announced (a prefix
## without a notification rule), a rerun, and an interrupted run resumed. About 5 minutes.
bench-backfill: init
	$(BIN)/python -m tests.bench.backfill $(BACKFILL_ARGS)

## polling: polling mode end to end on SeaweedFS (no notifications: the sweep alone
## drives the functions). Builds SeaweedFS once (about 9 min), then about 45 s. Starts
## RabbitMQ and SeaweedFS if they are not running, stops afterwards only what it started.
polling: venv
	@started=(); trap 'for s in "$${started[@]}"; do infra/local/$$s.sh stop || true; done' EXIT; \
	for s in rabbitmq seaweedfs; do \
	  if [ "$$(infra/local/$$s.sh status)" != running ]; then \
	    infra/local/$$s.sh start || exit 1; started+=("$$s"); fi; \
	done; \
	BUCKETFN_POLLING=1 $(BIN)/pytest tests/polling $(PYTEST_ARGS)

## faults: after `make up`, SIGKILL the runtime 20 times, restart RabbitMQ, restart MinIO
## and drop every connection, each mid-load, then send the hostile corpus; prints the
## table (objects, results, lost, wrong, duplicated side effects, writes, time to recover)
## and fails if any row lost, got wrong or duplicated anything. About 10 minutes.
faults: venv
	$(BIN)/python -m tests.faults $(FAULTS_ARGS)

## cluster-faults: scale-out on real clusters on loopback (after `make up`, which builds
## MinIO and installs RabbitMQ): 3 runtimes, a 3-node RabbitMQ cluster, a 4-server
## distributed MinIO; kills a runtime, a RabbitMQ node and a MinIO server mid-load
## (1,000 objects each); prints the table. Ports from BUCKETFN_CLUSTER_PORT_BASE (30000).
cluster-faults: venv
	@trap 'infra/local/cluster-minio.sh stop; infra/local/cluster-rabbitmq.sh stop' EXIT; \
	$(BIN)/python -m tests.cluster $(CLUSTER_ARGS)

clean: down
	rm -rf $(STATE)
