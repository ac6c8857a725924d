"""The metric and join helpers of `make evaluate` (bench/evaluate.py) on a three-row fixture.

What the evaluation's verdict rests on: forecasts are joined to the right actuals, rows without an actual
are left out, every method is scored on the same rows, and WAPE / MASE / coverage are what they claim.
"""

from __future__ import annotations

import importlib.util
import math
import sys
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def ev():
    """bench/evaluate.py as a module (bench/ is not a package; a unique name avoids any clash)."""
    spec = importlib.util.spec_from_file_location("mlplatform_bench_evaluate", ROOT / "bench" / "evaluate.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


CUTOFF = pd.Timestamp("2020-03-31")
TARGETS = pd.to_datetime(["2020-06-30", "2020-09-30", "2020-12-31"])


def _forecasts(p50=(11.0, 18.0, 30.0), p10=(9.0, 21.0, 25.0), p90=(12.0, 22.0, 35.0)) -> pd.DataFrame:
    return pd.DataFrame({"series_id": "a", "cutoff": CUTOFF, "target_date": TARGETS, "horizon": [1, 2, 3],
                         "p10": p10, "p50": p50, "p90": p90})


def _actuals(y=(10.0, 20.0, 30.0)) -> pd.DataFrame:
    return pd.DataFrame({"series_id": "a", "date": TARGETS, "y": y})


SCALES = pd.DataFrame({"series_id": ["a"], "cutoff": [CUTOFF], "scale": [2.0]})


def test_three_rows_give_the_hand_computed_metrics(ev) -> None:
    rows = ev.join_actuals(_forecasts(), _actuals(), SCALES)
    assert list(rows["y"]) == [10.0, 20.0, 30.0] and list(rows["scale"]) == [2.0] * 3
    metrics = ev.score(rows)
    # errors 1, 2, 0 on actuals summing to 60; scaled errors 0.5, 1, 0; the second actual is below its P10
    assert metrics["wape"] == pytest.approx(3 / 60, abs=1e-6)  # metrics are rounded to 6 decimals
    assert metrics["mase"] == pytest.approx(0.5, abs=1e-6)
    assert metrics["bias"] == pytest.approx((1 - 2 + 0) / 60, abs=1e-6)
    assert metrics["coverage_p10_p90"] == pytest.approx(2 / 3, abs=1e-6)
    assert metrics["rows"] == 3


def test_a_row_without_an_actual_is_left_out_not_scored_as_zero(ev) -> None:
    rows = ev.join_actuals(_forecasts(), _actuals(y=(10.0, float("nan"), 30.0)), SCALES)
    assert list(rows["horizon"]) == [1, 3]
    assert ev.score(rows)["wape"] == pytest.approx(1 / 40, abs=1e-6)


def test_every_method_is_scored_on_the_rows_all_of_them_forecast(ev) -> None:
    full = ev.join_actuals(_forecasts(), _actuals(), SCALES)
    partial = full[full["horizon"] != 2]
    aligned = ev.same_rows({"platform": partial, "seasonal_naive": full})
    assert [list(f["horizon"]) for f in aligned.values()] == [[1, 3], [1, 3]]
    assert ev.score(aligned["seasonal_naive"])["rows"] == ev.score(aligned["platform"])["rows"] == 2


def test_a_horizon_pointing_at_another_period_is_not_compared(ev) -> None:
    reference = ev.join_actuals(_forecasts(), _actuals(), SCALES)
    shifted = _forecasts().assign(target_date=TARGETS.shift(1, freq="QE"))  # horizon h labelled with h + 1
    platform = ev.join_actuals(shifted, _actuals(), SCALES)
    aligned = ev.same_rows({"platform": platform, "auto_ets": reference})
    assert [len(f) for f in aligned.values()] == [0, 0]


def test_a_forecast_repeated_for_one_key_is_refused(ev) -> None:
    doubled = pd.concat([_forecasts(), _forecasts().iloc[[0]]], ignore_index=True)
    with pytest.raises(ValueError, match="repeat a"):
        ev.join_actuals(doubled, _actuals(), SCALES)


def test_no_rows_or_zero_actuals_give_no_metric_rather_than_a_number(ev) -> None:
    empty = ev.score(ev.join_actuals(_forecasts(), _actuals(y=(float("nan"),) * 3), SCALES))
    assert empty == {"wape": None, "mase": None, "bias": None, "coverage_p10_p90": None, "rows": 0}
    zeros = ev.score(ev.join_actuals(_forecasts(), _actuals(y=(0.0, 0.0, 0.0)), SCALES))
    assert zeros["wape"] is None and zeros["rows"] == 3 and math.isfinite(zeros["mase"])


def test_mase_scale_uses_observed_seasonal_pairs_up_to_the_cutoff_only(ev) -> None:
    dates = pd.date_range("2019-01-31", periods=6, freq="ME")
    history = pd.DataFrame({"series_id": "a", "date": dates, "y": [1.0, 2.0, 4.0, float("nan"), 9.0, 100.0]})
    scales = ev.mase_scales(history, [dates[4].date()], season_length=1)
    # |2-1|, |4-2| observed; the pairs touching the gap are skipped; the value after the cut-off is unseen
    assert scales["scale"].tolist() == [1.5]


def test_targets_and_ratio(ev) -> None:
    refs = {"seasonal_naive": {"wape": 0.10}, "auto_ets": {"wape": 0.08}}
    good = {"wape": 0.07, "coverage_p10_p90": 0.8}
    assert ev.ratio_vs_best(good, refs) == pytest.approx(0.875)
    assert all(ev.targets_met(good, refs, [{"published": True}]).values())
    missed = ev.targets_met({"wape": None, "coverage_p10_p90": None}, refs, [{"published": False, "error": "x"}])
    assert not any(missed.values())
    assert ev.targets_met({"wape": 0.09, "coverage_p10_p90": 0.9}, refs, [{"published": True}]) == {
        "p50_wape_at_most_best_reference": False, "coverage_p10_p90_within_75_85": False,
        "published_every_cutoff": True}


def test_cutoffs_are_the_last_period_ends_spaced_by_the_horizon(ev) -> None:
    ends = [date(2000 + i // 4, 3 * (i % 4) + 1, 1) for i in range(20)]
    assert ev.cutoff_dates(ends, horizon=4, n=2) == [ends[11], ends[15]]
    with pytest.raises(ValueError, match="too little history"):
        ev.cutoff_dates(ends, horizon=4, n=4)
