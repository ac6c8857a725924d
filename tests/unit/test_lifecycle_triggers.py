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
