"""Supervised frame construction, the quantile model and the seasonal-naive baseline."""

import numpy as np
import pandas as pd
import pytest
from forecast_fixtures import (
    last_date,
    make_data,
    make_period_data,
    make_period_spec,
    make_spec,
    period_ends,
    single_threaded,
)

from mlplatform.errors import DataQualityError
from mlplatform.forecasting import (
    Periods,
    QuantileForecaster,
    build_training_set,
    forecast_origin,
    make_supervised,
    periods_for,
    required_history_periods,
    seasonal_naive,
    training_origins,
)

DAY = pd.Timedelta(days=1)


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    with single_threaded():
        yield


@pytest.fixture(scope="module")
def data():
    return make_data()


@pytest.fixture(scope="module")
def spec():
    return make_spec()


@pytest.fixture(scope="module")
def model(data, spec):
    features, calendar = data
    return QuantileForecaster(spec).fit(build_training_set(features, calendar, spec, last_date(features)))


def _value(features, series_id, date, column="units_sold"):
    row = features[(features["series_id"] == series_id) & (features["sales_date"] == date)]
    return row[column].iloc[0]


# ------------------------------------------------------------------------------------- make_supervised


def test_supervised_rows_carry_origin_features_and_target_calendar(data, spec):
    features, calendar = data
    origin = pd.Timestamp("2024-05-10")
    sup = make_supervised(features, calendar, spec, [origin], with_target=False)
    horizon = spec.forecast.horizon
    n_series = features["series_id"].nunique()
    assert len(sup) == n_series * horizon
    assert sorted(sup["horizon"].unique()) == list(range(1, horizon + 1))
    assert (sup["target_date"] == sup["origin_date"] + pd.to_timedelta(sup["horizon"], unit="D")).all()
    cal = calendar.set_index("calendar_date")
    for col in spec.features.calendar:
        assert np.array_equal(sup[f"target_{col}"].to_numpy(), cal.loc[sup["target_date"], col].to_numpy())
    row = sup[(sup["series_id"] == "S01-K002") & (sup["horizon"] == 3)].iloc[0]
    assert row["y_origin"] == _value(features, "S01-K002", origin)
    assert row["lag_7"] == _value(features, "S01-K002", origin, "lag_7")
    assert row["day_of_week"] == origin.dayofweek + 1
    assert row["target_day_of_week"] == (origin + 3 * DAY).dayofweek + 1


def test_supervised_target_is_value_at_target_date_and_censored_targets_are_dropped(data, spec):
    features, calendar = data
    origins = pd.date_range("2024-04-01", periods=20, freq="D")
    sup = make_supervised(features, calendar, spec, origins, with_target=True)
    merged = sup.merge(
        features[["series_id", "sales_date", "units_sold", "is_stockout"]],
        left_on=["series_id", "target_date"],
        right_on=["series_id", "sales_date"],
    )
    assert len(merged) == len(sup)
    assert (merged["y"] == merged["units_sold"]).all()
    assert not merged["is_stockout"].any()
    n_censored = features[
        features["is_stockout"] & features["sales_date"].between(origins[0] + DAY, origins[-1] + 14 * DAY)
    ]
    assert len(sup) < len(origins) * features["series_id"].nunique() * spec.forecast.horizon
    assert len(n_censored) > 0  # the fixture does have censored days in range


def test_targets_beyond_the_frame_are_dropped_not_invented(data, spec):
    features, calendar = data
    end = last_date(features)
    sup = make_supervised(features, calendar, spec, [end - 5 * DAY], with_target=True)
    assert sup["horizon"].max() <= 5
    assert sup["target_date"].max() <= end


def test_origins_absent_from_the_frame_give_no_rows(data, spec):
    features, calendar = data
    sup = make_supervised(features, calendar, spec, [pd.Timestamp("2030-01-01")], with_target=False)
    assert sup.empty
    assert make_supervised(features, calendar, spec, [], with_target=False).empty


def test_seasonal_reference_feature_equals_seasonal_naive(data, spec):
    features, calendar = data
    origin = pd.Timestamp("2024-06-01")
    sup = make_supervised(features, calendar, spec, [origin], with_target=False)
    naive = seasonal_naive(features, spec, origin)
    merged = sup.merge(naive, on=["series_id", "horizon"])
    ok = merged["y_seasonal"].notna()  # censored reference days are masked in the feature only
    assert ok.mean() > 0.9
    assert np.allclose(merged.loc[ok, "y_seasonal"], merged.loc[ok, "p50"])


