"""Retention rules that need no storage: the raw-history bound, shared raw tables, reference walking.

The policy applied to a real bucket and warehouse is tested in tests/integration/test_retention.py.
"""

from __future__ import annotations

from datetime import date

import pytest

from mlplatform import retention
from mlplatform.errors import SpecError
from mlplatform.spec import RetentionSpec, UseCaseSpec, get_spec


def _with(spec: UseCaseSpec, name: str | None = None, **policy) -> UseCaseSpec:
    return spec.model_copy(update={"name": name or spec.name, "retention": RetentionSpec(**policy)})


def test_minimum_raw_days_of_the_demand_use_case_sums_every_window_it_reads_back():
    parts = retention.minimum_raw_days(get_spec("demand_forecast"))
    # 540 training + (14 horizon + 2 x 14 between folds) + 4 x 7 seasonal references (the spec has no
    # statistical candidate, which would read 112 days) + 28 + 180 monitoring + 28 accuracy look-back + 14 horizon
    assert parts == {"model.training_window": 540, "backtest look-back": 42, "feature look-back": 28,
                     "monitoring.window_days + reference_days": 208, "accuracy.lookback_days + horizon": 42}


def test_minimum_raw_days_of_a_tabular_use_case_counts_the_label_delay():
    spec = get_spec("credit_risk")
    parts = retention.minimum_raw_days(spec)
    assert parts["backtest look-back"] == spec.tabular.label_delay_days + spec.backtest.folds * spec.backtest.fold_step
    assert parts["model.training_window"] == spec.model.training_window


def test_too_short_raw_days_is_refused_naming_the_spec_file_and_field():
    spec = _with(get_spec("demand_forecast"), raw_days=365)
    with pytest.raises(SpecError) as failure:
        retention.check_raw_days(spec)
    message = str(failure.value)
    assert "demand_forecast.yaml: field 'retention.raw_days' is 365 days" in message
    assert "at least 860" in message and "model.training_window 540" in message
    retention.check_raw_days(_with(get_spec("demand_forecast"), raw_days=860))
    retention.check_raw_days(_with(get_spec("demand_forecast")))  # null: kept forever


def test_plan_refuses_too_short_raw_days_before_touching_anything():
    spec = _with(get_spec("demand_forecast"), raw_days=30)
    with pytest.raises(SpecError, match="retention.raw_days"):
        retention.plan(spec, store=None, settings=None, today=date(2025, 7, 31))  # type: ignore[arg-type]


def test_shared_raw_tables_keep_the_longest_retention():
    spec = _with(get_spec("demand_forecast"), raw_days=900)
    assert retention.effective_raw_days(spec, [spec]) == (900, [])  # itself is no peer
    longer = _with(get_spec("demand_forecast"), "demand_copy", raw_days=1000)
    days, notes = retention.effective_raw_days(spec, [longer])
    assert days == 1000 and "demand_copy" in notes[0] and "retail_sales" in notes[0]
    forever = _with(get_spec("demand_forecast"), "demand_forever")
    days, notes = retention.effective_raw_days(spec, [longer, forever])
    assert days is None and "keeps raw data forever" in notes[0]
    other = _with(get_spec("revenue_forecast"), raw_days=None)
    assert retention.effective_raw_days(spec, [other]) == (900, [])  # another generator: nothing shared


def test_links_find_bucket_keys_and_model_versions_at_any_depth():
    doc = {"model_version": "v20250101-0123456789", "model": {"version": "v20250102-abcdefabcd"},
           "spec_version": 1, "drift": {"report_uri": "s3://b/uc/monitoring/run_date=2025-01-01/report.html"},
           "elsewhere": "s3://other/uc/x.json", "files": [{"key": "uc/forecasts/x.parquet"}]}
    keys, versions = retention._links(doc, "s3://b/")
    assert keys == {"uc/monitoring/run_date=2025-01-01/report.html"}
    assert versions == {"v20250101-0123456789", "v20250102-abcdefabcd"}


def test_a_link_into_a_partition_protects_the_whole_partition():
    refs = retention.References()
    refs.add_key("uc/monitoring/run_date=2025-01-01/report.html", "published manifest m1")
    refs.add_key("uc/alerts/accuracy-2025-01-01.json", "published manifest m2")
    refs.add_key("uc/features/run_date=2025-01-01/", "published manifest m3")
    assert refs.reasons("uc/monitoring/run_date=2025-01-01/") == {"published manifest m1"}
    assert refs.reasons("uc/monitoring/run_date=2025-01-02/") == set()
    assert refs.reasons("uc/alerts/accuracy-2025-01-01.json") == {"published manifest m2"}
    assert refs.reasons("uc/features/run_date=2025-01-01/") == {"published manifest m3"}


def test_many_reasons_of_one_kind_are_summarised_with_their_count():
    reasons = {f"champion as of published run date 2025-01-0{d}" for d in range(1, 6)} | {"current champion alias"}
    assert retention._summarise(reasons) == (
        "champion as of published run date (5: 2025-01-01 ... 2025-01-05)", "current champion alias")


def test_retention_never_deletes_outside_its_categories():
    spec = get_spec("demand_forecast")
    for key in ("demand_forecast/forecasts/run_date=2025-01-01/_manifest.json",
                "demand_forecast/registry/audit/x.json", "demand_forecast/maintenance/run_date=2025-01-01/retention.json",
                "other_use_case/validation/run_date=2025-01-01/result.json", "inbox/demand/retail_sales/day=x/a.csv"):
        with pytest.raises(Exception, match="refusing to delete"):
            retention._check_deletable(spec, retention.Removal("report", key, "test"))
