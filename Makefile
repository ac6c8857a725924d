# Quickstart: `make demo` (set-up + every use-case pipeline end to end) and `make test` (set-up + suite).
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3.11
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
ENV := . $(CURDIR)/.local/local.env && export PATH=$(BIN):$$PATH
USE_CASE ?= demand_forecast
DEMO_USE_CASES ?= demand_forecast revenue_forecast credit_risk
RUN_DATE ?= 2025-06-30
PREV_DATE ?= $(shell date -d '$(RUN_DATE) - 1 day' +%F)
PYTEST_ARGS ?=
EVALUATE_ARGS ?=
# The one switch: embedded (SQLite metadata, LocalExecutor, DuckDB warehouse) or team (Postgres metadata,
# CeleryExecutor on Redis, Postgres warehouse). PG_URL/REDIS_URL only matter for the team profile.
PROFILE ?= embedded
PG_URL ?= postgresql://postgres@127.0.0.1:5432
REDIS_URL ?= redis://127.0.0.1:6379/0
SERVICES := api-server scheduler dag-processor triggerer celery-worker

.PHONY: help install system-deps lock local s3 s3-stop airflow-init demo summary up down test test-system test-fast lint bench evaluate dbt-parse clean

help:
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

install: system-deps $(VENV)/.installed ## virtualenv in .venv with the pinned dependencies (constraints.txt)

# Debian packages the suite uses: docker-compose (validates docker-compose.yaml; no engine needed),
# chromium (the UI browser test, driven by the playwright package: no browser download), psql.
SYSTEM_PACKAGES := docker-compose:docker-compose chromium:chromium psql:postgresql-client
system-deps: ## Debian packages for the compose check and the browser test (apt-get, when missing)
	@missing=""; for pair in $(SYSTEM_PACKAGES); do command -v $${pair%%:*} >/dev/null || missing="$$missing $${pair#*:}"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
	  $$SUDO apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q --no-install-recommends $$missing >/dev/null; \
	fi
$(VENV)/.installed: requirements.txt requirements-dev.txt constraints.txt pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) is required (see README)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade "pip==26.3"
	$(BIN)/pip install -q -r requirements.txt -r requirements-dev.txt -c constraints.txt
	$(BIN)/pip install -q --no-deps -e .
	$(MAKE) --no-print-directory dbt-parse
	touch $@

lock: ## re-resolve requirements*.txt and rewrite constraints.txt
	rm -rf /tmp/mlplatform-lock && $(PYTHON) -m venv /tmp/mlplatform-lock
	/tmp/mlplatform-lock/bin/pip install -q -r requirements.txt -r requirements-dev.txt
	{ echo "# Full resolved dependency set (pip freeze of requirements.txt + requirements-dev.txt on Python 3.11)."; \
	  echo "# Regenerate with: make lock"; /tmp/mlplatform-lock/bin/pip freeze --exclude-editable; } > constraints.txt

dbt-parse: ## compile the dbt manifest (no warehouse needed)
	cd dbt_project && MLPLATFORM_DUCKDB_PATH=/tmp/mlplatform-parse.duckdb $(BIN)/dbt parse --quiet --profiles-dir . --target duckdb

local: install ## write .local/local.env for PROFILE (credentials generated once, kept afterwards)
	@$(BIN)/mlplatform local init --profile $(PROFILE) --pg-url '$(PG_URL)' --redis-url '$(REDIS_URL)'

s3: local ## start the local SeaweedFS S3 server on loopback (idempotent)
	@$(ENV) && mlplatform local s3-start

s3-stop: ## stop the local S3 server (nothing to do before `make local` ever ran)
	@if [ -f .local/local.env ]; then $(ENV) && mlplatform local s3-stop; fi

airflow-init: s3 ## Airflow home in .airflow, metadata DB (SQLite, or Postgres with PROFILE=team), warehouse pool
	@$(ENV) && airflow db migrate >/dev/null && \
	  airflow pools set mlplatform_warehouse 1 "Warehouse tasks one at a time: each rebuilds the marts as of its date" >/dev/null && \
	  echo "Airflow home: $$AIRFLOW_HOME ($(PROFILE) profile, executor $$AIRFLOW__CORE__EXECUTOR)"

