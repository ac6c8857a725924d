"""Backfills through Airflow's REST API v2 on real services, for the LocalExecutor and the CeleryExecutor.

Each executor gets a real stack (api-server, scheduler, dag-processor, Celery worker) on a fresh Postgres
metadata DB, with the production profile's warehouse in a second fresh Postgres database (see
conftest.py). Everything goes through the authenticated REST API, as an operator or a CI job would: the API refuses anonymous and wrongly authenticated calls; a backfill of three logical dates
publishes exactly one complete partition per date (manifest written last, listed files present with their
sizes and checksums, nothing else); clearing one date re-runs it and rewrites the same bytes. The backfill
wall time per logical date is written to test-artifacts/system/backfill_timings.json.
"""

from __future__ import annotations

import io
import json

import backfill_support as bs
import pytest
from airflow_stack import USE_CASE

from mlplatform import constants as C
from mlplatform.storage import sha256_hex
from mlplatform.topology import CELERY_EXECUTOR

pytestmark = [pytest.mark.system, pytest.mark.timeout(900)]

REFUSED = (401, 403)


def backfill_count(stack) -> int:
    return stack.api_json("GET", "/api/v2/backfills", params={"dag_id": USE_CASE})["total_entries"]


def test_rest_api_refuses_calls_without_valid_credentials(airflow_stack):
    stack = airflow_stack
    backfills_before = backfill_count(stack)

    anonymous = stack.get("/api/v2/dags", auth=False)
    assert anonymous.status_code in REFUSED, anonymous.text
    body = {"dag_id": USE_CASE, "from_date": "2025-06-01T00:00:00Z", "to_date": "2025-06-02T00:00:00Z"}
    anonymous_backfill = stack.request("POST", "/api/v2/backfills", auth=False, json=body)
    assert anonymous_backfill.status_code in REFUSED, anonymous_backfill.text
    forged = stack.request("POST", "/api/v2/backfills", auth=False, json=body,
                           headers={"Authorization": "Bearer not.a.valid-token"})
    assert forged.status_code in REFUSED, forged.text
    assert backfill_count(stack) == backfills_before, "a refused call created a backfill"

    wrong = stack.token(password="admin")  # the well-known default must not work: each stack has its own
    assert wrong.status_code in REFUSED, wrong.text
    assert "access_token" not in wrong.text

    good = stack.token()
    assert good.status_code == 201, good.text
    token = good.json()["access_token"]
    dags = stack.get("/api/v2/dags", auth=False, headers={"Authorization": f"Bearer {token}"})
    assert dags.status_code == 200, dags.text
    assert USE_CASE in {d["dag_id"] for d in dags.json()["dags"]}


def test_backfill_publishes_exactly_one_complete_partition_per_date(airflow_stack, backfills, s3_server, capsys):
    stack = airflow_stack
    outcome = bs.ensure_backfill(stack, backfills)

    assert sorted(outcome.runs) == list(bs.BACKFILL_DATES)
    assert all(run["run_type"] == "backfill" and run["state"] == "success" for run in outcome.runs.values())
    backfill = stack.api_json("GET", f"/api/v2/backfills/{outcome.backfill['id']}")
    assert backfill["dag_id"] == USE_CASE and backfill["completed_at"], backfill
    # One run per date, no other runs (no scheduled run started next to the backfill).
    all_runs = bs.dag_runs(stack)
    assert sorted(bs.run_date(r) for r in all_runs) == list(bs.BACKFILL_DATES), [r["dag_run_id"] for r in all_runs]

    # The first date has no champion and trains; the later ones find the champion it promoted (the runs
    # went one at a time) and publish with it.
    first, *later = bs.BACKFILL_DATES
    assert outcome.states[first]["train_model"] == "success", outcome.states[first]
    for day in later:
        assert outcome.states[day]["keep_champion"] == "success", (day, outcome.states[day])
    assert all(states["score_and_publish"] == "success" for states in outcome.states.values())

    if stack.executor == CELERY_EXECUTOR:  # every task went through this stack's own queue
        for run in outcome.runs.values():
            tis = stack.api_json("GET", f"/api/v2/dags/{USE_CASE}/dagRuns/{run['dag_run_id']}/taskInstances")
            executed = [ti for ti in tis["task_instances"] if ti["state"] == "success"]
            assert executed and {ti["queue"] for ti in executed} == {stack.queue}, tis
            assert all(ti["hostname"] for ti in executed)

    client = s3_server.client()
    partitions = bs.forecast_partitions(client, stack.bucket)
    assert sorted(partitions) == [f"run_date={day}" for day in bs.BACKFILL_DATES], partitions
    models = set()
    for day in bs.BACKFILL_DATES:
        manifest = check_partition(client, stack.bucket, day)
        models.add(manifest["model_version"])
    assert len(models) == 1, f"the three dates should be served by the champion trained on {first}: {models}"
    for day in bs.BACKFILL_DATES:  # the team topology's warehouse: dbt built the features on Postgres
        features = json.loads(client.get_object(
            Bucket=stack.bucket, Key=f"{USE_CASE}/features/run_date={day}/{C.MANIFEST_NAME}")["Body"].read())
        assert features["dbt_target"] == "postgres", (day, features.get("dbt_target"))

    entry = bs.record_timings(outcome, stack)
    with capsys.disabled():
        print(f"\n[{stack.executor}] backfill wall time per logical date (s): {entry['per_logical_date_s']}; "
              f"whole backfill {entry['backfill_wall_s']} s -> {bs.TIMINGS_PATH}")


