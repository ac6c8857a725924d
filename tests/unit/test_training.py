"""Rolling-origin backtest, leakage guards, metrics structure, final model and drift reference."""

import json
import math
import re

import pandas as pd
import pytest
from forecast_fixtures import (
    PERIOD_SHAPE,
    last_date,
    make_data,
    make_period_data,
    make_period_spec,
    make_spec,
    period_ends,
    single_threaded,
)

from mlplatform import forecasting
from mlplatform.errors import DataQualityError
from mlplatform.forecasting import MAX_TRAINING_ROWS, QuantileForecaster, build_training_set, periods_for
from mlplatform.metrics import relative_improvement, wape
from mlplatform.scoring import forecast_chunks
from mlplatform.training import (
    ChampionInput,
    backtest_origins,
    champion_comparison,
    reference_frame,
    train_and_backtest,
)

DAY = pd.Timedelta(days=1)


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    with single_threaded():
        yield


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
    folds = backtest_origins(spec, last_date(features))
    # two global candidates (gbm, gbm_scaled) per fold, then the served model's global members at the end
    final = [m for m in result.model.members if m.startswith("gbm")]
    cutoffs = [c for c in folds for _ in range(2)] + [last_date(features)] * len(final)
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
    assert (metrics["metric"], metrics["higher_is_better"], metrics["frequency"]) == ("wape", False, "daily")
    wapes = metrics["model"]["wape"], metrics["baseline"]["wape"]
    assert metrics["improvement"] == relative_improvement("wape", *wapes)
    assert metrics["champion"] is None


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
    assert result.feature_names == (result.model.feature_names or [spec.features.target])
    if result.model.gbms:
        assert {"y_origin", "horizon", "target_day_of_week", "store_id"} <= set(result.feature_names)
    sup = forecasting.make_supervised(features, calendar, spec, [run_date], with_target=False)
    out = result.model.forecast(features, calendar, spec, run_date)
    assert len(out) == len(sup)
    assert (out["p10"] <= out["p50"]).all() and (out["p50"] <= out["p90"]).all()


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


# ------------------------------------------------------------------------------- weekly and monthly


def test_monthly_fold_origins_are_month_ends_counted_back_from_the_origin():
    spec = make_period_spec("monthly", {"backtest": {"folds": 3}})
    origins = backtest_origins(spec, pd.Timestamp("2024-03-14"))  # origin: 2024-02-29
    step, horizon = spec.backtest.fold_step, spec.forecast.horizon
    assert origins[-1] == pd.Timestamp("2024-02-29") - pd.offsets.MonthEnd(horizon)
    assert [o + pd.offsets.MonthEnd(step) for o in origins[:-1]] == origins[1:]
    assert all(o.is_month_end for o in origins)


@pytest.fixture(scope="module", params=["weekly", "monthly"])
def period_run(request):
    """train_and_backtest of a weekly (MASE gate) and a monthly panel, run a few days into a new period."""
    frequency = request.param
    features, calendar = make_period_data(frequency)
    spec = make_period_spec(frequency, {"backtest": {"metric": "mase"}} if frequency == "weekly" else {})
    run_date = last_date(features) + 3 * DAY
    result = train_and_backtest(features, calendar, spec, run_date)
    return frequency, features, calendar, spec, run_date, result


def test_period_backtest_folds_and_window_are_counted_in_periods(period_run):
    frequency, features, _, spec, run_date, result = period_run
    ends = period_ends(frequency, PERIOD_SHAPE[frequency][4])  # the panel's period ends
    horizon, step, folds = spec.forecast.horizon, spec.backtest.fold_step, spec.backtest.folds
    expected = [ends[-1 - horizon - k * step] for k in reversed(range(folds))]
    metrics = result.metrics
    assert [pd.Timestamp(f["origin"]) for f in metrics["folds"]] == expected
    periods = periods_for(spec, features["sales_date"])
    assert backtest_origins(spec, run_date, periods) == expected
    assert result.training_window["end"] == ends[-1].date().isoformat()
    assert all(f["n_eval_rows"] > 0 for f in metrics["folds"])
    assert math.isfinite(metrics["model"]["wape"]) and math.isfinite(metrics["baseline"]["mase"])
    assert (metrics["frequency"], metrics["horizon"]) == (frequency, horizon)
    assert result.model.frequency == frequency
    gate = spec.gate_metric
    assert metrics["metric"] == gate
    scores = metrics["model"][gate], metrics["baseline"][gate]
    assert metrics["improvement"] == relative_improvement(gate, *scores)


def test_period_model_forecasts_the_next_period_ends(period_run):
    frequency, features, calendar, spec, run_date, result = period_run
    horizon = spec.forecast.horizon
    chunks = forecast_chunks(result.model, features, calendar, spec, run_date, 1_000)
    out = pd.concat(chunks, ignore_index=True)
    future = period_ends(frequency, horizon, last_date(features) + DAY)
    assert len(out) == features["series_id"].nunique() * horizon
    for h, dates in out.groupby("horizon")["target_date"]:
        assert set(dates) == {future[h - 1].date()}


# ------------------------------------------------------------------------------ champion comparison