def test_duplicate_series_dates_are_rejected(data, spec):
    features, calendar = data
    doubled = pd.concat([features, features.iloc[[0]]])
    with pytest.raises(DataQualityError, match="duplicate"):
        make_supervised(doubled, calendar, spec, [features["sales_date"].iloc[0]])


def test_missing_feature_column_is_named(data, spec):
    features, calendar = data
    with pytest.raises(DataQualityError, match="lag_7"):
        make_supervised(features.drop(columns=["lag_7"]), calendar, spec)


# ------------------------------------------------------------------------------------ training set


def test_training_origins_cover_window_with_stride(spec):
    cutoff = pd.Timestamp("2024-07-01")
    origins = training_origins(cutoff, spec)
    assert origins.max() == cutoff - DAY
    assert origins.min() > cutoff - spec.model.training_window * DAY
    assert set(np.diff(origins.to_numpy()).astype("timedelta64[D]").astype(int)) == {
        spec.model.origin_stride
    }


def test_training_set_never_has_targets_after_cutoff(data, spec):
    features, calendar = data
    cutoff = pd.Timestamp("2024-05-15")
    train = build_training_set(features, calendar, spec, cutoff, max_rows=None)
    assert train["target_date"].max() <= cutoff
    assert train["origin_date"].max() < cutoff
    assert train["y"].notna().all()


def test_training_set_row_budget_is_a_deterministic_sample(data, spec):
    features, calendar = data
    cutoff = last_date(features)
    full = build_training_set(features, calendar, spec, cutoff, max_rows=None)
    a = build_training_set(features, calendar, spec, cutoff, max_rows=500)
    b = build_training_set(features, calendar, spec, cutoff, max_rows=500)
    assert len(full) > 500 and len(a) == 500
    pd.testing.assert_frame_equal(a, b)
    keys = ["series_id", "origin_date", "horizon"]
    assert len(a.merge(full[keys], on=keys)) == 500  # a subset of the full set


# -------------------------------------------------------------------------------------------- model


def test_predictions_are_monotone_non_negative_quantiles(data, spec, model):
    features, calendar = data
    sup = make_supervised(features, calendar, spec, [last_date(features)], with_target=False)
    pred = model.predict(sup)
    assert list(pred.columns) == [
        "store_id",
        "sku_id",
        "series_id",
        "origin_date",
        "target_date",
        "horizon",
        "p10",
        "p50",
        "p90",
    ]
    assert len(pred) == len(sup)
    q = pred[["p10", "p50", "p90"]].to_numpy()
    assert np.isfinite(q).all()
    assert (q >= 0).all()
    assert (np.diff(q, axis=1) >= 0).all()


def test_crossing_quantiles_are_sorted_and_clipped(data, spec, model):
    features, calendar = data

    class Constant:
        def __init__(self, value):
            self.value = value

        def predict(self, X):
            return np.full(len(X), self.value)

    crossed = QuantileForecaster.from_bytes(model.to_bytes())
    crossed.estimators = [Constant(5.0), Constant(3.0), Constant(-1.0)]
    sup = make_supervised(features, calendar, spec, [last_date(features)], with_target=False)
    pred = crossed.predict(sup)
    assert (pred["p10"] == 0).all() and (pred["p50"] == 3).all() and (pred["p90"] == 5).all()


def test_unseen_categories_do_not_crash(data, spec, model):
    features, calendar = data
    end = last_date(features)
    novel = features.copy()
    novel.loc[novel["series_id"] == "S00-K000", ["store_id", "category", "region"]] = ["S99", "toys", "west"]
    sup = make_supervised(novel, calendar, spec, [end], with_target=False)
    pred = model.predict(sup)
    assert np.isfinite(pred[["p10", "p50", "p90"]].to_numpy()).all()
    assert "S99" in set(pred["store_id"])
    assert "S99" not in model.categories["store_id"]


def test_category_levels_are_stored_on_the_model(model, data):
    features, _ = data
    assert model.categories["store_id"] == sorted(features["store_id"].unique())
    assert model.categories["category"] == sorted(features["category"].unique())


def test_two_fits_give_identical_predictions(data, spec, model):
    features, calendar = data
    end = last_date(features)
    again = QuantileForecaster(spec).fit(build_training_set(features, calendar, spec, end))
    sup = make_supervised(features, calendar, spec, [end], with_target=False)
    pd.testing.assert_frame_equal(model.predict(sup), again.predict(sup))


