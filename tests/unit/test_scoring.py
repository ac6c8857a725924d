"""Chunked batch scoring from origin = run_date."""

import datetime as dt

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

from mlplatform.errors import DataQualityError, ModelNotAvailableError
from mlplatform.forecasting import (
    QuantileForecaster,
    build_training_set,
    make_supervised,
    required_history_periods,
)
from mlplatform.scoring import forecast_chunks

DAY = pd.Timedelta(days=1)


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    with single_threaded():
        yield
COLUMNS = ["store_id", "sku_id", "series_id", "target_date", "horizon", "p10", "p50", "p90"]


@pytest.fixture(scope="module")
def data():
    return make_data(n_stores=3, n_skus=4, n_days=150)


@pytest.fixture(scope="module")
def spec():
    return make_spec()


@pytest.fixture(scope="module")
def model(data, spec):
    features, calendar = data
    return QuantileForecaster(spec).fit(build_training_set(features, calendar, spec, last_date(features)))


def _score(model, data, spec, chunk_rows, run_date=None, features=None):
    feats, calendar = data
    feats = feats if features is None else features
    run_date = last_date(feats) if run_date is None else run_date
    return list(forecast_chunks(model, feats, calendar, spec, run_date, chunk_rows))


@pytest.mark.parametrize("chunk_rows", [14, 30, 1_000])
def test_chunks_cover_every_series_once_within_the_row_limit(model, data, spec, chunk_rows):
    features, _ = data
    chunks = _score(model, data, spec, chunk_rows)
    horizon = spec.forecast.horizon
    assert all(0 < len(c) <= chunk_rows for c in chunks)
    per_chunk = [set(c["series_id"]) for c in chunks]
    seen = [s for chunk in per_chunk for s in chunk]
    assert len(seen) == len(set(seen)) == features["series_id"].nunique()  # each series in one chunk
    allrows = pd.concat(chunks, ignore_index=True)
    assert len(allrows) == features["series_id"].nunique() * horizon
    assert not allrows.duplicated(["series_id", "horizon"]).any()


def test_chunk_smaller_than_horizon_still_respects_the_limit(model, data, spec):
    features, _ = data
    chunks = _score(model, data, spec, 5)
    assert all(len(c) <= 5 for c in chunks)
    allrows = pd.concat(chunks, ignore_index=True)
    assert len(allrows) == features["series_id"].nunique() * spec.forecast.horizon


def test_output_columns_types_and_dates(model, data, spec):
    run_date = last_date(data[0])
    out = pd.concat(_score(model, data, spec, 1_000), ignore_index=True)
    assert list(out.columns) == COLUMNS
    assert out["horizon"].dtype == "int64"
    assert all(isinstance(d, dt.date) for d in out["target_date"])
    expected = {(run_date + h * DAY).date() for h in range(1, spec.forecast.horizon + 1)}
    assert set(out["target_date"]) == expected
    assert (out["p10"] <= out["p50"]).all() and (out["p50"] <= out["p90"]).all() and (out["p10"] >= 0).all()


def test_chunking_does_not_change_the_numbers(model, data, spec):
    features, calendar = data
    run_date = last_date(features)
    small = pd.concat(_score(model, data, spec, 14), ignore_index=True)
    whole = model.predict(make_supervised(features, calendar, spec, [run_date], with_target=False))
    merged = small.merge(whole, on=["series_id", "horizon"], suffixes=("", "_whole"))
    assert len(merged) == len(whole)
    for col in ("p10", "p50", "p90"):
        assert (merged[col] - merged[f"{col}_whole"]).abs().max() < 1e-9


def test_only_series_present_on_run_date_are_scored(model, data, spec):
    features, _ = data
    run_date = last_date(features)
    gone = features[~((features["series_id"] == "S01-K001") & (features["sales_date"] == run_date))]
    out = pd.concat(_score(model, data, spec, 1_000, features=gone), ignore_index=True)
    assert "S01-K001" not in set(out["series_id"])
    assert out["series_id"].nunique() == features["series_id"].nunique() - 1


def test_run_date_without_feature_rows_is_a_data_quality_error(model, data, spec):
    features, _ = data
    missing = last_date(features) + 3 * DAY
    with pytest.raises(DataQualityError, match=str(missing.date())):
        _score(model, data, spec, 1_000, run_date=missing)


def test_calendar_must_cover_the_horizon(model, data, spec):
    features, calendar = data
    run_date = last_date(features)
    short = calendar[calendar["calendar_date"] <= run_date + 5 * DAY]
    with pytest.raises(DataQualityError, match="calendar"):
        list(forecast_chunks(model, features, short, spec, run_date, 1_000))


