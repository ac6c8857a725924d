"""Feature drift: stable data shows no drift, shifted units/prices do, inputs are checked by name."""

from __future__ import annotations

import json
import re
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from mlplatform.errors import PlatformError
from mlplatform.monitoring import DriftReport, detect_drift, monitored_columns, split_column_types

COLUMNS = ["units_sold", "unit_price", "discount_pct", "on_promotion"]


def features(n: int = 400, scale: float = 1.0, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "sales_date": pd.date_range("2024-01-01", periods=n, freq="h"),
            "units_sold": rng.gamma(2.0, 5.0, n) * scale,
            "unit_price": rng.uniform(2.0, 12.0, n) * scale,
            "discount_pct": rng.uniform(0.0, 0.3, n),
            "on_promotion": rng.integers(0, 2, n),
            "day_of_week": rng.integers(1, 8, n),
            "category": rng.choice(["food", "drinks", "home"], n),
            "is_stockout": rng.random(n) < 0.1,
            "lag_28": rng.gamma(2.0, 5.0, n),
        }
    )


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    return features(seed=1)


@pytest.fixture(scope="module")
def stable(reference) -> DriftReport:
    return detect_drift(reference, features(seed=2), COLUMNS, drift_share=0.5, max_rows=1000)


def test_same_distribution_has_no_drift(stable):
    assert not stable.drift_detected
    assert stable.n_columns == len(COLUMNS)
    assert "units_sold" not in stable.drifted_columns and "unit_price" not in stable.drifted_columns
    assert list(stable.column_scores) == COLUMNS


def test_doubled_units_and_prices_drift(reference):
    report = detect_drift(reference, features(scale=2.0, seed=2), COLUMNS, drift_share=0.5, max_rows=1000)
    assert report.drift_detected
    assert {"units_sold", "unit_price"} <= set(report.drifted_columns)
    assert report.drifted_count == len(report.drifted_columns)
    assert report.drifted_share == pytest.approx(report.drifted_count / len(COLUMNS))
    score = report.column_scores["units_sold"]
    assert score["drifted"] and set(score) == {"method", "score", "threshold", "drifted"}


def test_summary_is_json_safe(stable):
    summary = json.loads(json.dumps(stable.to_dict(), allow_nan=False))
    assert summary["reference_rows"] == summary["current_rows"] == 400
    assert summary["column_types"]["categorical"] == ["on_promotion"]
    assert "html" not in summary and "json" not in summary


def test_html_is_self_contained(stable):
    html = stable.html.decode("utf-8")
    assert html.lower().startswith("<!doctype html")
    assert not re.search(r"<script[^>]*\bsrc\s*=\s*[\"']?https?:", html, re.IGNORECASE)
    assert not re.search(r"<link[^>]*\bhref\s*=\s*[\"']?https?:", html, re.IGNORECASE)


def test_snapshot_json_is_evidently_snapshot(stable):
    snapshot = json.loads(stable.json)
    assert snapshot["metrics"] and "tests" in snapshot


def test_sampling_cap_is_respected_and_deterministic():
    ref, cur = features(n=1500, seed=3), features(n=1200, seed=4)
    first = detect_drift(ref, cur, COLUMNS, drift_share=0.5, max_rows=300, seed=7)
    again = detect_drift(ref, cur, COLUMNS, drift_share=0.5, max_rows=300, seed=7)
    assert (first.reference_rows, first.current_rows) == (300, 300)
    assert (first.reference_rows_total, first.current_rows_total) == (1500, 1200)
    assert first.column_scores == again.column_scores


def test_column_types_are_explicit(reference):
    numerical, categorical = split_column_types(
        reference,
        reference,
        ["units_sold", "on_promotion", "day_of_week", "category", "is_stockout", "lag_28"],
    )
    assert numerical == ["units_sold", "lag_28"]
    assert categorical == ["on_promotion", "day_of_week", "category", "is_stockout"]


def test_datetime_column_is_rejected(reference):
    with pytest.raises(PlatformError, match="sales_date"):
        detect_drift(reference, reference, ["sales_date", "units_sold"], drift_share=0.5, max_rows=1000)


def test_missing_columns_are_named(reference):
    current = features(seed=2).drop(columns=["unit_price", "discount_pct"])
    with pytest.raises(
        PlatformError, match=r"current data lacks monitored column\(s\) \['unit_price', 'discount_pct'\]"
    ):
        detect_drift(reference, current, COLUMNS, drift_share=0.5, max_rows=1000)


@pytest.mark.parametrize("side", ["reference", "current"])
def test_empty_side_is_named(reference, side):
    frames = {"reference": reference, "current": features(seed=2)}
    frames[side] = frames[side].iloc[:0]
    with pytest.raises(PlatformError, match=f"{side} data is empty"):
        detect_drift(frames["reference"], frames["current"], COLUMNS, drift_share=0.5, max_rows=1000)


def test_column_empty_on_one_side_counts_as_drift(reference):
    current = features(seed=2)
    current["lag_28"] = np.nan
    report = detect_drift(reference, current, [*COLUMNS, "lag_28"], drift_share=0.5, max_rows=1000)
    assert report.column_scores["lag_28"] == {
        "method": "no values in current",
        "score": None,
        "threshold": None,
        "drifted": True,
    }
    assert "lag_28" in report.drifted_columns


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"columns": []}, "no columns"), ({"drift_share": 0.0}, "drift_share"), ({"max_rows": 0}, "max_rows")],
)
def test_bad_arguments(reference, kwargs, match):
    args = {"columns": COLUMNS, "drift_share": 0.5, "max_rows": 1000, **kwargs}
    with pytest.raises(PlatformError, match=match):
        detect_drift(reference, reference, **args)


def test_monitored_columns_defaults_to_target_and_features():
    features_spec = SimpleNamespace(target="y", numeric=["a", "b"], categorical=["c", "a"])
    spec = SimpleNamespace(monitoring=SimpleNamespace(columns=[]), features=features_spec)
    assert monitored_columns(spec) == ["y", "a", "b", "c"]
    spec.monitoring.columns = ["b"]
    assert monitored_columns(spec) == ["b"]
