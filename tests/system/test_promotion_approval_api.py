"""Human approval of promotions, end to end on real services, through the REST API the UI uses.

``demand_approval`` (see airflow_stack.py) is the shortened demand use case with ``approval: required``,
a 72 s answer window and a retrain every run. Three runs, in order, on the Celery stack:

* 2025-06-28: the first version passes the gate and parks ``approve_promotion`` in ``awaiting_input``; its
  request carries the backtest comparison and the model card; the admin approves through
  ``PATCH .../hitlDetails``: the version becomes champion, the partition is published with it, and the
  audit log records the approval, the approver and the time.
* 2025-07-15: a new version passes the gate (beating the champion on the rows neither had seen); the
  admin rejects it: the champion stays and publishes.
* 2025-07-22: a new version passes the gate; nobody answers: the scheduler's timeout sweep answers with the
  default "Reject", the champion stays, and the audit log records a timeout with no approver.
"""

from __future__ import annotations

import time

import pytest
from airflow_stack import ADMIN, APPROVAL_TIMEOUT_H, APPROVAL_USE_CASE

from mlplatform import registry
from mlplatform.storage import Layout, ObjectStore

pytestmark = [pytest.mark.system, pytest.mark.timeout(900)]

DAG = APPROVAL_USE_CASE
TASK = "approve_promotion"
# Dates whose new version beats the champion of 06-28 on the rows neither had seen (07-15: by 5.3 %, 07-22:
# by 1.7 %; 08-01 and later do not), so each of them asks a person.
FIRST, REJECTED_DAY, TIMEOUT_DAY = "2025-06-28", "2025-07-15", "2025-07-22"


def _trigger(stack, day: str) -> str:
    run_id = f"approval_test__{day}"
    stack.api_json("POST", f"/api/v2/dags/{DAG}/dagRuns",
                   json={"dag_run_id": run_id, "logical_date": f"{day}T00:00:00Z", "conf": {}})
    return run_id


def _states(stack, run_id: str) -> dict:
    body = stack.api_json("GET", f"/api/v2/dags/{DAG}/dagRuns/{run_id}/taskInstances")
    return {ti["task_id"]: ti["state"] for ti in body["task_instances"]}


def _run_state(stack, run_id: str) -> str:
    return stack.api_json("GET", f"/api/v2/dags/{DAG}/dagRuns/{run_id}")["state"]


def _wait(stack, run_id: str, until, what: str, timeout: float = 300) -> dict:
    deadline = time.monotonic() + timeout
    states: dict = {}
    while time.monotonic() < deadline:
        stack.check_alive()
        states = _states(stack, run_id)
        if until(states):
            return states
        if _run_state(stack, run_id) == "failed" or "failed" in states.values():
            break
        time.sleep(2)
    raise AssertionError(f"{run_id}: {what} not reached; task states {states}\n{stack.log_tails(40)}")


def _hitl_path(run_id: str) -> str:
    return f"/api/v2/dags/{DAG}/dagRuns/{run_id}/taskInstances/{TASK}/-1/hitlDetails"


def _park(stack, day: str) -> tuple[str, dict]:
    """Trigger ``day`` and wait until the approval task awaits input; return (run id, the request)."""
    run_id = _trigger(stack, day)
    states = _wait(stack, run_id, lambda s: s.get(TASK) in ("awaiting_input", "skipped"), f"{TASK} awaiting input")
    assert states[TASK] == "awaiting_input", (
        f"{day}: nothing to approve (the new version did not pass the gate): "
        f"{stack.api_json('GET', f'/api/v2/dags/{DAG}/dagRuns/{run_id}/taskInstances/train_model/xcomEntries/return_value')}")
    assert _states(stack, run_id)["score_and_publish"] in (None, "none", "scheduled"), "published before the answer"
    return run_id, stack.api_json("GET", _hitl_path(run_id))


def _finish(stack, run_id: str, timeout: float = 300) -> dict:
    return _wait(stack, run_id, lambda s: _run_state(stack, run_id) == "success", "run success", timeout)


def _answer(stack, run_id: str, option: str) -> dict:
    return stack.api_json("PATCH", _hitl_path(run_id), json={"chosen_options": [option]})


