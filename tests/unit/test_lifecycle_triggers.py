"""Retraining triggers: a normal day does not retrain; each trigger fires on its own evidence."""

from __future__ import annotations

from datetime import date

import pytest
from forecast_fixtures import make_spec

from mlplatform.lifecycle import retrain_triggers

RUN = date(2025, 6, 30)


def _champion(trained_to: str) -> dict:
    return {"version": "v1", "training_window": {"start": "2024-01-01", "end": trained_to}}


@pytest.fixture
def spec():
    return make_spec({"retrain": {"every_days": 7, "on_drift": True, "on_accuracy_decay": True}})


def test_a_normal_day_fires_no_trigger(spec):
    assert retrain_triggers(spec, RUN, _champion("2025-06-27"), {"drift_detected": False}, {"breach": False}) == []


def test_no_champion_always_trains(spec):
    [t] = retrain_triggers(spec, RUN, None, None, None)
    assert t.name == "no_champion"


def test_the_schedule_fires_when_the_champion_is_old_enough(spec):
    [t] = retrain_triggers(spec, RUN, _champion("2025-06-23"), None, None)
    assert t.name == "schedule" and "7 days ago" in t.detail
    assert retrain_triggers(spec, RUN, _champion("2025-06-24"), None, None) == []


def test_drift_fires_and_names_the_columns(spec):
    drift = {"drift_detected": True, "drifted_share": 0.86, "drifted_columns": ["unit_price", "lag_7"]}
    [t] = retrain_triggers(spec, RUN, _champion("2025-06-29"), drift, None)
    assert t.name == "drift" and "86%" in t.detail and "unit_price" in t.detail


def test_accuracy_decay_fires_with_the_breach_reason(spec):
    acc = {"breach": True, "breach_reason": "realised wape 0.61 vs backtest 0.44"}
    [t] = retrain_triggers(spec, RUN, _champion("2025-06-29"), None, acc)
    assert t.name == "accuracy_decay" and "0.61" in t.detail


def test_triggers_switched_off_in_the_spec_do_not_fire():
    spec = make_spec({"retrain": {"every_days": None, "on_drift": False, "on_accuracy_decay": False}})
    evidence = ({"drift_detected": True, "drifted_share": 1.0, "drifted_columns": []}, {"breach": True})
    assert retrain_triggers(spec, RUN, _champion("2020-01-01"), *evidence) == []


def test_several_triggers_fire_together(spec):
    fired = retrain_triggers(spec, RUN, _champion("2025-01-01"), {"drift_detected": True, "drifted_share": 0.6,
                                                                  "drifted_columns": []}, {"breach": True})
    assert [t.name for t in fired] == ["schedule", "drift", "accuracy_decay"]


# --- a refused retrain is not repeated every day (issue 13) ----------------------------------------------

def _attempt(trained_to: str, triggers: tuple[str, ...] | None = ("schedule",)):
    from mlplatform.lifecycle import RefusedAttempt

    day = date.fromisoformat(trained_to)
    return RefusedAttempt("v2", day, day, "not promoted: does not beat champion v1", triggers)


def _fired(*names: str):
    from mlplatform.lifecycle import Trigger

    return [Trigger(name, f"{name} evidence") for name in names]


def test_the_same_triggers_without_a_new_fold_of_data_do_not_retrain_again(spec):
    from mlplatform.lifecycle import repeated_refusal

    skip = repeated_refusal(spec, date(2025, 6, 9), _fired("schedule"), _attempt("2025-06-08"))
    assert skip["new_periods"] == 1 and skip["retry_from"] == "2025-06-22"  # fold_step 14 days later
    assert "v2 (trained for 2025-06-08 on data up to 2025-06-08), was refused" in skip["reason"]
    assert "does not beat champion v1" in skip["reason"] and "on or after 2025-06-22" in skip["reason"]
    assert skip["refused_attempt"]["triggers"] == ["schedule"]


def test_a_new_kind_of_trigger_or_a_new_fold_of_data_retrains(spec):
    from mlplatform.lifecycle import repeated_refusal

    attempt = _attempt("2025-06-08")
    assert repeated_refusal(spec, date(2025, 6, 9), _fired("schedule", "drift"), attempt) is None
    assert repeated_refusal(spec, date(2025, 6, 22), _fired("schedule"), attempt) is None  # 14 new days
    assert repeated_refusal(spec, date(2025, 6, 9), _fired("schedule"), None) is None  # nothing refused
    assert repeated_refusal(spec, date(2025, 6, 9), _fired("schedule"), _attempt("2025-06-08", None)) is None


