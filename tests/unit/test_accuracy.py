"""Accuracy on actuals: realised metrics per published run date and horizon, and the decay verdict."""

from __future__ import annotations

import numpy as np
import pandas as pd
from forecast_fixtures import make_spec

from mlplatform import accuracy as A


def _published(run_date: str, version: str, error: float, days: int = 7) -> pd.DataFrame:
    target = pd.date_range(pd.Timestamp(run_date) + pd.Timedelta(days=1), periods=days)
    rows = []
    for store in ("s1", "s2"):
        for h, t in enumerate(target, start=1):
            p50 = 10.0 * (1 + error)
            rows.append({"use_case": "demand_forecast", "run_date": run_date, "model_version": version,
                         "store_id": store, "sku_id": "a", "target_date": t.date(), "horizon": h,
                         "p10": p50 - 3, "p50": p50, "p90": p50 + 3})
    return pd.DataFrame(rows)


def _features(last: str) -> pd.DataFrame:
    days = pd.date_range("2025-06-01", last)
    return pd.DataFrame([{"store_id": s, "sku_id": "a", "sales_date": d, "units_sold": 10.0, "is_stockout": False}
                         for s in ("s1", "s2") for d in days])


def _serving(version: str, wape: float) -> dict:
    return {"version": version, "metrics": {"model": {"wape": wape}}}


def test_only_targets_known_by_the_run_date_are_joined():
    spec = make_spec()
    rows = A.join_actuals(_published("2025-06-20", "v1", 0.1), A.actuals(_features("2025-06-24"), spec), spec)
    assert len(rows) == 2 * 4 and rows["target_date"].max() == pd.Timestamp("2025-06-24")


def test_censored_days_are_not_actuals():
    spec = make_spec()
    features = _features("2025-06-24")
    features.loc[features["sales_date"] == pd.Timestamp("2025-06-22"), "is_stockout"] = True
    rows = A.join_actuals(_published("2025-06-20", "v1", 0.1), A.actuals(features, spec), spec)
    assert pd.Timestamp("2025-06-22") not in set(rows["target_date"])


def test_breakdown_has_one_row_per_published_date_and_horizon_with_wape_bias_coverage():
    spec = make_spec()
    known = A.actuals(_features("2025-06-30"), spec)
    rows = pd.concat([A.join_actuals(_published(d, "v1", 0.2), known, spec).assign(published_run_date=d)
                      for d in ("2025-06-20", "2025-06-21")])
    table = A.breakdown(rows, spec)
    assert len(table) == 2 * 7
    assert np.allclose(table["wape"], 0.2) and np.allclose(table["bias"], 0.2) and np.allclose(table["coverage"], 1.0)


def test_decay_past_the_limit_is_a_breach_and_says_why():
    spec = make_spec({"accuracy": {"max_decay": 0.25, "min_rows": 10}})
    rows = A.join_actuals(_published("2025-06-20", "v1", 0.5), A.actuals(_features("2025-06-30"), spec), spec)
    verdict = A.assess(rows.assign(published_run_date="2025-06-20"), spec, _serving("v1", 0.2))
    assert verdict["breach"] and "realised wape 0.5000" in verdict["breach_reason"] and "0.2000" in verdict["breach_reason"]


def test_accuracy_within_the_limit_is_no_breach():
    spec = make_spec({"accuracy": {"max_decay": 0.25, "min_rows": 10}})
    rows = A.join_actuals(_published("2025-06-20", "v1", 0.22), A.actuals(_features("2025-06-30"), spec), spec)
    assert not A.assess(rows, spec, _serving("v1", 0.2))["breach"]


def test_too_few_rows_of_the_serving_model_give_no_verdict():
    spec = make_spec({"accuracy": {"min_rows": 50}})
    rows = A.join_actuals(_published("2025-06-20", "v1", 0.9), A.actuals(_features("2025-06-30"), spec), spec)
    verdict = A.assess(rows, spec, _serving("v1", 0.2))
    assert not verdict["breach"] and "no verdict yet" in verdict["note"]