def _store(stack, s3_server) -> tuple[ObjectStore, Layout]:
    return ObjectStore(s3_server.client(), stack.bucket), Layout(DAG)


def _published_version(store: ObjectStore, day: str) -> str:
    return store.get_json(f"{DAG}/forecasts/run_date={day}/_manifest.json")["model_version"]


def _approval_events(store: ObjectStore, layout: Layout) -> list[dict]:
    return [e for e in registry.audit_log(store, layout) if e["action"].startswith("approval_")]


@pytest.fixture(scope="module")
def stack(celery_stack):
    dag = celery_stack.api_json("PATCH", f"/api/v2/dags/{DAG}", json={"is_paused": False})
    assert dag["is_paused"] is False
    return celery_stack


def test_approve_through_the_api_promotes_and_audits_the_approver(stack, s3_server):
    store, layout = _store(stack, s3_server)
    run_id, request = _park(stack, FIRST)
    assert request["options"] == ["Approve", "Reject"] and request["defaults"] == ["Reject"]
    assert "promote" in request["subject"]
    for text in ("| metric | challenger | baseline |", "Model card", "/model_card.md"):
        assert text in request["body"], text
    assert registry.alias_version(store, layout, registry.CHAMPION) is None  # nothing moved while waiting

    answer = _answer(stack, run_id, "Approve")
    assert answer["responded_by"]["name"] == ADMIN
    states = _finish(stack, run_id)
    assert states[TASK] == "success" and states["score_and_publish"] == "success"

    version = registry.alias_version(store, layout, registry.CHAMPION)
    assert version and _published_version(store, FIRST) == version
    [event] = _approval_events(store, layout)
    assert (event["outcome"], event["approver"]["name"], event["to_version"]) == ("approved", ADMIN, version)
    assert event["responded_at"] and event["run_id"] == f"{DAG}/{run_id}"
    [move] = [e for e in registry.audit_log(store, layout) if e["action"] == "promote_approved"]
    assert move["actor"] == f"approver:{ADMIN}" and move["to_version"] == version


def test_reject_through_the_api_keeps_the_champion(stack, s3_server):
    store, layout = _store(stack, s3_server)
    champion = registry.alias_version(store, layout, registry.CHAMPION)
    assert champion, "needs the approved champion of the previous test"
    run_id, request = _park(stack, REJECTED_DAY)
    proposed = registry.alias_version(store, layout, registry.CHALLENGER)
    assert proposed != champion and proposed in request["body"]

    _answer(stack, run_id, "Reject")
    states = _finish(stack, run_id)
    assert states[TASK] == "success" and states["score_and_publish"] == "success"  # reject does not skip
    assert registry.alias_version(store, layout, registry.CHAMPION) == champion
    assert _published_version(store, REJECTED_DAY) == champion
    event = _approval_events(store, layout)[-1]
    assert (event["outcome"], event["approver"]["name"], event["to_version"]) == ("rejected", ADMIN, proposed)


def test_unanswered_request_times_out_and_keeps_the_champion(stack, s3_server):
    store, layout = _store(stack, s3_server)
    champion = registry.alias_version(store, layout, registry.CHAMPION)
    run_id, _ = _park(stack, TIMEOUT_DAY)
    proposed = registry.alias_version(store, layout, registry.CHALLENGER)
    started = time.monotonic()
    states = _finish(stack, run_id, timeout=APPROVAL_TIMEOUT_H * 3600 + 120)
    assert time.monotonic() - started >= APPROVAL_TIMEOUT_H * 3600 - 10  # nobody answered before the deadline
    assert states[TASK] == "success" and states["score_and_publish"] == "success"
    detail = stack.api_json("GET", _hitl_path(run_id))
    assert detail["chosen_options"] == ["Reject"] and detail.get("responded_by_user") in (None, {})
    assert registry.alias_version(store, layout, registry.CHAMPION) == champion
    assert _published_version(store, TIMEOUT_DAY) == champion
    event = _approval_events(store, layout)[-1]
    assert (event["outcome"], event["approver"], event["to_version"]) == ("timed_out", None, proposed)
    assert event["actor"] == "airflow:timeout"
