"""Synthetic revenue ledger: determinism across chunkings, parameter checks and the revenue effects."""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd
import pytest

from mlplatform import datagen
from mlplatform.errors import SpecError
from mlplatform.spec import SourceSpec
from mlplatform.synthetic import revenue_ledger as rl

PARAMS = {"n_business_units": 4, "n_regions": 3, "seed": 7}
START, END = date(2023, 1, 1), date(2024, 12, 31)


@pytest.fixture(scope="module")
def ledger() -> pd.DataFrame:
    return rl.generate_ledger(START, END, **PARAMS)


@pytest.fixture(scope="module")
def daily(ledger: pd.DataFrame) -> pd.DataFrame:
    """Daily revenue per series on a complete grid (zero-filled), with the business calendar."""
    revenue = ledger.groupby(["posting_date", "business_unit", "region"])["amount"].sum()
    days = pd.date_range(START, END, freq="D")
    series = ledger[["business_unit", "region"]].drop_duplicates()
    grid = pd.MultiIndex.from_tuples(
        [(d, u, r) for d in days for u, r in series.itertuples(index=False)],
        names=["posting_date", "business_unit", "region"])
    out = revenue.reindex(grid, fill_value=0.0).rename("revenue").reset_index()
    units = rl.generate_business_units(PARAMS)
    out = out.merge(units[["business_unit", "segment"]], on="business_unit")
    holidays = datagen.load_holidays()
    day = out["posting_date"].dt.date
    out["is_holiday"] = day.isin(holidays)
    out["is_business_day"] = day.map(lambda d: rl.is_business_day(d, holidays))
    out["month_end_rank"] = day.map(lambda d: rl.month_end_rank(d, holidays))
    out["is_quarter_end"] = out["month_end_rank"].notna() & (out["posting_date"].dt.month % 3 == 0)
    return out


# ------------------------------------------------------------------------------------------- shape


def test_columns_dtypes_and_keys(ledger: pd.DataFrame) -> None:
    df = ledger
    assert list(df.columns) == list(rl.LEDGER_COLUMNS)
    assert str(df["posting_date"].dtype).startswith("datetime64")
    assert (df["posting_date"] == df["posting_date"].dt.normalize()).all()
    assert df["amount"].dtype == "float64" and df["amount"].notna().all()
    assert df["entry_id"].is_unique
    assert set(df["currency"]) == {"USD"}
    assert set(df["business_unit"]) == {"BU01", "BU02", "BU03", "BU04"}
    assert set(df["region"]) == set(rl.REGIONS[:3])
    assert df["posting_date"].is_monotonic_increasing
    first = df.iloc[0]
    assert first["entry_id"] == f"JE{first['posting_date']:%Y%m%d}-{first['business_unit']}-{first['region']}-001"


def test_posting_volume_and_credit_notes(ledger: pd.DataFrame) -> None:
    per_series_day = ledger.groupby(["posting_date", "business_unit", "region"]).size()
    assert per_series_day.max() <= 20
    assert 5 <= per_series_day.median() <= 15
    credit = ledger["amount"] < 0
    assert 0.005 < credit.mean() < 0.03
    assert (ledger.loc[credit, "account"] == rl.CREDIT_NOTE_ACCOUNT).all()
    assert (ledger.loc[~credit, "account"] != rl.CREDIT_NOTE_ACCOUNT).all()


def test_business_units_dimension() -> None:
    units = rl.generate_business_units(PARAMS)
    assert list(units.columns) == list(rl.BUSINESS_UNIT_COLUMNS)
    assert list(units["business_unit"]) == ["BU01", "BU02", "BU03", "BU04"]
    assert set(units["segment"]) == {s.name for s in rl.SEGMENTS}
    pd.testing.assert_frame_equal(units, rl.generate_business_units(dict(PARAMS)))
    many = rl.generate_business_units({**PARAMS, "n_business_units": 10})
    assert many["business_unit"].iloc[-1] == "BU10" and many["business_unit_name"].is_unique


def test_trend_breaks_are_seeded_and_inside_the_built_in_range() -> None:
    breaks = rl.trend_breaks(PARAMS)
    assert set(breaks) == {"BU01", "BU02", "BU03", "BU04"}
    for days in breaks.values():
        assert 1 <= len(days) <= 2 and days == sorted(days)
        assert all(date(2022, 7, 1) <= d <= date(2025, 3, 31) for d in days)
    assert breaks == rl.trend_breaks(dict(PARAMS))
    assert breaks != rl.trend_breaks({**PARAMS, "seed": 8})


# ------------------------------------------------------------------------------------- determinism


