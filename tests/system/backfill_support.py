"""The backfill scenario of the system tests, driven only through Airflow's REST API v2 and S3.

A backfill of BACKFILL_DATES (POST /api/v2/backfills, one run at a time so each date sees the champion the
previous date promoted, as a daily schedule would), waited for through GET .../dagRuns; then checks and
re-runs go through the same API. Timings are measured here and written to TIMINGS_PATH.
"""

from __future__ import annotations

import json
import platform
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from airflow_stack import SHORT_SOURCE, SHORT_TRAINING_WINDOW, USE_CASE, AirflowStack

from mlplatform import constants as C

BACKFILL_DATES = ("2025-06-28", "2025-06-29", "2025-06-30")
RERUN_DATE = "2025-06-30"  # a date that keeps the champion: its rerun trains nothing
RUN_TIMEOUT_S = 600
ARTIFACTS_DIR = C.PROJECT_ROOT / "test-artifacts" / "system"
TIMINGS_PATH = ARTIFACTS_DIR / "backfill_timings.json"
TERMINAL = {"success", "failed", "upstream_failed", "skipped", "removed"}


@dataclass
class BackfillOutcome:
    executor: str
    backfill: dict
    runs: dict[str, dict]                  # logical date -> dag run (API response) when all succeeded
    wall_s: float                          # POST /backfills until every run succeeded
    states: dict[str, dict[str, str | None]] = field(default_factory=dict)   # date -> task states
    rerun: dict[str, Any] = field(default_factory=dict)


def parse_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def ensure_unpaused(stack: AirflowStack) -> None:
    """Tasks of a paused DAG are never scheduled, backfill runs included; the stack runs no scheduled runs
    (use_job_schedule off), so unpausing starts nothing but the backfill."""
    dag = stack.api_json("GET", f"/api/v2/dags/{USE_CASE}")
    if dag["is_paused"]:
        dag = stack.api_json("PATCH", f"/api/v2/dags/{USE_CASE}", json={"is_paused": False})
        assert dag["is_paused"] is False, dag


def dag_runs(stack: AirflowStack, **params: Any) -> list[dict]:
    body = stack.api_json("GET", f"/api/v2/dags/{USE_CASE}/dagRuns",
                          params={"limit": 100, "order_by": "logical_date", **params})
    return list(body["dag_runs"])


def run_date(run: dict) -> str:
    return run["logical_date"][:10]


def wait_for_runs(stack: AirflowStack, dates: tuple[str, ...], *, newer_than: datetime | None = None,
                  timeout: float = RUN_TIMEOUT_S) -> dict[str, dict]:
    """Wait until the runs of ``dates`` (ended after ``newer_than``, if given) all succeeded; fail at once
    on a failed run, naming every task's state and the failed tasks' logs."""
    deadline = time.monotonic() + timeout
    latest: dict[str, dict] = {}
    while time.monotonic() < deadline:
        stack.check_alive()
        latest = {run_date(r): r for r in dag_runs(stack, run_type="backfill") if run_date(r) in dates}
        for run in latest.values():
            if run["state"] == "failed":
                raise AssertionError(failure_report(stack, run, "failed"))
        done = {day: r for day, r in latest.items() if r["state"] == "success" and
                (newer_than is None or (parse_time(r["end_date"]) or newer_than) > newer_than)}
        if len(done) == len(dates):
            return done
        time.sleep(2)
    states = {day: run["state"] for day, run in latest.items()}
    report = "\n".join(failure_report(stack, run, "not finished") for run in latest.values()
                       if run["state"] != "success")
    raise AssertionError(f"backfill runs of {dates} not all successful after {timeout:.0f}s: {states}\n{report}")


def failure_report(stack: AirflowStack, run: dict, what: str) -> str:
    states = stack.task_states(run["dag_run_id"])
    return (f"run {run['dag_run_id']} {what}; task states: {states}\n"
            f"{stack.task_log_tails(run['dag_run_id'])}")


def create_backfill(stack: AirflowStack) -> dict:
    body = {
        "dag_id": USE_CASE,
        "from_date": f"{BACKFILL_DATES[0]}T00:00:00Z",
        "to_date": f"{BACKFILL_DATES[-1]}T00:00:00Z",
        "run_backwards": False,
        "dag_run_conf": {},
        "reprocess_behavior": "none",
        "max_active_runs": 1,
    }
    return stack.api_json("POST", "/api/v2/backfills", json=body)