def test_bytes_round_trip_preserves_predictions(data, spec, model):
    features, calendar = data
    blob = model.to_bytes()
    assert isinstance(blob, bytes)
    restored = QuantileForecaster.from_bytes(blob)
    sup = make_supervised(features, calendar, spec, [last_date(features)], with_target=False)
    pd.testing.assert_frame_equal(model.predict(sup), restored.predict(sup))
    assert restored.feature_names == model.feature_names
    assert (restored.horizon, restored.frequency) == (spec.forecast.horizon, "daily")
    assert QuantileForecaster(make_period_spec("monthly")).frequency == "monthly"


def test_from_bytes_rejects_other_objects():
    import io

    import joblib

    buffer = io.BytesIO()
    joblib.dump({"not": "a model"}, buffer)
    with pytest.raises(TypeError, match="QuantileForecaster"):
        QuantileForecaster.from_bytes(buffer.getvalue())


def test_predict_before_fit_and_fit_without_rows_fail_clearly(data, spec):
    features, calendar = data
    sup = make_supervised(features, calendar, spec, [last_date(features)], with_target=False)
    with pytest.raises(RuntimeError, match="before fit"):
        QuantileForecaster(spec).predict(sup)
    with pytest.raises(DataQualityError, match="no training rows"):
        QuantileForecaster(spec).fit(sup.iloc[:0].assign(y=[]))


# ----------------------------------------------------------------------------------------- baseline


def test_seasonal_naive_repeats_the_last_observed_season(data, spec):
    features, _ = data
    origin = pd.Timestamp("2024-06-01")
    naive = seasonal_naive(features, spec, origin)
    series = naive[naive["series_id"] == "S00-K001"].set_index("horizon")["p50"]
    assert len(series) == spec.forecast.horizon
    for h, back in ((1, 6), (6, 1), (7, 0), (8, 6), (14, 0)):
        assert series[h] == _value(features, "S00-K001", origin - back * DAY)
    assert list(naive.columns) == [
        "store_id",
        "sku_id",
        "series_id",
        "origin_date",
        "target_date",
        "horizon",
        "p50",
    ]


# ------------------------------------------------------------------------------------------- periods


def _days(date):
    return (pd.Timestamp(date) - pd.Timestamp("1970-01-01")).days