def test_rows_do_not_depend_on_the_requested_range_or_chunking(ledger: pd.DataFrame) -> None:
    start, end = date(2023, 12, 20), date(2024, 1, 20)
    window = ledger[ledger["posting_date"].between(pd.Timestamp(start), pd.Timestamp(end))].reset_index(drop=True)
    day_by_day = pd.concat(
        [rl.generate_ledger(start + timedelta(days=i), start + timedelta(days=i), **PARAMS)
         for i in range((end - start).days + 1)], ignore_index=True)
    odd_chunks = pd.concat(list(rl.iter_ledger(PARAMS, start, end, chunk_days=5)), ignore_index=True)
    via_source = pd.concat([c["ledger_entries"] for c in rl.SOURCE.fact_chunks(PARAMS, start, end, 7)],
                           ignore_index=True)
    for frame in (day_by_day, odd_chunks, via_source):
        pd.testing.assert_frame_equal(frame, window)


def test_seed_changes_the_data_and_more_series_keep_none_of_the_old_rows_fixed() -> None:
    a = rl.generate_ledger(date(2024, 1, 1), date(2024, 1, 31), **PARAMS)
    b = rl.generate_ledger(date(2024, 1, 1), date(2024, 1, 31), **{**PARAMS, "seed": 8})
    assert not a["amount"].equals(b["amount"])
    wide = rl.generate_ledger(date(2024, 1, 1), date(2024, 1, 3), **{**PARAMS, "n_regions": 5})
    assert set(wide["region"]) == set(rl.REGIONS[:5])


def test_source_is_registered_and_lands_through_the_spec() -> None:
    assert datagen.get_source("revenue_ledger") is rl.SOURCE
    assert rl.SOURCE.primary == ("ledger_entries", "posting_date")
    src = SourceSpec(generator="revenue_ledger", history_start=date(2024, 1, 1), params={"seed": 3})
    assert datagen.source_params(src)["n_business_units"] == 4
    tables = datagen.source_tables(src, date(2024, 1, 1), date(2024, 1, 3))
    assert set(tables) == {"ledger_entries", "business_units"}
    assert len(tables["business_units"]) == 4
    assert set(tables["ledger_entries"]["region"]) == set(rl.REGIONS[:3])