def test_rows_of_an_older_model_do_not_count_against_the_new_champion():
    spec = make_spec({"accuracy": {"min_rows": 10}})
    rows = A.join_actuals(_published("2025-06-20", "v-old", 0.9), A.actuals(_features("2025-06-30"), spec), spec)
    verdict = A.assess(rows, spec, _serving("v-new", 0.2))
    assert not verdict["breach"] and verdict["overall"]["n"] == 14 and verdict["serving"]["realised"]["n"] == 0


def test_absolute_wape_limit_alerts_even_without_decay():
    spec = make_spec({"accuracy": {"max_wape": 0.3, "max_decay": 5.0, "min_rows": 10}})
    rows = A.join_actuals(_published("2025-06-20", "v1", 0.4), A.actuals(_features("2025-06-30"), spec), spec)
    verdict = A.assess(rows, spec, _serving("v1", 0.35))
    assert verdict["breach"] and "max_wape 0.3" in verdict["breach_reason"]


def test_lookback_selects_earlier_published_dates_only():
    from datetime import date

    dates = [date(2025, 6, d) for d in (1, 10, 20, 29, 30)]
    assert A.lookback_dates(dates, date(2025, 6, 30), 20) == [date(2025, 6, 10), date(2025, 6, 20), date(2025, 6, 29)]


def test_classification_scores_are_joined_to_labels_that_became_known():
    from mlplatform.spec import get_spec

    spec = get_spec("credit_risk")
    published = pd.DataFrame({"use_case": "credit_risk", "run_date": "2025-03-01", "model_version": "v1",
                              "customer_id": ["c1", "c2", "c3", "c4"],
                              "observation_date": [pd.Timestamp("2025-02-20").date()] * 4,
                              "probability": [0.9, 0.1, 0.2, 0.05], "risk_band": "low"})
    features = pd.DataFrame({"customer_id": ["c1", "c2", "c3", "c4", "c5"],
                             "review_date": pd.to_datetime(["2025-02-20"] * 4 + ["2025-02-21"]),
                             "defaulted_90d": [1.0, 0.0, None, 0.0, 1.0]})
    rows = A.join_actuals(published, A.actuals(features, spec), spec)
    assert sorted(rows["customer_id"]) == ["c1", "c2", "c4"]  # c3's label is not known yet
    realised = A.realised_metrics(rows, spec)
    assert realised["n"] == 3 and realised["roc_auc"] == 1.0 and realised["log_loss"] < 0.11
    serving = {"version": "v1", "metrics": {"model": {"log_loss": 0.01}}}
    verdict = A.assess(rows, spec.model_copy(update={"accuracy": spec.accuracy.model_copy(update={"min_rows": 3})}),
                       serving)
    assert verdict["breach"] and "realised log_loss" in verdict["breach_reason"]


def test_a_small_use_case_gets_a_verdict_without_setting_min_rows():
    """Unset, min_rows is one horizon of every realised series (capped at 50): two series forecast 7 days
    ahead get a verdict on their 14 realised rows, where a fixed 50 never would."""
    spec = make_spec({"forecast": {"horizon": 7}, "accuracy": {"max_decay": 0.25}})
    assert spec.accuracy.min_rows is None
    rows = A.join_actuals(_published("2025-06-20", "v1", 0.5), A.actuals(_features("2025-06-30"), spec), spec)
    verdict = A.assess(rows, spec, _serving("v1", 0.2))
    assert verdict["breach"] and verdict["serving"]["min_rows"] == 14
    assert verdict["serving"]["min_rows_rule"] == "accuracy.min_rows auto: min(50, horizon 7 x 2 series)"


def test_the_automatic_min_rows_is_capped_for_large_panels():
    spec = make_spec({"forecast": {"horizon": 28}})
    assert spec.accuracy_min_rows_for(500) == (50, "accuracy.min_rows auto: min(50, horizon 28 x 500 series)")
    assert make_spec({"accuracy": {"min_rows": 7}}).accuracy_min_rows_for(500) == (7, "accuracy.min_rows 7")
