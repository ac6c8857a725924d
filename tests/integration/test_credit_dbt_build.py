"""Real dbt build of the credit-risk features on a small landed portfolio: as-of rows, time-correct labels."""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd
import pytest

from mlplatform import transform, warehouse
from mlplatform.settings import Settings, load_settings
from mlplatform.spec import UseCaseSpec, get_spec
from mlplatform.validation import validate_frame

pytestmark = pytest.mark.integration

HISTORY_START = date(2024, 1, 1)
RUN_DATE = date(2024, 5, 31)
LANDED_THROUGH = date(2024, 6, 30)  # raw data past the run date: defaults in June must not leak
PARAMS = {"n_customers": 400, "seed": 3}
LABEL_DAYS = 90


@pytest.fixture(scope="module")
def spec() -> UseCaseSpec:
    base = get_spec("credit_risk")
    source = base.source.model_copy(update={"history_start": HISTORY_START, "params": PARAMS})
    return base.model_copy(update={"source": source})


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return load_settings({"MLPLATFORM_DATA_DIR": str(tmp_path_factory.mktemp("credit_dbt") / "data")})


@pytest.fixture(scope="module")
def raw(spec: UseCaseSpec, settings: Settings) -> dict[str, pd.DataFrame]:
    landed = warehouse.land_source(spec, LANDED_THROUGH, settings)
    assert landed["days_landed"] == (LANDED_THROUGH - HISTORY_START).days + 1
    assert landed["tables"] == ["raw.credit_reviews", "raw.default_events"]
    return {t: warehouse.read_relation(settings, f"raw.{t}") for t in ("credit_reviews", "default_events")}


def _build(spec: UseCaseSpec, settings: Settings, run_date: date) -> pd.DataFrame:
    result = transform.run_dbt_build(spec, run_date, settings)
    assert set(result["nodes"]) <= {"success", "pass", "warn"}, result["nodes"]
    feats = warehouse.read_relation(settings, warehouse.relation_name(spec.transform.features_model))
    return feats.sort_values(["customer_id", "review_date"]).reset_index(drop=True)


@pytest.fixture(scope="module")
def built(spec: UseCaseSpec, settings: Settings, raw: dict) -> dict[str, pd.DataFrame]:
    """The mart as of RUN_DATE, then as of LANDED_THROUGH (frames read right after each build)."""
    return {"as_of_run": _build(spec, settings, RUN_DATE), "later": _build(spec, settings, LANDED_THROUGH)}


def _expected_labels(feats: pd.DataFrame, defaults: pd.DataFrame, run_date: date) -> pd.Series:
    """Labels recomputed in pandas from the default events visible on ``run_date``."""
    visible = defaults[defaults["default_date"] <= pd.Timestamp(run_date)]
    first = feats["customer_id"].map(visible.groupby("customer_id")["default_date"].min())
    end = feats["review_date"] + pd.Timedelta(days=LABEL_DAYS)
    label = ((first > feats["review_date"]) & (first <= end)).astype("Int64")
    return label.where(end <= pd.Timestamp(run_date))


def test_rows_are_as_of_the_run_date(built: dict, raw: dict) -> None:
    feats = built["as_of_run"]
    assert feats["review_date"].max() == pd.Timestamp(RUN_DATE)
    assert not feats.duplicated(["customer_id", "review_date"]).any()
    reviews = raw["credit_reviews"]
    assert reviews["review_date"].max() == pd.Timestamp(LANDED_THROUGH)
    # Every raw review up to the run date, also of customers who default after it (not visible yet).
    assert len(feats) == (reviews["review_date"] <= pd.Timestamp(RUN_DATE)).sum()
    assert {"segment", "region", "product", "income_band_ordinal", "utilisation_change"} <= set(feats.columns)
    assert "first_default_date" not in feats.columns  # lies after the review date: never exposed


def test_labels_are_null_exactly_while_the_window_is_open(built: dict, raw: dict) -> None:
    feats = built["as_of_run"]
    open_window = feats["review_date"] > pd.Timestamp(RUN_DATE - timedelta(days=LABEL_DAYS))
    assert feats.loc[open_window, "defaulted_90d"].isna().all()
    assert feats.loc[~open_window, "defaulted_90d"].notna().all()
    assert open_window.any() and (~open_window).any()
    expected = _expected_labels(feats, raw["default_events"], RUN_DATE)
    pd.testing.assert_series_equal(feats["defaulted_90d"].astype("Int64"), expected, check_names=False)
    assert feats["defaulted_90d"].sum() > 0


def test_a_default_after_the_run_date_does_not_leak(built: dict, raw: dict) -> None:
    feats, later = built["as_of_run"], built["later"]
    defaults = raw["default_events"]
    future = defaults[defaults["default_date"] > pd.Timestamp(RUN_DATE)]
    assert not future.empty, "pick PARAMS with a default between RUN_DATE and LANDED_THROUGH"
    theirs = feats.merge(future, on="customer_id")
    # Reviews whose 90-day window holds a default that happens after the run date: a leak would say 1.
    exposed = theirs[theirs["default_date"] <= theirs["review_date"] + pd.Timedelta(days=LABEL_DAYS)]
    assert not exposed.empty
    assert exposed["defaulted_90d"].isna().all()
    assert (theirs["defaulted_90d"].fillna(0) == 0).all()  # unknown or 0 as of the run date, never 1
    # A label known on the run date never changes later; later builds only add known labels.
    merged = feats.merge(later, on=["customer_id", "review_date"], suffixes=("", "_later"))
    assert len(merged) == len(feats)
    known = merged["defaulted_90d"].notna()
    assert (merged.loc[known, "defaulted_90d"] == merged.loc[known, "defaulted_90d_later"]).all()
    assert later["defaulted_90d"].notna().sum() > known.sum()
    # The later build sees the June defaults and labels every closed window from them.
    assert later["review_date"].max() == pd.Timestamp(LANDED_THROUGH)
    expected = _expected_labels(later, defaults, LANDED_THROUGH)
    pd.testing.assert_series_equal(later["defaulted_90d"].astype("Int64"), expected, check_names=False)


def test_no_review_on_or_after_a_default(built: dict, raw: dict) -> None:
    later = built["later"].merge(raw["default_events"], on="customer_id")
    assert not later.empty
    assert (later["review_date"] < later["default_date"]).all()


def test_expectation_suite_passes(spec: UseCaseSpec, built: dict) -> None:
    report = validate_frame(built["as_of_run"], spec.suite_path)
    assert report.success, report.failures()
    assert not report.failures("warning"), report.failures("warning")
    assert report.rows == len(built["as_of_run"])
