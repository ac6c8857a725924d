"""Model cards carry the governance facts; roll-ups aggregate published days into periods."""

from __future__ import annotations

import pandas as pd
from forecast_fixtures import make_spec

from mlplatform.model_card import reference_statistics, render
from mlplatform.rollups import rollup_frame
from mlplatform.spec import RollupSpec


def _metadata() -> dict:
    return {
        "version": "v20250630-abcdef1234", "training_window": {"start": "2024-01-01", "end": "2025-06-30"},
        "n_training_rows": 20000, "model": {"estimator": "hist_gradient_boosting", "params": {"max_iter": 200}},
        "data": {"snapshot_uri": "s3://b/uc/features/run_date=2025-06-30/", "fingerprint": "f" * 64, "rows": 1000},
        "dbt_manifest_hash": "d" * 64, "code": {"source_hash": "c" * 64, "git_commit": "abc"},
        "spec_fingerprint": "s" * 64, "feature_names": ["lag_7", "store_id"],
        "metrics": {"metric": "wape", "model": {"wape": 0.44, "mase": 0.75}, "baseline": {"wape": 0.58, "mase": 1.0},
                    "improvement": 0.245, "min_improvement": 0.05, "folds": [{}, {}, {}],
                    "champion": {"version": "v20250601-x", "metric": "wape", "n_eval_rows": 480, "error": None,
                                 "challenger": {"wape": 0.44}, "champion": {"wape": 0.47}, "improvement": 0.06,
                                 "margin": 0.0}},
        "decision": {"reason": "promoted: ..."},
    }


def test_reference_statistics_summarise_numeric_and_categorical_columns():
    ref = pd.DataFrame({"x": [1.0, 2.0, 3.0, None], "store": ["a", "a", "b", "a"]})
    stats = reference_statistics(ref)
    assert stats["x"]["count"] == 3 and stats["x"]["null_share"] == 0.25 and stats["x"]["p50"] == 2.0
    assert stats["store"]["top"] == {"a": 0.75, "b": 0.25}


def test_model_card_names_data_window_fingerprint_features_backtest_drift_reference_consumers_owner():
    spec = make_spec()
    card = render(spec, _metadata(), reference_statistics(pd.DataFrame({"lag_7": [1.0, 2.0]})))
    for fact in ("v20250630-abcdef1234", "2024-01-01 to 2025-06-30", "f" * 64, "`lag_7`", "| wape | 0.4400 | 0.5800 |",
                 "v20250601-x", "480 backtest rows", "## Drift reference statistics", spec.owner,
                 ", ".join(spec.consumers)):
        assert fact in card, fact


def test_monthly_rollup_sums_days_and_flags_partial_months():
    days = pd.date_range("2025-07-01", "2025-08-10")
    forecasts = pd.DataFrame({"business_unit": "bu1", "target_date": days.date, "p10": 1.0, "p50": 2.0, "p90": 3.0})
    out = rollup_frame(forecasts, RollupSpec(name="monthly", period="month", group_by=["business_unit"]),
                       ["p10", "p50", "p90"])
    july, august = out.iloc[0], out.iloc[1]
    assert july["forecast"] == 62.0 and july["sum_p90"] == 93.0 and july["complete_period"]
    assert august["days_forecast"] == 10 and august["days_in_period"] == 31 and not august["complete_period"]
