"""Synthetic credit portfolio: determinism, parameters, default rate, review cadence, drift."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from mlplatform import datagen
from mlplatform.errors import SpecError
from mlplatform.spec import SourceSpec
from mlplatform.synthetic import credit_customers as cc

PARAMS = {"n_customers": 3000, "seed": 42}
START, END = date(2022, 1, 1), date(2025, 6, 30)


@pytest.fixture(scope="module")
def portfolio() -> dict[str, pd.DataFrame]:
    return cc.generate_credit(START, END, **PARAMS)


def _labels(reviews: pd.DataFrame, defaults: pd.DataFrame) -> pd.Series:
    """1 when the customer defaults in (review_date, review_date + 90 days]."""
    first = reviews["customer_id"].map(defaults.groupby("customer_id")["default_date"].min())
    window_end = reviews["review_date"] + pd.Timedelta(days=cc.LABEL_WINDOW_DAYS)
    return ((first > reviews["review_date"]) & (first <= window_end)).astype(int)


def test_tables_columns_and_dtypes(portfolio: dict[str, pd.DataFrame]) -> None:
    reviews, defaults, customers = (portfolio[t] for t in ("credit_reviews", "default_events", "customers"))
    assert list(reviews.columns) == list(cc.REVIEW_COLUMNS)
    assert list(defaults.columns) == list(cc.DEFAULT_COLUMNS)
    assert list(customers.columns) == list(cc.CUSTOMER_COLUMNS)
    assert str(reviews["review_date"].dtype).startswith("datetime64")
    assert str(defaults["default_date"].dtype).startswith("datetime64")
    for col in ("days_past_due", "n_late_payments_12m", "tenure_months", "n_inquiries_6m"):
        assert reviews[col].dtype == "int64", col
    assert not reviews.duplicated(["customer_id", "review_date"]).any()
    assert reviews["review_date"].is_monotonic_increasing
    assert len(customers) == 3000 and customers["customer_id"].is_unique
    assert customers["customer_id"].iloc[0] == "C00001"
    assert set(customers["segment"]) == set(cc.SEGMENTS) and set(customers["region"]) == set(cc.REGIONS)
    assert set(customers["product"]) == set(cc.PRODUCTS) and set(customers["age_band"]) <= set(cc.AGE_BANDS)
    assert set(reviews["customer_id"]) <= set(customers["customer_id"])
    assert set(reviews["income_band"]) <= set(cc.INCOME_BANDS)
    assert (reviews["credit_limit"] > 0).all() and (reviews["balance"] >= 0).all()
    assert reviews["utilisation"].between(0, 1.1).all()
    assert reviews["days_past_due"].between(0, 90).all() and reviews["n_late_payments_12m"].between(0, 12).all()
    np.testing.assert_allclose(reviews["utilisation"], reviews["balance"] / reviews["credit_limit"], atol=1e-4)


def test_rows_do_not_depend_on_range_or_chunking(portfolio: dict[str, pd.DataFrame]) -> None:
    start, end = date(2024, 2, 20), date(2024, 4, 10)
    in_window = {}
    for table, column in cc.SOURCE.facts.items():
        frame = portfolio[table]
        in_window[table] = frame[frame[column].between(pd.Timestamp(start), pd.Timestamp(end))].reset_index(drop=True)
    by_day = [cc.generate_credit(start + timedelta(days=i), start + timedelta(days=i), **PARAMS)
              for i in range((end - start).days + 1)]
    odd = list(cc.SOURCE.fact_chunks(cc.check_params(PARAMS), start, end, 7))
    assert [c["credit_reviews"]["review_date"].nunique() for c in odd][:2] == [7, 7]
    for table in cc.SOURCE.facts:
        day_by_day = pd.concat([d[table] for d in by_day], ignore_index=True)
        chunked = pd.concat([c[table] for c in odd], ignore_index=True)
        pd.testing.assert_frame_equal(day_by_day, in_window[table])
        pd.testing.assert_frame_equal(chunked, in_window[table])
    assert len(in_window["default_events"]) > 0


def test_seed_changes_the_data_and_dimensions_are_stable() -> None:
    a = cc.generate_credit(date(2024, 1, 1), date(2024, 1, 31), n_customers=500, seed=1)
    b = cc.generate_credit(date(2024, 1, 1), date(2024, 1, 31), n_customers=500, seed=2)
    assert not a["credit_reviews"]["utilisation"].equals(b["credit_reviews"]["utilisation"])
    pd.testing.assert_frame_equal(a["customers"], cc.generate_customers(500, 1))


def test_no_rows_before_the_epoch_and_empty_ranges() -> None:
    before = cc.generate_credit(date(2021, 6, 1), date(2021, 12, 31), seed=1, n_customers=50)
    for table in cc.SOURCE.facts:
        assert before[table].empty and list(before[table].columns) == list(
            cc.REVIEW_COLUMNS if table == "credit_reviews" else cc.DEFAULT_COLUMNS)
    assert str(before["credit_reviews"]["review_date"].dtype).startswith("datetime64")
    assert list(cc.iter_credit({"seed": 1}, date(2024, 1, 2), date(2024, 1, 1))) == []


@pytest.mark.parametrize(("params", "match"), [
    ({"seed": 1, "n_customer": 10}, r"unknown parameter\(s\) \['n_customer'\]"),
    ({"n_customers": 10}, r"missing required parameter\(s\) \['seed'\]"),
    ({"seed": -1}, "seed"),
    ({"seed": 1, "n_customers": 0}, "n_customers"),
    ({"seed": 1, "n_customers": True}, "n_customers"),
    ({"seed": 1, "default_rate": 0}, "default_rate"),
    ({"seed": 1, "default_rate": 0.5}, "default_rate"),
    ({"seed": 1, "drift_factor": 0}, "drift_factor"),
    ({"seed": 1, "drift_start": "March"}, "drift_start"),
    ({"seed": 1, "group_disparity": float("nan")}, "group_disparity"),
    ({"seed": 1, "group_disparity": "high"}, "group_disparity"),
])
def test_bad_params_are_rejected_naming_the_param(params: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        cc.check_params(params)


def test_params_defaults_and_spec_errors() -> None:
    checked = cc.check_params({"seed": 3, "drift_start": "2024-05-01"})
    assert checked == {**cc.DEFAULTS, "seed": 3, "drift_start": date(2024, 5, 1)}
    assert cc.check_params(checked) == checked  # idempotent
    src = SourceSpec(generator="credit_customers", history_start=date(2024, 1, 1), params={"seed": 1, "n_stores": 2})
    with pytest.raises(SpecError, match="n_stores"):
        datagen.source_params(src)
    ok = SourceSpec(generator="credit_customers", history_start=date(2024, 1, 1),
                    params={"seed": 1, "n_customers": 60})
    tables = datagen.source_tables(ok, date(2024, 1, 1), date(2024, 2, 29))
    assert set(tables) == {"credit_reviews", "default_events", "customers"}
    assert len(tables["customers"]) == 60 and not tables["credit_reviews"].empty


def test_default_rate_per_90_days_is_in_range(portfolio: dict[str, pd.DataFrame]) -> None:
    reviews, defaults = portfolio["credit_reviews"], portfolio["default_events"]
    labels = _labels(reviews, defaults)
    observed = reviews["review_date"].between(pd.Timestamp("2023-01-01"), pd.Timestamp(END) - pd.Timedelta(days=90))
    assert 0.03 <= labels[observed].mean() <= 0.06
    by_quarter = labels[observed].groupby(reviews.loc[observed, "review_date"].dt.to_period("Q")).mean()
    assert by_quarter.between(0.02, 0.08).all(), by_quarter  # a macro cycle, no collapse or explosion

    def rate(default_rate: float) -> float:
        out = cc.generate_credit(date(2022, 1, 1), date(2024, 12, 31), n_customers=2000, seed=5,
                                 default_rate=default_rate)
        r = out["credit_reviews"]
        keep = r["review_date"].between(pd.Timestamp("2023-01-01"), pd.Timestamp("2024-10-01"))
        return _labels(r, out["default_events"])[keep].mean()

    low, high = rate(0.03), rate(0.06)
    assert 0.02 < low < 0.04 < high < 0.08


def test_each_customer_is_reviewed_every_30_days_until_default(portfolio: dict[str, pd.DataFrame]) -> None:
    reviews, defaults = portfolio["credit_reviews"], portfolio["default_events"]
    gaps = reviews.groupby("customer_id")["review_date"].diff().dropna().dt.days
    assert (gaps == cc.CYCLE_DAYS).all()
    per_day = reviews.groupby("review_date").size()
    assert len(per_day) == (END - START).days + 1  # staggered: every day has reviews
    active = reviews.groupby(reviews["review_date"].dt.to_period("M"))["customer_id"].nunique()
    mean_per_day = per_day.groupby(per_day.index.to_period("M")).mean()
    ratio = (mean_per_day * cc.CYCLE_DAYS / active).iloc[1:-1]
    assert ratio.between(0.85, 1.15).all()  # about (active customers) / 30 reviews a day
    assert 0.4 * 3000 / 30 < per_day.mean() < 3000 / 30
    customers = portfolio["customers"].set_index("customer_id")
    first_review = reviews.groupby("customer_id")["review_date"].min()
    opened = pd.to_datetime(customers.loc[first_review.index, "opened_on"])
    assert (first_review >= opened).all()
    late = opened > pd.Timestamp(START) + pd.Timedelta(days=31)
    assert ((first_review - opened)[late].dt.days < cc.CYCLE_DAYS).all()  # first review within a cycle
    assert not defaults["customer_id"].duplicated().any()


def test_no_review_on_or_after_a_default(portfolio: dict[str, pd.DataFrame]) -> None:
    reviews, defaults = portfolio["credit_reviews"], portfolio["default_events"]
    merged = reviews.merge(defaults, on="customer_id")
    assert not (merged["review_date"] >= merged["default_date"]).any()
    last = merged.groupby("customer_id").agg(last_review=("review_date", "max"), default_date=("default_date", "first"))
    days = (last["default_date"] - last["last_review"]).dt.days
    assert days.between(1, cc.CYCLE_DAYS - 1).all()  # defaults fall between two reviews
    assert 0.15 < defaults["customer_id"].nunique() / reviews["customer_id"].nunique() < 0.6


def test_features_carry_default_risk(portfolio: dict[str, pd.DataFrame]) -> None:
    reviews = portfolio["credit_reviews"]
    labels = _labels(reviews, portfolio["default_events"])
    known = reviews["review_date"] <= pd.Timestamp(END) - pd.Timedelta(days=90)
    rate = labels[known].groupby(pd.cut(reviews.loc[known, "days_past_due"], [-1, 0, 30, 60, 90]), observed=True).mean()
    assert rate.is_monotonic_increasing and rate.iloc[-1] > 8 * rate.iloc[0]
    high = reviews.loc[known, "utilisation"] > 0.9
    assert labels[known][high].mean() > 4 * labels[known][~high].mean()


def test_drift_raises_utilisation_only_from_drift_start() -> None:
    start, drift_at, end = date(2024, 1, 1), date(2024, 5, 1), date(2024, 8, 31)
    params = {"n_customers": 1000, "seed": 5}
    base = cc.generate_credit(start, end, **params)["credit_reviews"]
    drifted = cc.generate_credit(start, end, **params, drift_start=drift_at, drift_factor=2.0)["credit_reviews"]
    before_b, before_d = (f["review_date"] < pd.Timestamp(drift_at) for f in (base, drifted))
    pd.testing.assert_frame_equal(base[before_b], drifted[before_d])
    after = pd.Timestamp(drift_at) + pd.Timedelta(days=30)
    util_base = base.loc[base["review_date"] >= after, "utilisation"].mean()
    util_drift = drifted.loc[drifted["review_date"] >= after, "utilisation"].mean()
    assert util_drift > util_base + 0.04
    same = cc.generate_credit(start, end, **params, drift_start=drift_at, drift_factor=1.0)["credit_reviews"]
    pd.testing.assert_frame_equal(same, base)


def test_group_disparity_makes_default_risk_differ_by_age_band() -> None:
    params = {"n_customers": 3000, "seed": 9}
    plain = cc.generate_credit(date(2022, 1, 1), date(2024, 12, 31), **params)
    zero = cc.generate_credit(date(2022, 1, 1), date(2024, 12, 31), **params, group_disparity=0.0)
    pd.testing.assert_frame_equal(plain["default_events"], zero["default_events"])
    pd.testing.assert_frame_equal(plain["credit_reviews"], zero["credit_reviews"])
    skewed = cc.generate_credit(date(2022, 1, 1), date(2024, 12, 31), **params, group_disparity=2.5)
    bands = skewed["customers"].set_index("customer_id")["age_band"]

    def rate_by_band(out: dict[str, pd.DataFrame]) -> pd.Series:
        r = out["credit_reviews"]
        r = r[r["review_date"] <= pd.Timestamp("2024-10-01")]  # 90-day windows closed by the range's end
        return _labels(r, out["default_events"]).groupby(r["customer_id"].map(bands)).mean()

    skewed_rates, plain_rates = rate_by_band(skewed), rate_by_band(plain)
    assert skewed_rates["18-25"] > 2 * plain_rates["18-25"]
    assert skewed_rates["51-65"] < 0.8 * plain_rates["51-65"] and skewed_rates["66+"] < 0.8 * plain_rates["66+"]
    assert skewed_rates["26-35"] == plain_rates["26-35"]  # weight 0: the band's rows do not change at all
    assert plain_rates["18-25"] < 2 * plain_rates["36-50"]  # without it, only the latent age effect
    assert set(cc.AGE_BAND_DISPARITY) == set(cc.AGE_BANDS)
