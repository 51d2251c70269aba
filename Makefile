# Taskmill: `make up` runs the whole system locally, `make test` runs every test.
.DEFAULT_GOAL := help
SHELL := /bin/bash

.PHONY: help install up down clean test test-unit test-faults bench bench-quick lint lint-deploy images

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

install:  ## install Python deps, Kafka jars, FerretDB, PostgreSQL, MariaDB and Chromium (cached in .local/)
	scripts/infra.sh install

up: install  ## start Kafka, FerretDB (on PostgreSQL), MariaDB, the api, the dispatcher and the workers
	scripts/infra.sh start
	scripts/app.sh start

down:  ## stop everything `make up` started (data stays)
	scripts/app.sh stop
	scripts/infra.sh stop

clean: down  ## stop everything and delete all local data, builds and logs
	rm -rf .local

test: install images  ## unit, integration and end-to-end tests on the real infrastructure (and the images)
	scripts/test.sh

test-faults: install  ## the fault-injection suite alone (kills and stops real processes)
	scripts/test.sh -m faults tests/faults

test-unit:  ## unit tests only (no infrastructure)
	uv run --locked pytest -m "not integration and not e2e"

bench: install  ## every benchmark with full sizes; figures in bench/results/ (BENCH_TASKS=N: end-to-end tasks, default 5000)
	scripts/bench.sh $(if $(BENCH_TASKS),--tasks $(BENCH_TASKS))

bench-quick: install  ## the benchmarks at small sizes (about a minute and a half): checks the harness works
	scripts/bench.sh --quick

lint:  ## ruff over everything
	uv run --locked ruff check .

images:  ## build the four service images (Docker if an engine runs, else podman on a debootstrap base)
	@started=$$SECONDS; scripts/images.sh build; echo "images: built in $$((SECONDS - started)) s"

lint-deploy:  ## validate Dockerfiles, docker-compose.yml and the Kubernetes overlays offline
	scripts/lint-deploy.sh
