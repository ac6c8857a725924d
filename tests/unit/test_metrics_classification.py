"""Regression and classification metrics: agreement with sklearn, and defined behaviour on edge cases."""

import math

import numpy as np
import pytest
from sklearn import metrics as skm

from mlplatform.metrics import (
    brier,
    expected_calibration_error,
    log_loss,
    mae,
    rmse,
    roc_auc,
)


@pytest.fixture(scope="module")
def binary():
    rng = np.random.default_rng(3)
    p = rng.uniform(0.0, 1.0, 500)
    y = (rng.uniform(size=500) < p).astype(float)
    return y, p


@pytest.fixture(scope="module")
def continuous():
    rng = np.random.default_rng(4)
    a = rng.normal(10.0, 3.0, 300)
    return a, a + rng.normal(0.5, 2.0, 300)


def test_mae_and_rmse_match_sklearn(continuous):
    a, f = continuous
    assert mae(a, f) == pytest.approx(skm.mean_absolute_error(a, f))
    assert rmse(a, f) == pytest.approx(math.sqrt(skm.mean_squared_error(a, f)))


def test_rmse_weighs_large_misses_more_than_mae():
    assert mae([0, 0], [0, 4]) == pytest.approx(2.0)
    assert rmse([0, 0], [0, 4]) == pytest.approx(math.sqrt(8.0))


def test_log_loss_brier_and_auc_match_sklearn(binary):
    y, p = binary
    assert log_loss(y, p) == pytest.approx(skm.log_loss(y, p))
    assert brier(y, p) == pytest.approx(skm.brier_score_loss(y, p))
    assert roc_auc(y, p) == pytest.approx(skm.roc_auc_score(y, p))


def test_roc_auc_counts_ties_as_one_half():
    y = np.array([0, 0, 1, 1, 0, 1], dtype=float)
    s = np.array([0.1, 0.5, 0.5, 0.9, 0.5, 0.2])
    assert roc_auc(y, s) == pytest.approx(skm.roc_auc_score(y, s))
    assert roc_auc([0, 1], [0.3, 0.3]) == pytest.approx(0.5)


def test_log_loss_clips_certain_misses_instead_of_returning_inf():
    value = log_loss([1, 0], [0.0, 1.0])
    assert math.isfinite(value)
    assert value == pytest.approx(-math.log(1e-15), rel=0.01)


def test_roc_auc_is_nan_with_a_single_class():
    assert math.isnan(roc_auc([1, 1, 1], [0.2, 0.5, 0.9]))
    assert math.isnan(roc_auc([0, 0], [0.2, 0.5]))


def test_metrics_are_nan_on_empty_input():
    for fn in (mae, rmse, log_loss, brier, roc_auc, expected_calibration_error):
        assert math.isnan(fn([], []))


def test_pairs_with_nan_are_ignored(binary):
    y, p = binary
    y_nan = np.append(y, [np.nan, 1.0])
    p_nan = np.append(p, [0.3, np.nan])
    for fn in (log_loss, brier, roc_auc, expected_calibration_error):
        assert fn(y_nan, p_nan) == pytest.approx(fn(y, p))
    assert mae([1, np.nan, 3], [2, 5, np.nan]) == pytest.approx(1.0)


def test_non_binary_labels_are_rejected():
    with pytest.raises(ValueError, match="0/1 labels"):
        log_loss([0, 2], [0.5, 0.5])
    with pytest.raises(ValueError, match="0/1 labels"):
        roc_auc([0, 0.5], [0.5, 0.5])


def test_unequal_lengths_are_rejected():
    with pytest.raises(ValueError, match="equal length"):
        brier([0, 1, 1], [0.5, 0.5])


def test_ece_of_a_calibrated_forecast_is_small_and_of_a_biased_one_large(binary):
    y, p = binary
    assert expected_calibration_error(y, p) < 0.08
    assert expected_calibration_error(y, np.clip(p + 0.3, 0, 1)) > 0.2


def test_ece_weights_bins_by_size():
    # bin [0.1, 0.2): 3 rows at 0.15, one positive -> |1/3 - 0.15|; bin [0.9, 1]: 1 row at 1.0, positive -> 0.
    y = [1, 0, 0, 1]
    p = [0.15, 0.15, 0.15, 1.0]
    assert expected_calibration_error(y, p) == pytest.approx(3 / 4 * abs(1 / 3 - 0.15))


def test_ece_matches_the_sklearn_calibration_curve(binary):
    y, p = binary
    from sklearn.calibration import calibration_curve

    rate, mean_p = calibration_curve(y, p, n_bins=10, strategy="uniform")
    bins = np.minimum((p * 10).astype(int), 9)
    counts = np.bincount(bins, minlength=10)
    expected = np.sum(counts[counts > 0] / len(p) * np.abs(rate - mean_p))
    assert expected_calibration_error(y, p) == pytest.approx(expected)
