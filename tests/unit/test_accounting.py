"""Every series accounted for: the series a partition forecasts vs the features as of the date."""

from __future__ import annotations

import pandas as pd
import pytest
from forecast_fixtures import make_spec

from mlplatform.accounting import MAX_LISTED, account, enforce
from mlplatform.errors import DataQualityError

ORIGIN = pd.Timestamp("2025-06-30")


def _features(n_series: int = 20, stopped: tuple[str, ...] = (), null: tuple[str, ...] = ()) -> pd.DataFrame:
    days = pd.date_range("2025-05-01", ORIGIN)
    rows = []
    for i in range(n_series):
        sku = f"k{i:02d}"
        for d in days:
            if sku in stopped and d > pd.Timestamp("2025-06-10"):
                continue
            rows.append({"store_id": "s1", "sku_id": sku, "sales_date": d,
                         "units_sold": None if sku in null else float(100 - i)})
    return pd.DataFrame(rows)


def _spec(**series):
    return make_spec({"publish": {"series": series}} if series else None)


def _forecast(features: pd.DataFrame, leave_out: tuple[str, ...]) -> set[tuple]:
    keys = features[["store_id", "sku_id"]].drop_duplicates()
    return {k for k in keys.itertuples(index=False, name=None) if k[1] not in leave_out}


def test_a_complete_partition_accounts_for_every_series():
    features = _features()
    block = account(features, _spec(), ORIGIN, _forecast(features, ()))
    assert (block["in_features"], block["forecast"], block["left_out"], block["breach"]) == (20, 20, 0, None)


def test_each_left_out_series_is_named_with_its_reason():
    features = _features(stopped=("k05",), null=("k07",))
    block = account(features, _spec(top_n=0, max_missing_share=0.5), ORIGIN, _forecast(features, ("k05", "k07")))
    reasons = {s["sku_id"]: s["reason"] for s in block["series"]}
    assert reasons["k05"] == "stopped: last observed 2025-06-10, before the origin 2025-06-30"
    assert reasons["k07"].startswith("null target")
    assert block["left_out"] == 2 and block["breach"] is None


def test_a_series_observed_at_the_origin_but_missing_is_reported_as_a_defect():
    features = _features()
    block = account(features, _spec(top_n=0, max_missing_share=0.5), ORIGIN, _forecast(features, ("k03",)))
    assert "a defect" in block["series"][0]["reason"]


def test_losing_one_of_the_largest_series_is_a_breach_even_below_the_share():
    features = _features(stopped=("k00", "k01"))  # the two largest (volume 100 and 99)
    block = account(features, _spec(top_n=3, max_missing_share=0.5), ORIGIN, _forecast(features, ("k00", "k01")))
    assert block["breach"].startswith("2 of the 3 largest series left out")
    assert all(s["top_n"] for s in block["series"])


def test_losing_more_than_the_allowed_share_is_a_breach():
    features = _features(stopped=("k10", "k11", "k12"))
    block = account(features, _spec(top_n=0, max_missing_share=0.1), ORIGIN,
                    _forecast(features, ("k10", "k11", "k12")))
    assert block["breach"] == "3 of 20 series (15.0%) left out > publish.series.max_missing_share 10.0%"


def test_a_breach_warns_by_default_and_blocks_when_the_policy_says_so():
    features = _features(stopped=("k00",))
    warn = account(features, _spec(top_n=1), ORIGIN, _forecast(features, ("k00",)))
    assert enforce(_spec(top_n=1), warn, "run date 2025-06-30") is warn
    block = _spec(top_n=1, on_breach="block")
    with pytest.raises(DataQualityError, match="Nothing was published") as refused:
        enforce(block, account(features, block, ORIGIN, _forecast(features, ("k00",))), "run date 2025-06-30")
    assert "store_id=s1, sku_id=k00: stopped: last observed 2025-06-10" in str(refused.value)


def test_the_list_is_capped_but_the_counts_cover_every_series():
    features = _features(n_series=MAX_LISTED + 20)
    skus = tuple(f"k{i:02d}" for i in range(MAX_LISTED + 10))
    block = account(features, _spec(top_n=0, max_missing_share=1.0), ORIGIN, _forecast(features, skus))
    assert block["left_out"] == MAX_LISTED + 10 and len(block["series"]) == block["listed"] == MAX_LISTED


def test_a_series_of_the_previous_partition_gone_from_the_features_is_accounted_for():
    features = _features()
    previous = (pd.Timestamp("2025-06-29").date(), _forecast(features, ()) | {("s1", "k99")})
    block = account(features, _spec(top_n=0), ORIGIN, _forecast(features, ()), previous)
    assert (block["in_features"], block["expected"], block["forecast"], block["left_out"]) == (20, 21, 20, 1)
    assert block["series"] == [{"store_id": "s1", "sku_id": "k99", "top_n": False,
                                "reason": "gone: in the partition of 2025-06-29, absent from the features as of "
                                          "the run date"}]