def test_scoring_ignores_rows_before_the_lookback_and_accepts_any_date_type(model, data, spec):
    features, calendar = data
    run_date = last_date(features)
    a = pd.concat(forecast_chunks(model, features, calendar, spec, run_date.date().isoformat(), 1_000))
    recent = features[features["sales_date"] > run_date - 40 * DAY]
    b = pd.concat(forecast_chunks(model, recent, calendar, spec, run_date, 1_000))
    aware = run_date.tz_localize("UTC")  # e.g. an Airflow logical date
    c = pd.concat(forecast_chunks(model, features, calendar, spec, aware, 1_000))
    pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True))
    pd.testing.assert_frame_equal(a.reset_index(drop=True), c.reset_index(drop=True))


# ------------------------------------------------------------------------------------------ monthly


@pytest.fixture(scope="module")
def monthly():
    features, calendar = make_period_data("monthly")
    spec = make_period_spec("monthly")
    model = QuantileForecaster(spec).fit(build_training_set(features, calendar, spec, last_date(features)))
    return features, calendar, spec, model


def test_mid_month_run_date_forecasts_from_the_previous_month_end(monthly):
    features, calendar, spec, model = monthly
    month_end = last_date(features)
    mid = pd.concat(forecast_chunks(model, features, calendar, spec, month_end + 12 * DAY, 1_000))
    on_end = pd.concat(forecast_chunks(model, features, calendar, spec, month_end, 1_000))
    pd.testing.assert_frame_equal(mid.reset_index(drop=True), on_end.reset_index(drop=True))
    future = period_ends("monthly", spec.forecast.horizon, month_end + DAY)
    for h, dates in mid.groupby("horizon")["target_date"]:
        assert set(dates) == {future[h - 1].date()}


def test_monthly_scoring_keeps_only_the_periods_it_looks_back_on(monthly):
    features, calendar, spec, model = monthly
    spec = spec.model_copy(update={"model": spec.model.model_copy(update={"candidates": ["seasonal_naive", "gbm"]})})
    run_date = last_date(features)
    first = run_date - pd.offsets.MonthEnd(required_history_periods(spec))
    recent = features[features["sales_date"] >= first]
    assert len(recent) < len(features)
    a = pd.concat(forecast_chunks(model, features, calendar, spec, run_date, 1_000), ignore_index=True)
    b = pd.concat(forecast_chunks(model, recent, calendar, spec, run_date, 1_000), ignore_index=True)
    pd.testing.assert_frame_equal(a, b)


def test_monthly_calendar_and_origin_rows_are_checked_in_periods(monthly):
    features, calendar, spec, model = monthly
    month_end = last_date(features)
    short = calendar[calendar["calendar_date"] < calendar["calendar_date"].max()]
    with pytest.raises(DataQualityError, match=f"calendar has no rows.*forecast origin {month_end.date()}"):
        list(forecast_chunks(model, features, short, spec, month_end + 5 * DAY, 1_000))
    next_end = month_end + pd.offsets.MonthEnd(1)
    with pytest.raises(DataQualityError, match=f"no feature rows for forecast origin {next_end.date()}"):
        list(forecast_chunks(model, features, calendar, spec, next_end + DAY, 1_000))


def test_a_model_of_another_frequency_is_not_served(monthly, model):
    features, calendar, monthly_spec, _ = monthly
    with pytest.raises(ModelNotAvailableError, match="daily periods but the spec's frequency is monthly"):
        list(forecast_chunks(model, features, calendar, monthly_spec, last_date(features), 1_000))


# ------------------------------------------------------------------------ row order of the features


def _sorted(chunks):
    return pd.concat(chunks).sort_values(["store_id", "sku_id", "horizon"]).reset_index(drop=True)


@pytest.mark.parametrize("layout", ["shuffled", "series_split", "time_reversed"])
def test_forecasts_do_not_depend_on_the_row_order_of_the_features(model, data, spec, layout):
    """Snapshots are sorted by series then time, and scoring then indexes each series by two offsets (memory
    flat in the input size); any other order takes the general index and gives the same forecasts."""
    from mlplatform.scoring import _series_segments

    features, _ = data
    assert _series_segments(features, spec) is not None  # the sorted frame takes the offsets path
    if layout == "shuffled":
        other = features.sample(frac=1.0, random_state=3)
    elif layout == "series_split":  # one series' early rows moved to the end: two runs of one series
        first = (features["store_id"] == features["store_id"].iloc[0]) & (features["sku_id"] == features["sku_id"].iloc[0])
        early = first & (features["sales_date"] < features["sales_date"].min() + 30 * DAY)
        other = pd.concat([features[~early], features[early]])
    else:
        other = features.iloc[::-1]
    assert _series_segments(other, spec) is None
    pd.testing.assert_frame_equal(_sorted(_score(model, data, spec, 1_000)),
                                  _sorted(_score(model, data, spec, 1_000, features=other)))