def test_periods_of_new_data_count_in_the_use_cases_frequency():
    from mlplatform.lifecycle import repeated_refusal

    monthly = make_spec({"frequency": "monthly", "backtest": {"fold_step": 3, "season_length": 12}})
    attempt = _attempt("2025-03-31", ("accuracy_decay",))
    skip = repeated_refusal(monthly, date(2025, 5, 14), _fired("accuracy_decay"), attempt)
    assert skip["new_periods"] == 1 and skip["retry_from"] == "2025-06-30" and "1 new month(s)" in skip["reason"]
    assert repeated_refusal(monthly, date(2025, 7, 1), _fired("accuracy_decay"), attempt) is None


class _DictStore:
    """The ObjectStore calls the registry and decide_retrain make, on a dict."""

    def __init__(self) -> None:
        self.objects: dict[str, object] = {}

    def put_json(self, key: str, obj: object) -> str:
        import json

        self.objects[key] = json.loads(json.dumps(obj, default=str))
        return f"s3://test/{key}"

    def get_json(self, key: str) -> object:
        return self.objects[key]

    def exists(self, key: str) -> bool:
        return key in self.objects

    def list_keys(self, prefix: str) -> list[str]:
        return sorted(k for k in self.objects if k.startswith(prefix))


def _register(store: _DictStore, spec, version: str, run_date: str, promoted: bool) -> dict:
    from mlplatform import registry
    from mlplatform.lineage import source_hash
    from mlplatform.storage import Layout

    layout = Layout(spec.name)
    meta = {"version": version, "trained_for_run_date": run_date, "spec_fingerprint": spec.fingerprint(),
            "code": {"source_hash": source_hash()},
            "training_window": {"start": "2024-01-01", "end": run_date},
            "metrics": {"metric": "wape", "model": {"wape": 0.4}, "baseline": {"wape": 0.5}},
            "decision": {"eligible": True, "promoted": promoted,
                         "reason": "promoted" if promoted else "not promoted: does not beat champion v1"}}
    store.put_json(f"{layout.model(version)}/{registry.METADATA}", meta)
    if promoted:
        registry.move_alias(store, layout, registry.CHAMPION, meta, effective_date=date.fromisoformat(run_date),
                            actor="test", reason="promoted", action="promote")
    return meta


def test_decide_retrain_stores_what_was_refused_and_when_it_tries_again(spec):
    from mlplatform.pipeline import RETRAIN_FILE, decide_retrain
    from mlplatform.storage import Layout

    store = _DictStore()
    layout = Layout(spec.name)
    _register(store, spec, "v1", "2025-06-01", promoted=True)
    _register(store, spec, "v2", "2025-06-08", promoted=False)
    store.put_json(f"{layout.lifecycle(date(2025, 6, 8))}/{RETRAIN_FILE}",
                   {"retrain": True, "triggers": [{"trigger": "schedule", "detail": "old"}]})

    decision = decide_retrain(spec, date(2025, 6, 9), store)
    assert decision["retrain"] is False and [t["trigger"] for t in decision["triggers"]] == ["schedule"]
    assert decision["refused_attempt"]["version"] == "v2" and decision["retry_from"] == "2025-06-22"
    stored = store.get_json(f"{layout.lifecycle(date(2025, 6, 9))}/{RETRAIN_FILE}")
    assert stored["skipped"].startswith("retraining skipped: the last attempt, v2") and stored["retry_from"] == "2025-06-22"
    # the date's own attempt never counts: a rerun of 2025-06-08 decides as its first run did
    assert decide_retrain(spec, date(2025, 6, 8), store)["retrain"] is True
    # a new fold of data since the refusal: retrain
    assert decide_retrain(spec, date(2025, 6, 22), store)["retrain"] is True
    # a changed spec (say a lowered backtest.min_improvement, as the refusal suggests) is new evidence
    lowered = spec.model_copy(update={"backtest": spec.backtest.model_copy(update={"min_improvement": 0.01})})
    assert decide_retrain(lowered, date(2025, 6, 9), store)["retrain"] is True
