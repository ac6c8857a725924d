"""Models served only within their contract: what a version was trained for vs what the spec now says."""

from __future__ import annotations

from datetime import date

import pytest
from forecast_fixtures import make_spec

from mlplatform.errors import SpecError
from mlplatform.lifecycle import retrain_triggers
from mlplatform.registry import decide
from mlplatform.serving_contract import check_serving_contract, contract_problems


@pytest.fixture
def spec():
    return make_spec({"retrain": {"every_days": 30, "on_drift": True, "on_accuracy_decay": True}})


def trained_for(spec, **changes) -> dict:
    """Registry metadata of a version trained under ``spec`` (as the pipeline writes it)."""
    meta = {"version": "v20250630-abc", "kind": spec.kind, "frequency": spec.frequency, "horizon": spec.horizon,
            "quantiles": spec.model.quantiles, "spec": spec.model_dump(mode="json"),
            "spec_fingerprint": spec.fingerprint(), "training_window": {"start": "2024-06-01", "end": "2025-06-29"}}
    return {**meta, **changes}


def test_a_version_trained_under_the_current_spec_keeps_its_contract(spec):
    assert contract_problems(trained_for(spec), spec) == []
    check_serving_contract(trained_for(spec), spec)


def test_each_broken_term_of_the_contract_is_named(spec):
    old = make_spec({"features": {"numeric": [*spec.features.numeric, "old_signal"]}})
    meta = trained_for(old, horizon=28 if spec.horizon != 28 else 7, frequency="weekly", quantiles=[0.05, 0.5, 0.95])
    problems = " | ".join(contract_problems(meta, spec))
    assert "forecast.horizon: trained for" in problems and f"the spec now says {spec.horizon}" in problems
    assert "frequency: trained on weekly periods" in problems
    assert "model.quantiles" in problems
    assert "features: the version uses ['old_signal']" in problems


def test_changed_series_keys_break_the_contract(spec):
    meta = trained_for(spec)
    meta["spec"]["features"]["series_keys"] = ["store_id"]
    assert any(p.startswith("features.series_keys") for p in contract_problems(meta, spec))


def test_the_refusal_names_the_version_the_mismatch_and_both_ways_out(spec):
    with pytest.raises(SpecError) as refused:
        check_serving_contract(trained_for(spec, horizon=spec.horizon + 1), spec)
    message = str(refused.value)
    assert "v20250630-abc cannot serve the current spec" in message and "forecast.horizon" in message
    assert "retrain with the new spec" in message and "restore the spec" in message


def test_a_champion_that_breaks_the_contract_is_a_retraining_trigger(spec):
    fired = retrain_triggers(spec, date(2025, 6, 30), trained_for(spec, horizon=spec.horizon + 1), None, None)
    assert [t.name for t in fired] == ["spec_changed"] and "forecast.horizon" in fired[0].detail


def test_the_gate_judges_a_challenger_against_the_baseline_when_the_champion_cannot_serve_the_spec():
    metrics = {"metric": "wape", "model": {"wape": 0.3}, "baseline": {"wape": 0.5}, "improvement": 0.4,
               "min_improvement": 0.05, "beats_baseline": True, "champion": None}
    champion = {"version": "v1", "training_window": {"end": "2025-05-31"}}
    refused = decide(metrics, champion)
    assert not refused.promoted  # the comparison never happened
    waived = decide(metrics, champion, champion_unservable="forecast.horizon: trained for 28 periods")
    assert waived.promoted and "champion v1 cannot serve the current spec" in waived.reason
    assert waived.checks["champion"]["passed"] is True