def check_partition(client, bucket: str, day: str) -> dict:
    """The partition of ``day``: a manifest, exactly the files it lists, with their sizes and checksums."""
    import pyarrow.parquet as pq

    prefix = bs.partition_prefix(day)
    objects = bs.partition_objects(client, bucket, prefix)
    manifest_key = prefix + C.MANIFEST_NAME
    assert manifest_key in objects, f"{day}: no manifest among {sorted(objects)}"
    manifest = json.loads(objects[manifest_key])
    assert manifest["run_date"] == day and manifest["use_case"] == USE_CASE, manifest
    assert manifest["partition_uri"] == f"s3://{bucket}/{prefix}", manifest["partition_uri"]
    listed = {f["key"]: f for f in manifest["files"]}
    assert listed and set(objects) == set(listed) | {manifest_key}, \
        f"{day}: stray or missing objects: {sorted(set(objects) ^ (set(listed) | {manifest_key}))}"
    rows = 0
    for key, entry in listed.items():
        data = objects[key]
        assert len(data) == entry["bytes"], (key, len(data), entry)
        assert sha256_hex(data) == entry["sha256"], key
        table = pq.read_table(io.BytesIO(data))
        assert table.num_rows == entry["rows"], (key, table.num_rows, entry)
        assert {str(v)[:10] for v in table.column("run_date").to_pylist()} == {day}, key
        rows += table.num_rows
    assert rows == manifest["row_count"] > 0, (rows, manifest["row_count"])
    return manifest


def test_rerun_of_one_date_rewrites_identical_bytes(airflow_stack, backfills, s3_server, capsys):
    stack = airflow_stack
    outcome = bs.ensure_backfill(stack, backfills)
    client = s3_server.client()
    prefix = bs.partition_prefix(bs.RERUN_DATE)
    before = bs.partition_objects(client, stack.bucket, prefix)
    partitions_before = bs.forecast_partitions(client, stack.bucket)

    run = outcome.runs[bs.RERUN_DATE]
    new_run, wall_s, cleared = bs.clear_and_rerun(stack, run)

    assert {ti["task_id"] for ti in cleared} >= {"land_raw", "build_features", "score_and_publish"}, cleared
    tis = stack.api_json("GET", f"/api/v2/dags/{USE_CASE}/dagRuns/{run['dag_run_id']}/taskInstances")
    publish = next(ti for ti in tis["task_instances"] if ti["task_id"] == "score_and_publish")
    assert publish["state"] == "success" and publish["try_number"] >= 2, publish  # it really ran again
    after = bs.partition_objects(client, stack.bucket, prefix)
    assert sorted(after) == sorted(before), (sorted(before), sorted(after))
    changed = [key for key in before if before[key] != after[key]]
    assert not changed, f"the rerun changed the bytes of {changed}"
    assert bs.forecast_partitions(client, stack.bucket) == partitions_before

    outcome.rerun = {"date": bs.RERUN_DATE, "run_s": bs.run_seconds(new_run), "wall_s": wall_s}
    entry = bs.record_timings(outcome, stack)
    with capsys.disabled():
        print(f"\n[{stack.executor}] timings: {json.dumps({k: entry[k] for k in ('per_logical_date_s', 'backfill_wall_s', 'rerun', 'stack_start_s')})}")
