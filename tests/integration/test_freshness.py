"""Source freshness with real ``dbt source freshness``, judged as of the run date, on DuckDB and Postgres.

A tiny demand dataset (one store, one SKU) is landed through LANDED_THROUGH; each check runs dbt once as
of a run date at some distance from it. The wall clock is far past these dates, so any check judged
against "now" instead of the run date would be an error.
"""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from mlplatform import freshness, transform, warehouse
from mlplatform.errors import DataQualityError, SpecError, TransformError
from mlplatform.settings import Settings, load_settings
from mlplatform.spec import FreshnessSpec, UseCaseSpec, get_spec
from postgres_support import fresh_database, warehouse_env

pytestmark = pytest.mark.integration

HISTORY_START = date(2025, 1, 1)
LANDED_THROUGH = date(2025, 1, 20)
PARAMS = {"n_stores": 1, "n_skus": 1, "seed": 5}
THRESHOLDS = {"retail_sales": {"warn_after_days": 1, "error_after_days": 3}}


def _spec(sources: dict | None = None, on_error: str = "block") -> UseCaseSpec:
    base = get_spec("demand_forecast")
    source = base.source.model_copy(update={"history_start": HISTORY_START, "params": PARAMS})
    fresh = FreshnessSpec.model_validate({"sources": THRESHOLDS if sources is None else sources,
                                          "on_error": on_error})
    return base.model_copy(update={"source": source, "freshness": fresh})


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    settings = load_settings({"MLPLATFORM_DATA_DIR": str(tmp_path_factory.mktemp("freshness") / "data")})
    warehouse.land_source(_spec(), LANDED_THROUGH, settings)
    return settings


def test_no_thresholds_is_not_configured_without_calling_dbt(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_dbt(*args, **kwargs):
        raise AssertionError("dbt must not run when the spec declares no freshness thresholds")

    monkeypatch.setattr(transform, "run_source_freshness", no_dbt)
    result = freshness.check_freshness(_spec({}), LANDED_THROUGH, load_settings({}))
    assert result["status"] == "not_configured" and result["blocking"] is False and result["sources"] == {}


def test_vars_carry_the_run_date_and_each_threshold() -> None:
    spec = _spec({"retail_sales": {"warn_after_days": 2}, "stores": {"error_after_days": 4}})
    assert freshness.freshness_vars(spec, LANDED_THROUGH) == {
        "run_date": "2025-01-20", "freshness_warn_after_days": {"retail_sales": 2},
        "freshness_error_after_days": {"stores": 4}}


@pytest.mark.parametrize(("run_date", "status", "newest", "age_days"), [
    (LANDED_THROUGH, "pass", LANDED_THROUGH, 0),
    (LANDED_THROUGH + timedelta(days=1), "pass", LANDED_THROUGH, 1),  # not older than warn_after_days
    (LANDED_THROUGH + timedelta(days=2), "warn", LANDED_THROUGH, 2),
    # A backfill: data landed past the run date is ignored, and the wall clock (years later) is irrelevant.
    (date(2025, 1, 10), "pass", date(2025, 1, 10), 0),
    (HISTORY_START - timedelta(days=1), "error", None, None),  # no row up to the run date: infinitely old
], ids=["fresh", "at-warn-threshold", "warn", "backfill", "no-rows"])
def test_status_is_judged_as_of_the_run_date(settings: Settings, run_date: date, status: str,
                                             newest: date | None, age_days: int | None) -> None:
    assert (date.today() - run_date).days > THRESHOLDS["retail_sales"]["error_after_days"]
    result = freshness.check_freshness(_spec(), run_date, settings)
    src = result["sources"]["retail_sales"]
    assert src == {"table": "raw.retail_sales", "newest": newest and newest.isoformat(), "age_days": age_days,
                   "warn_after_days": 1, "error_after_days": 3, "status": status}
    assert result["status"] == status and result["run_date"] == run_date.isoformat()
    assert result["blocking"] is (status == "error")
    assert len(result["messages"]) == (status != "pass")
    if status == "warn":
        assert result["messages"] == ["raw.retail_sales: newest row 2025-01-20 is 2 day(s) before the run date "
                                      "2025-01-22 (warn after 1)"]
        freshness.require_fresh(result)  # a warning never blocks


def test_past_the_error_threshold_blocks_or_publishes_stale_per_spec(settings: Settings) -> None:
    run_date = LANDED_THROUGH + timedelta(days=4)
    blocked = freshness.check_freshness(_spec(on_error="block"), run_date, settings)
    assert blocked["status"] == "error" and blocked["blocking"] is True and blocked["stale"] is True
    assert blocked["sources"]["retail_sales"]["age_days"] == 4
    assert "blocks scoring" in blocked["message"] and "(error after 3)" in blocked["message"]
    with pytest.raises(DataQualityError, match=r"stale sources block the run as of 2025-01-24.*raw\.retail_sales"):
        freshness.require_fresh(blocked)

    stale = freshness.check_freshness(_spec(on_error="publish_stale"), run_date, settings)
    assert stale["status"] == "error" and stale["blocking"] is False and stale["stale"] is True
    assert "published as stale" in stale["message"]
    freshness.require_fresh(stale)


def test_unknown_or_undated_source_is_refused_naming_the_spec_field(settings: Settings) -> None:
    spec = _spec({**THRESHOLDS, "retail_sale": {"warn_after_days": 1}, "stores": {"warn_after_days": 1}})
    with pytest.raises(SpecError) as info:
        freshness.check_freshness(spec, LANDED_THROUGH, settings)
    message = str(info.value)
    assert "freshness.sources.retail_sale: the dbt project has no raw source table" in message
    assert "freshness.sources.stores: raw table 'stores' has no date column" in message
    assert "with a freshness check: credit_reviews, default_events, ledger_entries, retail_sales" in message


def test_dbt_failure_surfaces_with_dbts_message(settings: Settings) -> None:
    """A declared table that is a dbt source but was never landed in this warehouse."""
    spec = _spec({"ledger_entries": {"error_after_days": 3}})
    with pytest.raises(TransformError, match=r"could not check 1 source") as info:
        freshness.check_freshness(spec, LANDED_THROUGH, settings)
    assert "source.mlplatform.finance.ledger_entries: Runtime Error" in str(info.value)
    assert "ledger_entries does not exist" in str(info.value)


def test_postgres_warehouse_is_judged_the_same(tmp_path) -> None:
    with fresh_database("mlp_freshness") as dbname:
        pg = load_settings({"MLPLATFORM_PROFILE": "production", "MLPLATFORM_DATA_DIR": str(tmp_path / "pg"),
                            **warehouse_env(dbname)})
        warehouse.land_source(_spec(), LANDED_THROUGH, pg)
        result = freshness.check_freshness(_spec(), LANDED_THROUGH + timedelta(days=2), pg)
    assert result["target"] == "postgres"
    assert result["status"] == "warn" and result["blocking"] is False
    assert result["sources"]["retail_sales"]["newest"] == "2025-01-20"
    assert result["sources"]["retail_sales"]["age_days"] == 2
