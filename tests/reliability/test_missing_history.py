"""Run dates without (enough) raw history fail with a platform error naming the date, never deep in pandas.

Each test starts from an empty warehouse and an empty bucket (cheap: at most a few weeks are landed).
"""

from __future__ import annotations

from datetime import date, timedelta

import pytest
import reliability_support as rs

from mlplatform import pipeline, registry
from mlplatform.errors import DataQualityError, ModelNotAvailableError
from mlplatform.storage import Layout

pytestmark = pytest.mark.reliability

BEFORE_HISTORY = rs.HISTORY_START - timedelta(days=31)   # 2024-05-01
SHORT_HISTORY = rs.HISTORY_START + timedelta(days=19)    # 2024-06-20: < 3 backtest folds of history


@pytest.fixture
def empty_env(s3_server, tmp_path):
    return rs.make_spec(), rs.settings_for(tmp_path / "data"), rs.new_store(s3_server.client())


def _run_until_failure(spec, run_date: date, settings, store) -> tuple[str, Exception]:
    calls = rs.stage_calls(spec, run_date, settings, store)
    with rs.single_openmp_thread():
        for name, call in calls.items():
            try:
                call()
            except Exception as exc:  # noqa: BLE001 - the test inspects whatever the stage raised
                return name, exc
    raise AssertionError(f"every stage succeeded for {run_date}")


def test_run_date_before_history_start_fails_with_a_platform_error_naming_the_date(empty_env):
    spec, settings, store = empty_env
    stage, error = _run_until_failure(spec, BEFORE_HISTORY, settings, store)
    # the first stage refuses, before anything is landed or written
    assert stage == "land_raw", (stage, error)
    assert isinstance(error, DataQualityError), f"{stage} crashed with {type(error).__name__}: {error}"
    assert BEFORE_HISTORY.isoformat() in str(error)
    assert not settings.duckdb_path.exists()
    assert store.list_keys("") == []  # nothing snapshotted, validated or published


def test_run_date_before_history_start_error_names_the_history_start(empty_env):
    spec, settings, store = empty_env
    _, error = _run_until_failure(spec, BEFORE_HISTORY, settings, store)
    assert "history_start" in str(error) and spec.source.history_start.isoformat() in str(error), str(error)


def test_history_too_short_for_the_backtest_stops_at_train_model_and_registers_nothing(empty_env):
    spec, settings, store = empty_env
    stage, error = _run_until_failure(spec, SHORT_HISTORY, settings, store)
    assert stage == "train_model", (stage, error)
    assert isinstance(error, DataQualityError)
    message = str(error)
    assert "too short" in message and f"history starts {rs.HISTORY_START.isoformat()}" in message, message
    layout = Layout(spec.name)
    assert store.list_keys(layout.models() + "/") == []
    assert registry.champion(store, layout) is None and registry.audit_log(store, layout) == []
    # scoring the date afterwards (e.g. a manual rerun of the task) finds no model instead of crashing
    with pytest.raises(ModelNotAvailableError, match="no champion as of"):
        pipeline.score_and_publish(spec, SHORT_HISTORY, store)
    assert store.list_keys(layout.forecasts(SHORT_HISTORY) + "/") == []
