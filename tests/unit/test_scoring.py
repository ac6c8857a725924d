"""Chunked batch scoring from origin = run_date."""

import datetime as dt

import pandas as pd
import pytest

from mlplatform.errors import DataQualityError
from mlplatform.forecasting import QuantileForecaster, build_training_set, make_supervised
from mlplatform.scoring import forecast_chunks

try:  # tests/unit as a package or as a plain directory on sys.path
    from .forecast_fixtures import last_date, make_data, make_spec
except ImportError:
    from forecast_fixtures import last_date, make_data, make_spec

DAY = pd.Timedelta(days=1)
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