# -------------------------------------------------------------------------------------- parameters


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({**PARAMS, "n_stores": 3}, r"unknown parameter\(s\) \['n_stores'\]"),
        ({"n_business_units": 2}, r"missing required parameter\(s\) \['seed'\]"),
        ({**PARAMS, "n_business_units": 0}, "n_business_units must be a positive integer"),
        ({**PARAMS, "n_business_units": True}, "n_business_units must be a positive integer"),
        ({**PARAMS, "n_regions": 2.0}, "n_regions must be a positive integer"),
        ({**PARAMS, "n_regions": len(rl.REGIONS) + 1}, "n_regions must be at most 6"),
        ({**PARAMS, "seed": -1}, "seed must be a non-negative integer"),
        ({**PARAMS, "seed": "42"}, "seed must be a non-negative integer"),
        ({**PARAMS, "drift_start": "March"}, "drift_start must be an ISO date"),
        ({**PARAMS, "drift_start": 20240301}, "drift_start must be a date"),
        ({**PARAMS, "drift_factor": 0}, "drift_factor must be a number > 0"),
        ({**PARAMS, "drift_factor": "2"}, "drift_factor must be a number > 0"),
    ],
)
def test_bad_params_raise_value_errors_naming_the_parameter(params: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        rl.check_params(params)


def test_check_params_fills_defaults_and_parses_dates() -> None:
    out = rl.check_params({"seed": 1, "drift_start": "2024-05-01", "drift_factor": 2})
    assert out == {"n_business_units": 4, "n_regions": 3, "seed": 1, "drift_start": date(2024, 5, 1),
                   "drift_factor": 2.0}


def test_spec_params_errors_become_spec_errors_naming_the_generator() -> None:
    src = SourceSpec(generator="revenue_ledger", history_start=date(2024, 1, 1), params={"n_regions": 2})
    with pytest.raises(SpecError, match=r"seed.*revenue_ledger"):
        datagen.source_params(src)
    with pytest.raises(ValueError, match="chunk_days"):
        next(rl.iter_ledger(PARAMS, date(2024, 1, 1), date(2024, 1, 2), chunk_days=0))


def test_empty_range_gives_an_empty_frame_with_the_ledger_columns() -> None:
    empty = rl.generate_ledger(date(2024, 1, 2), date(2024, 1, 1), **PARAMS)
    assert empty.empty and list(empty.columns) == list(rl.LEDGER_COLUMNS)


# ----------------------------------------------------------------------------------------- effects


def test_business_calendar_rules() -> None:
    holidays = datagen.load_holidays()
    # November 2024 ends on a Saturday and Thanksgiving (US) is Thursday the 28th: the window is
    # Tue 26th, Wed 27th and Fri 29th.
    ranks = {d: rl.month_end_rank(date(2024, 11, d), holidays) for d in range(25, 31)}
    assert ranks == {25: None, 26: 2, 27: 1, 28: None, 29: 0, 30: None}
    assert not rl.is_business_day(date(2024, 11, 28), holidays)
    assert rl.is_business_day(date(2024, 4, 2), holidays)
    assert not rl.is_business_day(date(2024, 4, 6), holidays)  # Saturday


def test_weekday_profile_b2b_units_have_no_weekend_postings(daily: pd.DataFrame) -> None:
    weekend = daily["posting_date"].dt.dayofweek >= 5
    ordinary = ~daily["is_holiday"] & daily["month_end_rank"].isna()
    by_segment = daily[ordinary].groupby(["segment", weekend[ordinary]])["revenue"].mean().unstack()
    assert by_segment.loc["enterprise", True] == 0 and by_segment.loc["public_sector", True] == 0
    assert 0 < by_segment.loc["mid_market", True] < 0.25 * by_segment.loc["mid_market", False]
    assert by_segment.loc["consumer", True] > by_segment.loc["consumer", False]


def test_month_end_and_quarter_end_spikes_are_visible(daily: pd.DataFrame) -> None:
    business = daily[daily["is_business_day"]]
    b2b = business[business["segment"] != "consumer"]
    ordinary = b2b.loc[b2b["month_end_rank"].isna(), "revenue"].mean()
    month_end = b2b.loc[b2b["month_end_rank"].notna() & ~b2b["is_quarter_end"], "revenue"].mean()
    quarter_end = b2b.loc[b2b["is_quarter_end"], "revenue"].mean()
    assert month_end > 1.3 * ordinary
    assert quarter_end > 1.25 * month_end
    last_day = b2b.loc[b2b["month_end_rank"] == 0, "revenue"].mean()
    third_last = b2b.loc[b2b["month_end_rank"] == 2, "revenue"].mean()
    assert last_day > third_last  # the spike ramps up to the last business day
    # Every month has exactly three window days.
    windows = daily.drop_duplicates("posting_date")
    counts = windows.groupby(windows["posting_date"].dt.to_period("M"))["month_end_rank"].count()
    assert (counts == 3).all()


def test_holidays_are_low(daily: pd.DataFrame) -> None:
    weekday = daily[(daily["posting_date"].dt.dayofweek < 5) & daily["month_end_rank"].isna()]
    holiday = weekday.groupby("is_holiday")["revenue"].mean()
    assert holiday[True] < 0.5 * holiday[False]


def test_drift_start_shifts_the_level_only_from_that_day() -> None:
    start, drift_day, end = date(2024, 3, 1), date(2024, 4, 1), date(2024, 4, 30)
    base = rl.generate_ledger(start, end, **PARAMS)
    drifted = rl.generate_ledger(start, end, **PARAMS, drift_start=drift_day.isoformat(), drift_factor=1.5)
    before = base["posting_date"] < pd.Timestamp(drift_day)
    pd.testing.assert_frame_equal(drifted[before.to_numpy()], base[before])
    after = ~before
    assert drifted.loc[after.to_numpy(), "entry_id"].tolist() == base.loc[after, "entry_id"].tolist()
    ratio = drifted.loc[after.to_numpy(), "amount"].sum() / base.loc[after, "amount"].sum()
    assert ratio == pytest.approx(1.5, rel=0.01)


def test_trend_slope_changes_at_each_break() -> None:
    """The latent trend is piecewise log-linear: constant slope between breaks, a new one after each."""
    import numpy as np

    s = rl._series(PARAMS["n_business_units"], PARAMS["n_regions"], PARAMS["seed"])
    first_series = {unit: i for i, unit in reversed(list(enumerate(s.units)))}

    def slope(day: date, i: int) -> float:  # log-growth per year over the 60 days from ``day``
        later = day + timedelta(days=60)
        return float(np.log(rl._trend(later, s)[i] / rl._trend(day, s)[i]) * 365.25 / 60)

    for unit, breaks in rl.trend_breaks(PARAMS).items():
        i = first_series[unit]
        for brk in breaks:
            before, after = slope(brk - timedelta(days=61), i), slope(brk + timedelta(days=1), i)
            assert before != pytest.approx(after, abs=1e-3)
            assert slope(brk - timedelta(days=121), i) == pytest.approx(before, abs=1e-9)