@pytest.mark.parametrize(
    ("periods", "date", "number"),
    [
        (Periods("daily"), "2024-03-14", _days("2024-03-14")),
        (Periods("weekly", week_end=5), "2024-03-16", _days("2024-03-16") // 7),  # a Saturday
        (Periods("weekly"), "2024-03-17", _days("2024-03-17") // 7),  # default: Sunday
        (Periods("monthly"), "2024-02-29", 2024 * 12 + 1),
        (Periods("quarterly"), "2024-06-30", 2024 * 4 + 1),
        (Periods("quarterly"), "1969-12-31", 1969 * 4 + 3),  # before the epoch too
    ],
)
def test_period_numbers_round_trip_to_period_end_dates(periods, date, number):
    assert periods.numbers([date], "x").tolist() == [number]
    assert periods.ends(np.array([number]))[0] == pd.Timestamp(date)


@pytest.mark.parametrize("frequency", ["weekly", "monthly", "quarterly"])
def test_consecutive_period_ends_are_consecutive_numbers(frequency):
    ends = period_ends(frequency, 30, pd.Timestamp("2023-11-01"))  # crosses year ends
    periods = periods_for(make_period_spec(frequency), ends)
    numbers = periods.numbers(ends, "x")
    assert set(np.diff(numbers)) == {1}
    assert periods.ends(numbers).equals(pd.DatetimeIndex(ends))


@pytest.mark.parametrize(
    ("frequency", "run_date", "origin"),
    [
        ("daily", "2024-03-14", "2024-03-14"),
        ("monthly", "2024-03-14", "2024-02-29"),
        ("monthly", "2024-03-31", "2024-03-31"),
        ("quarterly", "2024-05-10", "2024-03-31"),
        ("quarterly", "2024-01-01", "2023-12-31"),
        ("weekly", "2024-03-13", "2024-03-10"),  # no data to show the weekday: ISO week end (Sunday)
    ],
)
def test_origin_of_a_run_date_is_the_latest_period_end_on_or_before_it(frequency, run_date, origin):
    spec = make_spec() if frequency == "daily" else make_period_spec(frequency)
    assert forecast_origin(run_date, spec) == pd.Timestamp(origin)


def test_weekly_origin_uses_the_week_ending_weekday_of_the_data():
    features, _ = make_period_data("weekly")  # weeks end on Saturday
    spec = make_period_spec("weekly")
    wednesday = last_date(features) + 4 * DAY
    assert forecast_origin(wednesday, spec, features["sales_date"]) == last_date(features)
    assert forecast_origin(last_date(features), spec, features["sales_date"]) == last_date(features)


@pytest.fixture(scope="module")
def monthly():
    return make_period_data("monthly"), make_period_spec("monthly")


@pytest.fixture(scope="module")
def weekly():
    return make_period_data("weekly"), make_period_spec("weekly")


def test_mid_month_feature_dates_are_rejected_naming_column_and_convention(monthly):
    (features, calendar), spec = monthly
    bad = features.copy()
    bad.loc[bad.index[5], "sales_date"] = pd.Timestamp("2018-06-14")
    with pytest.raises(DataQualityError, match=r"features column 'sales_date'.*month end.*2018-06-14"):
        make_supervised(bad, calendar, spec)
    with pytest.raises(DataQualityError, match=r"last day"):
        build_training_set(bad, calendar, spec, last_date(features))


def test_weekly_dates_off_the_week_ending_weekday_are_rejected(weekly):
    (features, calendar), spec = weekly
    bad = features.copy()
    bad.loc[bad.index[3], "sales_date"] += DAY  # a Sunday among Saturdays
    with pytest.raises(DataQualityError, match=r"'sales_date'.*week-ending date.*Saturday"):
        make_supervised(bad, calendar, spec)


def test_calendar_dates_must_be_period_ends_too(monthly):
    (features, calendar), spec = monthly
    daily_calendar = calendar.assign(calendar_date=calendar["calendar_date"] - 3 * DAY)
    with pytest.raises(DataQualityError, match=r"calendar column 'calendar_date'.*month end"):
        make_supervised(features, daily_calendar, spec, [last_date(features)], with_target=False)


def test_monthly_supervised_rows_target_the_following_month_ends(monthly):
    (features, calendar), spec = monthly
    origin = pd.Timestamp("2022-01-31")
    sup = make_supervised(features, calendar, spec, [origin], with_target=True)
    expected = sup["horizon"].map(lambda h: origin + pd.offsets.MonthEnd(h))
    assert (sup["target_date"] == expected).all()
    assert sorted(sup["horizon"].unique()) == list(range(1, spec.forecast.horizon + 1))
    cal = calendar.set_index("calendar_date")
    assert np.array_equal(sup["target_month"], cal.loc[sup["target_date"], "month"])
    actual = sup.merge(features, left_on=["series_id", "target_date"], right_on=["series_id", "sales_date"])
    assert len(actual) == len(sup) and (actual["y"] == actual["units_sold"]).all()


@pytest.mark.parametrize("frequency", ["weekly", "monthly"])
def test_seasonal_naive_looks_back_season_length_periods(frequency, weekly, monthly):
    (features, _), spec = weekly if frequency == "weekly" else monthly
    season = spec.backtest.season_length
    origin = period_ends(frequency, 60)[-1]
    naive = seasonal_naive(features, spec, origin)
    values = features.set_index(["series_id", "sales_date"])["units_sold"]
    step = (lambda n: n * 7 * DAY) if frequency == "weekly" else pd.offsets.MonthEnd
    for row in naive[naive["series_id"] == "S01-K002"].itertuples():
        back = season * -(-row.horizon // season)  # season * ceil(h / season) periods
        assert row.target_date == origin + step(row.horizon)
        assert row.p50 == values[("S01-K002", row.target_date - step(back))]


def test_training_window_and_history_are_counted_in_periods(monthly):
    (features, calendar), spec = monthly
    cutoff = pd.Timestamp("2023-07-14")  # mid-month: the window ends at 2023-06-30
    origins = training_origins(cutoff, spec, Periods("monthly"))
    assert origins.max() == pd.Timestamp("2023-05-31")
    assert len(origins) == spec.model.training_window - 1
    assert origins.min() == pd.Timestamp("2023-06-30") - pd.offsets.MonthEnd(spec.model.training_window - 1)
    assert origins.is_month_end.all()
    train = build_training_set(features, calendar, spec, cutoff, max_rows=None)
    assert train["target_date"].max() == pd.Timestamp("2023-06-30")
    # four seasons for the trees' references, or the statistical candidates' window (360 months) if longer
    with_statistical = spec.model_copy(update={"model": spec.model.model_copy(
        update={"candidates": ["seasonal_naive", "auto_ets", "gbm"]})})
    assert required_history_periods(with_statistical) == max(4 * spec.backtest.season_length, 360)
    assert required_history_periods(spec.model_copy(update={"model": spec.model.model_copy(
        update={"candidates": ["seasonal_naive", "gbm"]})})) == 4 * spec.backtest.season_length