demo: airflow-init ## run every use case's DAG for PREV_DATE and RUN_DATE (+ the roll-up consumer), print summaries
	@$(ENV) && for uc in $(DEMO_USE_CASES); do for day in $(PREV_DATE) $(RUN_DATE); do \
	  log=.local/demo-$$uc-$$day.log; start=$$(date +%s); \
	  echo "Running DAG $$uc for logical date $$day (airflow dags test)..."; \
	  airflow dags test $$uc $$day > $$log 2>&1 || { tail -40 $$log; echo "DAG run failed: full log in $$log"; exit 1; }; \
	  grep -q "state=success" $$log || { grep -E "ERROR|Error|failed" $$log | tail -20; \
	    echo "DAG run did not succeed: full log in $$log"; exit 1; }; \
	  echo "DAG $$uc succeeded in $$(( $$(date +%s) - start )) s (log: $$log)"; \
	done; mlplatform summary $$uc $(RUN_DATE); echo; done; \
	echo "Where the published $(firstword $(DEMO_USE_CASES)) numbers for $(RUN_DATE) came from (mlplatform lineage):"; \
	mlplatform lineage $(firstword $(DEMO_USE_CASES)) $(RUN_DATE); echo; \
	if [[ " $(DEMO_USE_CASES) " == *" revenue_forecast "* ]]; then \
	  echo "Running the downstream consumer revenue_forecast__rollups for $(RUN_DATE)..."; \
	  airflow dags test revenue_forecast__rollups $(RUN_DATE) -c '{"run_date": "$(RUN_DATE)"}' \
	    > .local/demo-rollups-$(RUN_DATE).log 2>&1 && grep -q "state=success" .local/demo-rollups-$(RUN_DATE).log || \
	    { tail -40 .local/demo-rollups-$(RUN_DATE).log; exit 1; }; \
	  mlplatform rollup revenue_forecast monthly $(RUN_DATE); \
	fi

summary: ## print the summary of USE_CASE for RUN_DATE
	@$(ENV) && mlplatform summary $(USE_CASE) $(RUN_DATE)

up: airflow-init ## start Airflow (UI http://127.0.0.1:8080); PROFILE=team adds a Celery worker
	@$(ENV) && mkdir -p .local/logs && \
	  for svc in $(SERVICES); do \
	    if [ "$$svc" = celery-worker ] && [ "$$AIRFLOW__CORE__EXECUTOR" != CeleryExecutor ]; then continue; fi; \
	    if [ -f .local/$$svc.pid ] && kill -0 $$(cat .local/$$svc.pid) 2>/dev/null; then continue; fi; \
	    if [ "$$svc" = celery-worker ]; then cmd="celery worker --queues $$AIRFLOW__OPERATORS__DEFAULT_QUEUE"; \
	    else cmd=$$svc; fi; \
	    setsid nohup airflow $$cmd > .local/logs/$$svc.log 2>&1 & echo $$! > .local/$$svc.pid; \
	  done; \
	  for i in $$(seq 1 90); do curl -sf http://127.0.0.1:8080/api/v2/version >/dev/null && break; sleep 1; done; \
	  curl -sf http://127.0.0.1:8080/api/v2/version >/dev/null || { echo "api-server did not start: .local/logs/api-server.log"; exit 1; }; \
	  echo "Airflow UI: http://127.0.0.1:8080  login: admin, password in .local/passwords.json (never printed)"; \
	  echo "Logs in .local/logs/; stop with: make down"

down: ## stop the local Airflow services (and Celery worker) and the S3 server
	@for svc in $(SERVICES); do \
	  if [ -f .local/$$svc.pid ]; then kill -- -$$(cat .local/$$svc.pid) 2>/dev/null || kill $$(cat .local/$$svc.pid) 2>/dev/null || true; \
	    rm -f .local/$$svc.pid; fi; done
	@$(MAKE) --no-print-directory s3-stop

test: install ## the whole suite (tests start their own S3 server and Airflow home)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-system: install ## system tests only: real Airflow services on Postgres (+ Celery/Redis) and the UI in Chromium
	$(BIN)/python -m pytest -m system tests/system $(PYTEST_ARGS)

test-fast: install ## unit and DAG-integrity tests only
	$(BIN)/python -m pytest -m "not integration and not system and not reliability" $(PYTEST_ARGS)

lint: install ## ruff (with complexity limit) and sqlfluff
	$(BIN)/ruff check include plugins dags tests bench
	$(BIN)/sqlfluff lint dbt_project/models

bench: install ## the six benchmark figures -> bench/results.json + bench/results.md (takes ~25 min; --smoke: tiny)
	$(BIN)/python bench/run_benchmarks.py

evaluate: install ## forecasts on real public data (statsmodels) vs statsforecast -> bench/evaluation.json + .md (EVALUATE_ARGS=--check ...)
	$(BIN)/python bench/evaluate.py $(EVALUATE_ARGS)

clean: down ## remove local state (.local, .airflow); keeps .venv
	rm -rf .local .airflow dbt_project/target
