"""Registry aliases and the append-only audit log, on the real S3 server.

Aliases move, versions never change; every move is an audit event with who, what, when, why and the
metrics before and after; the champion of a past date is replayed from the log (as-of).
"""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from mlplatform import registry
from mlplatform.errors import ModelNotAvailableError, PlatformError
from mlplatform.storage import Layout

pytestmark = pytest.mark.integration

L = Layout("uc")


def _register(store, version: str, end: str, wape: float = 0.4, eligible: bool = True) -> dict:
    meta = {"version": version, "training_window": {"start": "2024-01-01", "end": end},
            "metrics": {"metric": "wape", "model": {"wape": wape}, "baseline": {"wape": 0.5}},
            "decision": {"eligible": eligible, "promoted": eligible, "reason": "test"}}
    stored, _ = registry.register(store, L, meta, version.encode(), pd.DataFrame({"x": [1.0]}), card="# card")
    return stored


def _promote(store, meta: dict, day: str, actor: str = "airflow:scheduler") -> dict | None:
    return registry.move_alias(store, L, registry.CHAMPION, meta, effective_date=date.fromisoformat(day),
                               actor=actor, reason=f"promoted {meta['version']}", action="promote", run_id="r1")


def test_an_alias_move_is_audited_with_who_what_when_why_and_metrics_before_and_after(object_store):
    v1, v2 = _register(object_store, "v1", "2025-05-31", 0.45), _register(object_store, "v2", "2025-06-30", 0.40)
    _promote(object_store, v1, "2025-05-31")
    event = _promote(object_store, v2, "2025-06-30", actor="airflow:alice")
    assert event["from_version"] == "v1" and event["to_version"] == "v2" and event["actor"] == "airflow:alice"
    assert event["reason"] == "promoted v2" and event["effective_date"] == "2025-06-30" and event["recorded_at"]
    assert event["metrics_before"]["model"] == 0.45 and event["metrics_after"]["model"] == 0.40
    assert [e["to_version"] for e in registry.audit_log(object_store, L)] == ["v1", "v2"]
    assert registry.champion(object_store, L)["version"] == "v2"


def test_the_audit_log_is_append_only_and_a_repeated_move_is_recorded_once(object_store):
    v1 = _register(object_store, "v1", "2025-05-31")
    _promote(object_store, v1, "2025-05-31")
    keys = object_store.list_keys(L.audit())
    contents = [object_store.get_bytes(k) for k in keys]
    assert _promote(object_store, v1, "2025-05-31") is None  # a rerun: already champion as of that date
    assert object_store.list_keys(L.audit()) == keys
    assert [object_store.get_bytes(k) for k in keys] == contents


def test_the_champion_of_a_past_date_is_replayed_from_the_log(object_store):
    v1, v2 = _register(object_store, "v1", "2025-05-31"), _register(object_store, "v2", "2025-06-30")
    _promote(object_store, v1, "2025-05-31")
    _promote(object_store, v2, "2025-06-30")
    assert registry.serving_model(object_store, L, date(2025, 6, 15))["version"] == "v1"
    assert registry.serving_model(object_store, L, date(2025, 7, 1))["version"] == "v2"
    with pytest.raises(ModelNotAvailableError, match="no champion as of 2025-05-01"):
        registry.serving_model(object_store, L, date(2025, 5, 1))


def test_a_backfill_promotion_for_an_old_date_leaves_the_current_champion_alone(object_store):
    v0, v2 = _register(object_store, "v0", "2025-04-30"), _register(object_store, "v2", "2025-06-30")
    _promote(object_store, v2, "2025-06-30")
    _promote(object_store, v0, "2025-04-30")  # recorded later, effective earlier
    assert registry.champion(object_store, L)["version"] == "v2"
    assert registry.serving_model(object_store, L, date(2025, 5, 15))["version"] == "v0"


def test_rollback_moves_the_champion_back_and_is_audited(object_store):
    v1, v2 = _register(object_store, "v1", "2025-05-31"), _register(object_store, "v2", "2025-06-30")
    _promote(object_store, v1, "2025-05-31")
    _promote(object_store, v2, "2025-06-30")
    event = registry.rollback(object_store, L, "v1", reason="v2 over-forecasts Q3", actor="cli:bob",
                              effective_date=date(2025, 7, 2))
    assert event["action"] == "rollback" and event["from_version"] == "v2" and event["to_version"] == "v1"
    assert registry.champion(object_store, L)["version"] == "v1"
    assert registry.serving_model(object_store, L, date(2025, 7, 1))["version"] == "v2"  # history unchanged
    assert registry.audit_log(object_store, L)[-1]["actor"] == "cli:bob"


def test_rollback_refuses_unknown_ineligible_or_unexplained_targets(object_store):
    v1 = _register(object_store, "v1", "2025-05-31")
    _register(object_store, "bad", "2025-06-30", eligible=False)
    _promote(object_store, v1, "2025-05-31")
    with pytest.raises(ModelNotAvailableError, match="no registered model version 'nope'"):
        registry.rollback(object_store, L, "nope", reason="x")
    with pytest.raises(ModelNotAvailableError, match="may not serve") as refused:
        registry.rollback(object_store, L, "bad", reason="x")
    assert "eligible versions: v1" in str(refused.value)  # the real option, never the refused one
    with pytest.raises(PlatformError, match="needs a reason"):
        registry.rollback(object_store, L, "v1", reason=" ")
    with pytest.raises(PlatformError, match="already the champion"):
        registry.rollback(object_store, L, "v1", reason="again", effective_date=date(2025, 6, 1))


def test_a_pinned_version_serves_only_dates_after_its_training_data(object_store):
    _register(object_store, "v2", "2025-06-30")
    assert registry.serving_model(object_store, L, date(2025, 7, 3), pinned="v2")["version"] == "v2"
    with pytest.raises(ModelNotAvailableError, match="would leak the future"):
        registry.serving_model(object_store, L, date(2025, 6, 1), pinned="v2")


def test_the_model_card_is_stored_next_to_the_model(object_store):
    meta = _register(object_store, "v1", "2025-05-31")
    assert object_store.get_bytes("uc/models/v1/model_card.md") == b"# card"
    assert meta["artifact"]["model_card_uri"].endswith("uc/models/v1/model_card.md")
