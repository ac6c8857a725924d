"""Forecast metrics: values on hand-computed cases, and defined behaviour on empty or zero inputs."""

import math

import numpy as np
import pytest

from mlplatform.metrics import bias, interval_coverage, mase, seasonal_scale, wape


def test_wape_is_total_absolute_error_over_total_actual():
    assert wape([10, 0, 5], [8, 1, 5]) == pytest.approx(3 / 15)


def test_wape_and_bias_are_nan_when_actuals_sum_to_zero():
    assert math.isnan(wape([0, 0], [1, 2]))
    assert math.isnan(bias([0, 0], [1, 2]))
    assert math.isnan(bias([1, -1], [1, 2]))


def test_metrics_are_nan_on_empty_input():
    for value in (wape([], []), bias([], []), mase([], [], 1.0), interval_coverage([], [], [])):
        assert math.isnan(value)


def test_bias_sign_shows_over_and_under_forecasting():
    assert bias([10, 10], [12, 13]) == pytest.approx(0.25)
    assert bias([10, 10], [5, 5]) == pytest.approx(-0.5)


def test_pairs_with_nan_are_ignored_not_propagated():
    assert wape([10, np.nan, 5], [8, 3, np.nan]) == pytest.approx(0.2)


def test_unequal_lengths_are_rejected():
    with pytest.raises(ValueError, match="equal length"):
        wape([1, 2, 3], [1, 2])


def test_mase_scales_each_row_by_its_series_scale():
    actual = [10, 10, 100, 100]
    forecast = [12, 8, 110, 90]
    scale = [2, 2, 20, 20]
    assert mase(actual, forecast, scale) == pytest.approx(np.mean([1, 1, 0.5, 0.5]))
    assert mase(actual, forecast, 10.0) == pytest.approx(np.mean([0.2, 0.2, 1, 1]))


def test_mase_leaves_out_rows_with_zero_or_missing_scale():
    assert mase([10, 10, 10], [12, 20, 30], [2, 0, np.nan]) == pytest.approx(1.0)
    assert math.isnan(mase([10], [12], [0]))


def test_seasonal_scale_is_mean_absolute_seasonal_difference():
    history = [1, 2, 3, 4, 6, 8]  # season 3: |4-1|, |6-2|, |8-3|
    assert seasonal_scale(history, 3) == pytest.approx(4.0)
    assert seasonal_scale([1, 2, np.nan, 5], 1) == pytest.approx(1.0)  # NaN drops the pairs it is in
    assert math.isnan(seasonal_scale([1, 2, 3], 3))
    with pytest.raises(ValueError):
        seasonal_scale([1, 2, 3], 0)


def test_interval_coverage_counts_closed_interval():
    actual = [5, 10, 15, 20]
    assert interval_coverage(actual, [5, 0, 16, 0], [5, 9, 20, 100]) == pytest.approx(0.5)
