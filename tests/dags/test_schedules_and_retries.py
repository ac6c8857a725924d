"""Non-daily use cases run on their own calendar; deterministic failures fail at once, transient ones retry."""

from __future__ import annotations

import json
from datetime import date

import pytest
import yaml

from mlplatform import constants as C
from mlplatform.errors import (
    DataQualityError,
    ModelNotAvailableError,
    PlatformError,
    SpecError,
    TransformError,
)
from mlplatform.spec import load_spec


def _spec(tmp_path, **changes):
    raw = yaml.safe_load((C.USE_CASES_DIR / "demand_forecast.yaml").read_text())
    raw.update(changes)
    path = tmp_path / "demand_forecast.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_spec(path, yaml.safe_load((C.USE_CASES_DIR / C.DEFAULTS_SPEC_NAME).read_text()))


@pytest.mark.parametrize(("frequency", "lag", "cron"), [
    ("monthly", 3, "0 0 4 * *"), ("quarterly", 0, "0 0 1 1,4,7,10 *"), ("weekly", 0, "0 0 * * 1"),
])
def test_a_non_daily_dag_runs_on_the_schedule_derived_from_its_frequency(tmp_path, frequency, lag, cron):
    from mlplatform_airflow.factory import build_dag

    spec = _spec(tmp_path, frequency=frequency, publication_lag_days=lag,
                 backtest={"folds": 3, "fold_step": 2, "season_length": 4, "min_improvement": 0.05})
    dag = build_dag(spec)
    assert type(dag.timetable).__name__ == "CronTriggerTimetable"  # logical date = the run's day
    assert dag.timetable.expression == cron
    assert f"`{cron}` (derived from frequency {frequency}" in dag.doc_md
    assert f"publication_lag_days {lag}" in dag.doc_md and frequency in dag.tags


def test_daily_keeps_daily_and_an_explicit_schedule_wins(tmp_path):
    from mlplatform_airflow.factory import build_dag

    daily = build_dag(_spec(tmp_path))
    assert daily.timetable.expression == "0 0 * * *" and "`@daily` (the default of daily use cases)" in daily.doc_md
    explicit = build_dag(_spec(tmp_path, frequency="monthly", schedule="0 6 15 * *",
                               backtest={"season_length": 12}))
    assert explicit.timetable.expression == "0 6 15 * *" and "`0 6 15 * *` (set in the spec)" in explicit.doc_md


# --- retries only for transient errors ---------------------------------------------------------------------

@pytest.fixture
def demand_dag():
    from mlplatform.spec import get_spec
    from mlplatform_airflow.factory import build_dag

    return build_dag(get_spec("demand_forecast"))


def test_every_stage_task_fails_fast_on_deterministic_errors(demand_dag):
    wrapped = {t.task_id for t in demand_dag.tasks if getattr(getattr(t, "python_callable", None), "fail_fast", False)}
    assert {"land_raw", "check_freshness", "build_features", "validate_features", "monitor_drift",
            "evaluate_accuracy", "decide_retrain", "train_model", "score_and_publish"} <= wrapped


def _call_land_raw(dag, monkeypatch, error: Exception):
    """Run the land_raw task's own callable (the DAG's wrapper) with the stage raising ``error``."""
    from mlplatform import pipeline
    from mlplatform_airflow import factory

    def stage(*_args, **_kwargs):
        raise error

    monkeypatch.setattr(factory, "_io", lambda name: (None, None, None))
    monkeypatch.setattr(factory, "run_date_from_context", lambda: date(2025, 6, 30))
    monkeypatch.setattr(pipeline, "land_raw", stage)
    return dag.get_task("land_raw").python_callable()