def ensure_backfill(stack: AirflowStack, cache: dict) -> BackfillOutcome:
    """The executor's backfill, run once per session (the UI test reuses the Celery one)."""
    if stack.executor in cache:
        return cache[stack.executor]
    ensure_unpaused(stack)
    started = time.monotonic()
    backfill = create_backfill(stack)
    runs = wait_for_runs(stack, BACKFILL_DATES)
    wall_s = round(time.monotonic() - started, 1)
    backfill = wait_for_backfill_completed(stack, backfill["id"])
    outcome = BackfillOutcome(stack.executor, backfill, runs, wall_s)
    outcome.states = {day: stack.task_states(run["dag_run_id"]) for day, run in runs.items()}
    cache[stack.executor] = outcome
    return outcome


def wait_for_backfill_completed(stack: AirflowStack, backfill_id: int, timeout: float = 90) -> dict:
    """The scheduler marks a backfill completed (completed_at) in a loop after its last run finished."""
    deadline = time.monotonic() + timeout
    while True:
        backfill = stack.api_json("GET", f"/api/v2/backfills/{backfill_id}")
        if backfill["completed_at"] or time.monotonic() > deadline:
            return backfill
        time.sleep(1)


def clear_and_rerun(stack: AirflowStack, run: dict) -> tuple[dict, float, list]:
    """Clear every task instance of ``run`` (not only failed ones) and wait for the run to succeed again."""
    cleared_at = datetime.now(UTC)
    started = time.monotonic()
    body = {"dry_run": False, "dag_run_id": run["dag_run_id"], "only_failed": False, "reset_dag_runs": True,
            "include_upstream": False, "include_downstream": False}
    cleared = stack.api_json("POST", f"/api/v2/dags/{USE_CASE}/clearTaskInstances", json=body)
    day = run_date(run)
    new_run = wait_for_runs(stack, (day,), newer_than=cleared_at)[day]
    return new_run, round(time.monotonic() - started, 1), cleared.get("task_instances", [])


def run_seconds(run: dict) -> float:
    start, end = parse_time(run["start_date"]), parse_time(run["end_date"])
    return round((end - start).total_seconds(), 1)


def record_timings(outcome: BackfillOutcome, stack: AirflowStack) -> dict:
    """Merge this executor's timings into TIMINGS_PATH (one entry per executor) and return them."""
    entry = {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "executor": outcome.executor,
        "metadata_db": "postgresql (fresh database)",
        "use_case": USE_CASE,
        "spec": {"source": SHORT_SOURCE, "training_window": SHORT_TRAINING_WINDOW, "retries": 0},
        "backfill": {"from_date": BACKFILL_DATES[0], "to_date": BACKFILL_DATES[-1], "max_active_runs": 1},
        "per_logical_date_s": {day: run_seconds(run) for day, run in sorted(outcome.runs.items())},
        "retrained": {day: states.get("train_model") == "success" for day, states in sorted(outcome.states.items())},
        "backfill_wall_s": outcome.wall_s,
        "stack_start_s": stack.timings.get("start_s"),
        "db_migrate_s": stack.timings.get("migrate_s"),
        "host": {"cpus": _cpus(), "python": platform.python_version()},
    }
    if outcome.rerun:
        entry["rerun"] = {"date": outcome.rerun["date"], "run_s": outcome.rerun["run_s"],
                          "wall_s": outcome.rerun["wall_s"]}
    ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
    try:
        data = json.loads(TIMINGS_PATH.read_text())
    except (OSError, ValueError):
        data = {}
    data[outcome.executor] = entry
    TIMINGS_PATH.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    return entry


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0))


# --- S3 ----------------------------------------------------------------------------------------------


def partition_prefix(day: str) -> str:
    return C.FORECASTS_PREFIX.format(use_case=USE_CASE, run_date=day) + "/"


def partition_objects(client: Any, bucket: str, prefix: str) -> dict[str, bytes]:
    """Every object under ``prefix``: key -> bytes."""
    out = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            out[obj["Key"]] = client.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
    return out


def forecast_partitions(client: Any, bucket: str) -> dict[str, list[str]]:
    """run_date=... folder -> its keys, for every partition under <use case>/forecasts/."""
    root = f"{USE_CASE}/forecasts/"
    out: dict[str, list[str]] = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=root):
        for obj in page.get("Contents", []):
            folder = obj["Key"][len(root):].split("/", 1)[0]
            out.setdefault(folder, []).append(obj["Key"])
    return out
