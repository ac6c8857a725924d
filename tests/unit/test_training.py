"""Rolling-origin backtest, leakage guards, metrics structure, final model and drift reference."""

import json

import pandas as pd
import pytest

from mlplatform import forecasting
from mlplatform.errors import DataQualityError
from mlplatform.forecasting import MAX_TRAINING_ROWS, QuantileForecaster
from mlplatform.training import backtest_origins, reference_frame, train_and_backtest

try:  # tests/unit as a package or as a plain directory on sys.path
    from .forecast_fixtures import last_date, make_data, make_spec
except ImportError:
    from forecast_fixtures import last_date, make_data, make_spec

DAY = pd.Timedelta(days=1)


@pytest.fixture(scope="module")
def data():
    return make_data(n_stores=2, n_skus=3, n_days=220, promo_lift=3.0)


@pytest.fixture(scope="module")
def spec():
    return make_spec()


@pytest.fixture(scope="module")
def fit_log():
    return []


@pytest.fixture(scope="module")
def result(data, spec, fit_log):
    """One backtest for the module; every fit records the latest target and origin it was given."""
    features, calendar = data
    original = QuantileForecaster.fit
    patch = pytest.MonkeyPatch()

    def recording_fit(self, train):
        fit_log.append((train["target_date"].max(), train["origin_date"].max()))
        return original(self, train)

    patch.setattr(forecasting.QuantileForecaster, "fit", recording_fit)
    try:
        yield train_and_backtest(features, calendar, spec, last_date(features))
    finally:
        patch.undo()


def test_rows_after_run_date_are_rejected(data, spec):
    features, calendar = data
    run_date = last_date(features) - 3 * DAY
    with pytest.raises(DataQualityError, match=f"after run_date {run_date.date()}"):
        train_and_backtest(features, calendar, spec, run_date)


def test_fold_origins_end_one_horizon_before_run_date(spec):
    run_date = pd.Timestamp("2024-07-18")
    origins = backtest_origins(spec, run_date)
    horizon, step = spec.forecast.horizon, spec.backtest.fold_step
    assert len(origins) == spec.backtest.folds
    assert origins[-1] == run_date - horizon * DAY
    assert [b - a for a, b in zip(origins, origins[1:], strict=False)] == [step * DAY] * (len(origins) - 1)


def test_no_model_is_fitted_on_targets_after_its_cutoff(result, fit_log, data, spec):
    features, _ = data
    cutoffs = [*backtest_origins(spec, last_date(features)), last_date(features)]
    assert len(fit_log) == len(cutoffs)
    for (max_target, max_origin), cutoff in zip(fit_log, cutoffs, strict=True):
        assert max_target <= cutoff
        assert max_origin < cutoff


def test_metrics_structure_is_complete_and_strict_json(result, spec):
    metrics = result.metrics
    json.dumps(metrics, allow_nan=False)
    assert set(metrics["model"]) == {"wape", "mase", "bias", "coverage"}
    assert set(metrics["baseline"]) == {"wape", "mase", "bias"}
    assert metrics["min_improvement"] == spec.backtest.min_improvement
    assert isinstance(metrics["beats_baseline"], bool)
    assert len(metrics["folds"]) == spec.backtest.folds
    for fold in metrics["folds"]:
        assert {"origin", "n_training_rows", "n_eval_rows", "model", "baseline", "improvement"} <= set(fold)
        assert fold["n_eval_rows"] > 0
    assert metrics["n_eval_rows"] == sum(f["n_eval_rows"] for f in metrics["folds"])
    assert 0.5 <= metrics["model"]["coverage"] <= 1.0


def test_model_beats_seasonal_naive_on_strong_promotion_effect(result):
    metrics = result.metrics
    assert metrics["beats_baseline"] is True
    assert metrics["improvement"] >= 0.1
    assert metrics["model"]["wape"] < metrics["baseline"]["wape"]
    assert metrics["model"]["mase"] < metrics["baseline"]["mase"]
    assert sum(f["improvement"] > 0 for f in metrics["folds"]) >= 2


def test_final_model_and_training_window(result, data, spec):
    features, calendar = data
    run_date = last_date(features)
    assert result.training_window["end"] == run_date.date().isoformat()
    start = pd.Timestamp(result.training_window["start"])
    assert start >= max(features["sales_date"].min(), run_date - spec.model.training_window * DAY)
    assert 0 < result.n_training_rows <= MAX_TRAINING_ROWS
    assert result.feature_names == result.model.feature_names
    assert {"y_origin", "horizon", "target_day_of_week", "store_id"} <= set(result.feature_names)
    sup = forecasting.make_supervised(features, calendar, spec, [run_date], with_target=False)
    assert len(result.model.predict(sup)) == len(sup)


def test_reference_excludes_the_latest_monitoring_window(result, data, spec):
    features, _ = data
    assert list(result.reference.columns) == spec.monitoring.columns
    run_date = last_date(features)
    dated = make_spec(
        {"monitoring": {"columns": ["sales_date", "units_sold"], "window_days": 28, "reference_days": 60}}
    )
    ref = reference_frame(features, dated, run_date)
    assert ref["sales_date"].max() == run_date - 28 * DAY
    assert ref["sales_date"].min() == run_date - 87 * DAY
    assert len(ref) == 60 * features["series_id"].nunique()


def test_reference_is_capped_deterministically_and_defaults_to_all_features(data):
    features, _ = data
    run_date = last_date(features)
    capped = make_spec({"monitoring": {"columns": [], "max_rows": 100}})
    a = reference_frame(features, capped, run_date)
    b = reference_frame(features, capped, run_date)
    assert len(a) == 100
    pd.testing.assert_frame_equal(a, b)
    f = capped.features
    assert list(a.columns) == [*f.numeric, *f.categorical, f.target]


def test_too_short_history_fails_with_a_clear_error(data, spec):
    features, calendar = data
    short = features[features["sales_date"] < features["sales_date"].min() + 40 * DAY]
    with pytest.raises(DataQualityError, match="no training rows"):
        train_and_backtest(short, calendar, spec, last_date(short))
