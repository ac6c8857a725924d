"""Human approval of promotions (``approval: required``), on real pipeline runs without Airflow.

The world's champion was trained for 2025-06-30. A spec that requires approval retrains for 2025-07-05;
its version passes the automatic gate, so it becomes the challenger and waits. Each answer (approve,
reject, timeout) is then applied to a private copy of that state, as the DAG's ``approve_promotion`` task
does with the answer Airflow's ApprovalOperator received (tests/system drives that task through the API).
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
import reliability_support as rs

from mlplatform import approval, pipeline, registry
from mlplatform.spec import ApprovalSpec
from mlplatform.storage import Layout

RUN_DATE = rs.PRE_DRIFT_DATE
ALICE = {"id": "alice", "name": "alice"}
BOB = {"id": "bob", "name": "bob"}


@pytest.fixture(scope="module")
def proposal(module_world_copy):
    """(spec, store, settings, train result, old champion) with a version awaiting approval."""
    world = module_world_copy
    spec = world.spec.model_copy(update={"approval": ApprovalSpec(mode="required", timeout_hours=24)})
    layout = Layout(spec.name)
    old = registry.champion_on(world.store, layout, RUN_DATE)["version"]
    calls = rs.stage_calls(spec, RUN_DATE, world.settings, world.store)
    with rs.single_openmp_thread():
        for stage in ("land_raw", "build_features", "validate_features"):
            calls[stage]()
        trained = pipeline.train_model(spec, RUN_DATE, world.store, actor="test")
    return spec, world.store, world.settings, trained, old


@pytest.fixture
def decided_copy(proposal):
    """A private bucket holding the proposal state, for one answer."""
    spec, store, settings, trained, old = proposal
    return spec, rs.clone_bucket(store), settings, trained, old


def test_version_passing_the_gate_waits_and_the_champion_does_not_move(proposal) -> None:
    spec, store, _, trained, old = proposal
    layout = Layout(spec.name)
    assert trained["decision"]["promoted"], trained["decision"]["reason"]
    assert trained["awaiting_approval"] is True
    assert registry.champion_on(store, layout, RUN_DATE)["version"] == old
    assert registry.alias_version(store, layout, registry.CHALLENGER) == trained["version"]
    request = pipeline.approval_request(spec, RUN_DATE, store)
    assert request["version"] == trained["version"] and request["incumbent"] == old
    # What the approver reads: the comparison, the gate checks and the model card (inline and linked).
    for text in ("| metric | challenger | baseline |", "Gate checks:", "passed",
                 request["model_card_uri"], "# Model card"):
        assert text in request["body"], text
    assert approval.stored_decision(spec, RUN_DATE, store) == {"outcome": "pending",
                                                               "to_version": trained["version"]}


def _answer(copy, outcome: str, who: dict | None) -> dict:
    spec, store, _, _, _ = copy
    return pipeline.record_approval(spec, RUN_DATE, store, outcome=outcome, responded_by=who,
                                    responded_at=datetime(2025, 7, 5, 9, 30, tzinfo=UTC), run_id="dag/run-1")


def _published_version(copy) -> str:
    spec, store, _, _, _ = copy
    with rs.single_openmp_thread():
        return pipeline.score_and_publish(spec, RUN_DATE, store)["model_version"]


def test_approval_promotes_the_version_and_audits_who_and_when(decided_copy) -> None:
    spec, store, _, trained, old = decided_copy
    layout = Layout(spec.name)
    event = _answer(decided_copy, "approved", ALICE)
    assert registry.champion_on(store, layout, RUN_DATE)["version"] == trained["version"]
    assert registry.champion_on(store, layout, date(2025, 7, 4))["version"] == old  # the past is unchanged
    log = registry.audit_log(store, layout)
    move = [e for e in log if e["action"] == "promote_approved"]
    decision = [e for e in log if e["action"] == "approval_approved"]
    assert len(move) == 1 and move[0]["actor"] == "approver:alice" and move[0]["to_version"] == trained["version"]
    assert len(decision) == 1 and decision[0]["approver"] == ALICE
    assert decision[0]["responded_at"] == "2025-07-05T09:30:00+00:00" and decision[0]["run_id"] == "dag/run-1"
    assert event["champion_after"] == trained["version"]
    assert _published_version(decided_copy) == trained["version"]
    # Final: nothing pending, a second answer and a rerun of training record nothing twice.
    assert pipeline.approval_request(spec, RUN_DATE, store) is None
    assert _answer(decided_copy, "rejected", BOB)["outcome"] == "approved"
    rerun = pipeline.train_model(spec, RUN_DATE, store, actor="test")
    assert rerun["created"] is False and pipeline.approval_request(spec, RUN_DATE, store) is None
    assert len(registry.audit_log(store, layout)) == len(log)


@pytest.mark.parametrize(("outcome", "who", "actor"), [("rejected", BOB, "approver:bob"),
                                                        ("timed_out", None, "airflow:timeout")])
def test_rejection_or_timeout_keeps_the_champion_serving(decided_copy, outcome, who, actor) -> None:
    spec, store, _, trained, old = decided_copy
    layout = Layout(spec.name)
    event = _answer(decided_copy, outcome, who)
    assert event["outcome"] == outcome and event["actor"] == actor and event["approver"] == who
    assert event["champion_after"] == old
    assert registry.champion_on(store, layout, RUN_DATE)["version"] == old
    assert not [e for e in registry.audit_log(store, layout) if e["action"] == "promote_approved"]
    assert _published_version(decided_copy) == old
    summary = pipeline.run_summary(spec, RUN_DATE, store)
    assert summary["approval"]["outcome"] == outcome and summary["model_version"] == old