def test_champion_trained_on_the_same_data_is_compared_on_later_targets_only(result, data, spec):
    features, calendar = data
    run_date = last_date(features)
    trained_to = backtest_origins(spec, run_date)[1]
    champ = QuantileForecaster(spec).fit(build_training_set(features, calendar, spec, trained_to))
    metrics = train_and_backtest(
        features, calendar, spec, run_date, champion=ChampionInput("v-old", champ, trained_to.date())
    ).metrics
    comparison = metrics["champion"]
    json.dumps(comparison, allow_nan=False)
    assert metrics["folds"] == result.metrics["folds"]  # the champion does not change the challenger
    assert comparison["error"] is None
    assert (comparison["version"], comparison["trained_to"]) == ("v-old", trained_to.date().isoformat())
    # fold_step == H: the first fold's targets end on trained_to, the later folds' start after it
    assert comparison["n_eval_rows"] == sum(f["n_eval_rows"] for f in metrics["folds"][1:]) > 0
    assert math.isfinite(comparison["improvement"])
    assert comparison["improvement"] == relative_improvement(
        "wape", comparison["challenger"]["wape"], comparison["champion"]["wape"]
    )
    assert set(comparison["champion"]) == {"wape", "mase", "bias"}
    assert comparison["beats_champion"] is (comparison["improvement"] >= comparison["margin"])


@pytest.fixture(scope="module")
def monthly_champion_case():
    """One-fold monthly backtest with a 5 % champion margin, and the fold's own training set."""
    features, calendar = make_period_data("monthly")
    spec = make_period_spec("monthly", {"backtest": {"folds": 1, "champion_margin": 0.05},
                                        "model": {"candidates": ["gbm"]}})
    run_date = last_date(features) + 10 * DAY
    origin = backtest_origins(spec, run_date)[0]
    return features, calendar, spec, run_date, origin, build_training_set(features, calendar, spec, origin)


def _compare(case, model, trained_to):
    features, calendar, spec, run_date, *_ = case
    champion = ChampionInput("v-champ", model, trained_to)
    return train_and_backtest(features, calendar, spec, run_date, champion=champion).metrics


def test_a_champion_identical_to_the_challenger_is_not_beaten_by_the_margin(monthly_champion_case):
    *_, spec, _, origin, train = monthly_champion_case
    twin = QuantileForecaster(spec, quantiles=[0.5]).fit(train)  # what the fold fits: same rows, same seed
    metrics = _compare(monthly_champion_case, twin, origin)
    comparison = metrics["champion"]
    assert comparison["n_eval_rows"] == metrics["n_eval_rows"] > 0
    assert comparison["improvement"] == pytest.approx(0.0, abs=1e-12)
    assert comparison["challenger"] == comparison["champion"]
    assert comparison["margin"] == 0.05 and comparison["beats_champion"] is False


def test_a_bad_champion_is_beaten(monthly_champion_case):
    *_, spec, _, origin, train = monthly_champion_case
    zeroed = QuantileForecaster(spec).fit(train.assign(y=0.0))
    comparison = _compare(monthly_champion_case, zeroed, origin.date().isoformat())["champion"]
    assert comparison["champion"]["wape"] == pytest.approx(1.0)
    assert comparison["improvement"] > 0.05
    assert comparison["beats_champion"] is True and comparison["error"] is None


def _unfitted(model):
    model.estimators = []


def _longer_horizon(model):
    model.horizon += 3


def _extra_feature(model):
    model.feature_names = [*model.feature_names, "shelf_space"]
    model.numeric = [*model.numeric, "shelf_space"]


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        (None, "no backtest target is dated after"),
        (_longer_horizon, "horizon of 9 periods but the spec now forecasts 6"),
        (_extra_feature, r"needs feature column\(s\) \['shelf_space'\]"),
        (_unfitted, "could not predict the backtest rows: RuntimeError"),
    ],
)
def test_a_champion_that_cannot_be_compared_is_reported_not_raised(monthly_champion_case, breakage, message):
    features, _, spec, run_date, origin, train = monthly_champion_case
    champ = QuantileForecaster(spec).fit(train)
    trained_to = run_date  # trained after every backtest target
    if breakage is not None:
        breakage(champ)
        trained_to = origin
    metrics = _compare(monthly_champion_case, champ, trained_to)
    comparison = metrics["champion"]
    assert comparison["error"] and re.search(message, comparison["error"])
    assert comparison["beats_champion"] is False and comparison["improvement"] is None
    assert metrics["beats_baseline"] in (True, False) and math.isfinite(metrics["model"]["wape"])


def test_champion_rows_exclude_targets_up_to_trained_to(spec):
    dates = pd.date_range("2024-06-08", periods=6, freq="D")
    rows = pd.DataFrame(
        {
            "store_id": "S00",
            "sku_id": "K000",
            "target_date": dates,
            "actual": 10.0,
            "scale": 2.0,
            "p50": [10.0, 10.0, 10.0, 12.0, 8.0, 11.0],
            "champion": [0.0, 0.0, 0.0, 9.0, 9.0, 9.0],  # awful up to trained_to, good after
        }
    )
    champion = ChampionInput("v1", QuantileForecaster(spec), pd.Timestamp("2024-06-10"))
    comparison = champion_comparison(rows, spec, champion)
    assert comparison["n_eval_rows"] == 3
    assert comparison["challenger"]["wape"] == pytest.approx(wape([10.0] * 3, [12.0, 8.0, 11.0]))
    assert comparison["champion"]["wape"] == pytest.approx(0.1)
    assert comparison["beats_champion"] is False  # WAPE 5/30 vs 3/30: the challenger is worse here
    assert champion_comparison(rows, spec, None) is None
