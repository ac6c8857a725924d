"""No secret reaches a log or a published object on a real Airflow deployment.

After the Celery stack's backfill (three real DAG runs), every secret the stack holds is searched for in
every task log and service log on disk, in the task logs the UI/API serves, and in every object the runs
wrote to S3: the S3 secret key of the Airflow connection the tasks use, the admin password, the Fernet
key, the JWT secret, and a canary token in the alert webhook URL the tasks read.
"""

from __future__ import annotations

from urllib.parse import quote

import backfill_support as bs
import pytest

from mlplatform.constants import DEFAULT_S3_CONN_ID

pytestmark = pytest.mark.system

USE_CASE = bs.USE_CASE


def _secrets(stack, s3_server) -> dict[str, str]:
    return {"S3 secret key (connection password)": s3_server.secret_key, "admin password": stack.password,
            "Fernet key": stack.env["AIRFLOW__CORE__FERNET_KEY"],
            "JWT secret": stack.env["AIRFLOW__API_AUTH__JWT_SECRET"], "webhook canary": stack.canary}


def test_no_secret_in_any_log_or_published_object(celery_stack, backfills, s3_server):
    stack = celery_stack
    outcome = bs.ensure_backfill(stack, backfills)
    secrets = _secrets(stack, s3_server)
    assert f"AIRFLOW_CONN_{DEFAULT_S3_CONN_ID.upper()}" in stack.env  # the tasks really use that connection

    texts: dict[str, bytes] = {}
    for folder in (stack.airflow_home / "logs", stack.logs_dir):
        for path in folder.rglob("*"):
            if path.is_file():
                texts[str(path)] = path.read_bytes()
    task_logs = [k for k in texts if "/dag_id=" in k and k.endswith(".log")]
    assert len(task_logs) >= 3 * 8, f"expected the task logs of three runs, found {len(task_logs)}"

    for run in outcome.runs.values():  # what the UI shows: the task logs through the API
        for task in ("land_raw", "build_features", "score_and_publish"):
            response = stack.get(f"/api/v2/dags/{USE_CASE}/dagRuns/{quote(run['dag_run_id'])}/taskInstances/{task}/logs/1")
            assert response.status_code == 200, response.text[:300]
            texts[f"api:{run['dag_run_id']}:{task}"] = response.content

    client = s3_server.client()
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=stack.bucket):
        for obj in page.get("Contents", []):
            texts[f"s3://{stack.bucket}/{obj['Key']}"] = client.get_object(Bucket=stack.bucket, Key=obj["Key"])["Body"].read()
    assert any(k.endswith("_manifest.json") for k in texts)

    leaks = [f"{what} in {where}" for where, data in texts.items() for what, secret in secrets.items()
             if secret.encode() in data]
    assert not leaks, leaks