@pytest.mark.parametrize("error", [
    DataQualityError("demand_forecast: source table raw.pos_sales is not ready for 2025-06-30"),
    SpecError("include/use_cases/demand_forecast.yaml: field 'holidays.country': 'XX' is not a country code"),
    TransformError("dbt build failed (1 node(s) failed):\n  - test.not_null_fct_demand_features_units [fail]"),
])
def test_a_deterministic_error_fails_the_task_without_retries_keeping_its_message(demand_dag, monkeypatch, error):
    from airflow.sdk.exceptions import AirflowFailException

    with pytest.raises(AirflowFailException) as raised:  # the task SDK marks it failed, never up for retry
        _call_land_raw(demand_dag, monkeypatch, error)
    message = str(raised.value)
    assert message.startswith(str(error)) and f"not retried: a {type(error).__name__}" in message
    assert raised.value.__cause__ is error


@pytest.mark.parametrize("error", [
    PlatformError("object storage at http://127.0.0.1:1 is unreachable (put_object s3://mlplatform/x)"),
    PlatformError("cannot connect to the Postgres warehouse postgres://u@h:5432/w: connection refused"),
    TransformError("dbt build failed: Database Error: could not connect to server: Connection refused"),
    ConnectionResetError("reset by peer"),
])
def test_a_transient_error_propagates_unchanged_so_the_specs_retries_apply(demand_dag, monkeypatch, error):
    with pytest.raises(type(error)) as raised:
        _call_land_raw(demand_dag, monkeypatch, error)
    assert raised.value is error  # Airflow retries it (retries: 2 from the spec)
    assert demand_dag.get_task("land_raw").retries == 2


class _DictStore:
    """The ObjectStore calls of registry.model_options, on a dict."""

    def __init__(self, objects: dict[str, dict]) -> None:
        self.objects = objects

    def get_json(self, key: str) -> dict:
        return json.loads(json.dumps(self.objects[key]))

    def exists(self, key: str) -> bool:
        return key in self.objects

    def list_keys(self, prefix: str) -> list[str]:
        return sorted(k for k in self.objects if k.startswith(prefix))


def test_no_model_to_serve_fails_at_once_naming_only_the_real_options(demand_dag, monkeypatch):
    from airflow.sdk.exceptions import AirflowFailException

    from mlplatform import pipeline
    from mlplatform.spec import get_spec
    from mlplatform.storage import Layout
    from mlplatform_airflow import factory

    layout = Layout("demand_forecast")

    def meta(version: str, end: str, eligible: bool, reason: str) -> dict:
        return {"version": version, "training_window": {"start": "2024-01-01", "end": end},
                "metrics": {"metric": "wape", "model": {"wape": 0.41}, "baseline": {"wape": 0.5}},
                "decision": {"eligible": eligible, "promoted": False, "reason": reason}}

    store = _DictStore({
        f"{layout.model('v1')}/metadata.json": meta("v1", "2025-06-20", True, "not promoted: awaiting approval"),
        f"{layout.model('v2')}/metadata.json": meta("v2", "2025-06-29", False, "not promoted: backtest wape 0.52"),
    })

    def score(*_args, **_kwargs):
        raise ModelNotAvailableError("use case 'demand_forecast': no champion as of 2025-06-30")

    monkeypatch.setattr(factory, "_io", lambda name: (get_spec(name), None, store))
    monkeypatch.setattr(factory, "run_date_from_context", lambda: date(2025, 6, 30))
    monkeypatch.setattr(factory, "pinned_version", lambda: None)
    monkeypatch.setattr(factory, "run_ref", lambda: {})
    monkeypatch.setattr(pipeline, "score_and_publish", score)
    with pytest.raises(AirflowFailException) as raised:
        demand_dag.get_task("score_and_publish").python_callable()
    message = str(raised.value)
    assert message.startswith("use case 'demand_forecast': no champion as of 2025-06-30")
    assert "pin an eligible version" in message and "v1 (wape 0.4100)" in message
    assert "refused versions can be neither pinned nor rolled back to (v2" in message
    assert "lower backtest.min_improvement (now 0.05)" in message and "fallback forecast" in message
