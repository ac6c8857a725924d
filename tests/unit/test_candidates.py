"""Forecast candidates: selection by backtest, the statistical budget, conformal intervals, the fallback."""

import numpy as np
import pandas as pd
import pytest
from forecast_fixtures import last_date, make_period_data, make_period_spec, single_threaded

from mlplatform.candidates import (
    ForecastModel,
    apply_calibration,
    calibrate,
    series_scale,
    statistical_p50,
    statistical_season,
    statistical_window,
)
from mlplatform.errors import SpecError
from mlplatform.scoring import forecast_chunks
from mlplatform.spec import CANDIDATES, load_spec
from mlplatform.training import consistent_choice, train_and_backtest


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    with single_threaded():
        yield


@pytest.fixture(scope="module")
def quarterly():
    """A small quarterly panel (6 series) with a three-fold backtest."""
    features, calendar = make_period_data("quarterly")
    spec = make_period_spec("quarterly", {"backtest": {"folds": 3}, "model": {"candidates": list(CANDIDATES)}})
    return features, calendar, spec


@pytest.fixture(scope="module")
def trained(quarterly):
    features, calendar, spec = quarterly
    return train_and_backtest(features, calendar, spec, last_date(features))


def _consistently_beaten(scored: dict, name: str) -> bool:
    mine = scored[name]
    return any(o["wape"] < mine["wape"] and all(a < b for a, b in zip(o["fold_wape"], mine["fold_wape"], strict=True))
               for n, o in scored.items() if n != name)


def test_every_candidate_is_backtested_on_the_same_rows_and_the_consistent_one_is_chosen(trained):
    m = trained.metrics
    scored = {n: c for n, c in m["candidates"].items() if c["status"] == "ok"}
    assert set(scored) == set(CANDIDATES)
    assert all(len(c["fold_wape"]) == 3 for c in scored.values())
    chosen = m["chosen"]
    assert chosen == trained.model.candidate and m["selection"] == "consistent"
    assert not _consistently_beaten(scored, chosen)
    learning = [n for n in CANDIDATES if n != "seasonal_naive"]
    assert all(_consistently_beaten(scored, n) for n in learning[: learning.index(chosen)])
    assert m["model"]["wape"] == pytest.approx(scored[chosen]["wape"])
    assert m["baseline"]["wape"] == pytest.approx(scored["seasonal_naive"]["wape"])
    assert all(c["fit_seconds"] >= 0 for c in scored.values())


def test_selection_best_serves_the_lowest_pooled_error(quarterly):
    features, calendar, spec = quarterly
    best = spec.model_copy(update={"model": spec.model.model_copy(update={"selection": "best"})})
    m = train_and_backtest(features, calendar, best, last_date(features)).metrics
    scored = {n: c for n, c in m["candidates"].items() if c["status"] == "ok"}
    assert m["chosen"] == min(scored, key=lambda n: (scored[n]["wape"], list(CANDIDATES).index(n)))


def _scores(**folds: list[float]) -> dict:
    return {n: {"wape": float(np.mean(v)), "fold_wape": v} for n, v in folds.items()}


def test_a_complex_candidate_better_on_average_but_not_on_every_fold_does_not_replace_a_simpler_one():
    scores = _scores(seasonal_naive=[0.9, 0.9, 0.9], auto_ets=[0.30, 0.30, 0.30], ensemble=[0.20, 0.20, 0.31])
    assert consistent_choice(scores, list(scores), "wape") == "auto_ets"


def test_a_complex_candidate_that_wins_every_fold_is_chosen():
    scores = _scores(seasonal_naive=[0.9, 0.9, 0.9], auto_ets=[0.30, 0.30, 0.30], gbm=[0.29, 0.10, 0.20],
                     ensemble=[0.25, 0.15, 0.25])
    assert consistent_choice(scores, list(scores), "wape") == "gbm"


def test_the_seasonal_naive_is_considered_after_every_learning_candidate():
    scores = _scores(seasonal_naive=[0.2, 0.2, 0.2], auto_ets=[0.3, 0.3, 0.3])
    assert consistent_choice(scores, list(scores), "wape") == "seasonal_naive"
    scores = _scores(seasonal_naive=[0.2, 0.2, 0.4], auto_ets=[0.3, 0.3, 0.3])
    assert consistent_choice(scores, list(scores), "wape") == "auto_ets"  # the gate then judges it


def test_a_higher_is_better_metric_is_compared_the_right_way_round():
    scores = {"auto_ets": {"roc_auc": 0.70, "fold_roc_auc": [0.7, 0.7]},
              "gbm": {"roc_auc": 0.80, "fold_roc_auc": [0.75, 0.85]}}
    assert consistent_choice(scores, list(scores), "roc_auc") == "gbm"


def test_the_ensemble_is_the_median_of_the_best_single_candidates(trained):
    ensemble = trained.metrics["candidates"]["ensemble"]
    singles = {n: c["wape"] for n, c in trained.metrics["candidates"].items() if n != "ensemble"}
    assert ensemble["members"] == sorted(singles, key=singles.get)[:3]


def test_statistical_candidates_are_skipped_above_the_series_budget(quarterly):
    features, calendar, spec = quarterly
    small = spec.model_copy(update={"model": spec.model.model_copy(
        update={"statistical": spec.model.statistical.model_copy(update={"max_series": 2})})})
    m = train_and_backtest(features, calendar, small, last_date(features)).metrics
    for name in ("auto_ets", "auto_theta"):
        assert m["candidates"][name]["status"].startswith("skipped: 6 series > model.statistical.max_series 2")
    assert m["candidates"]["gbm"]["status"] == "ok"


def test_the_seasonal_naive_never_beats_itself(quarterly):
    features, calendar, spec = quarterly
    naive = spec.model_copy(update={"model": spec.model.model_copy(update={"candidates": ["seasonal_naive"]})})
    m = train_and_backtest(features, calendar, naive, last_date(features)).metrics
    assert m["chosen"] == "seasonal_naive"
    assert m["improvement"] == pytest.approx(0.0)
    assert m["beats_baseline"] is False


def test_the_fallback_is_the_best_candidate_that_learns_nothing_across_series(trained):
    simple = {n: c["wape"] for n, c in trained.metrics["candidates"].items()
              if n in ("seasonal_naive", "auto_ets", "auto_theta")}
    assert trained.fallback.candidate == min(simple, key=simple.get)
    assert trained.fallback.fallback is True and trained.model.fallback is False
    assert trained.fallback_metrics["candidate"] == trained.fallback.candidate


def test_served_intervals_are_monotone_and_the_p50_is_the_chosen_point(trained, quarterly):
    features, calendar, spec = quarterly
    out = pd.concat(forecast_chunks(trained.model, features, calendar, spec, last_date(features), 1_000))
    assert len(out) == 6 * spec.forecast.horizon
    assert (out["p10"] <= out["p50"]).all() and (out["p50"] <= out["p90"]).all()
    assert np.isfinite(out[["p10", "p50", "p90"]].to_numpy()).all()
    again = ForecastModel.from_bytes(trained.model.to_bytes())
    pd.testing.assert_frame_equal(
        pd.concat(forecast_chunks(again, features, calendar, spec, last_date(features), 1_000)), out)


def test_backtest_coverage_is_cross_fitted_and_reported(trained):
    cal = trained.metrics["calibration"]
    assert cal["method"] == "conformal" and cal["cross_fitted"] is True
    assert 0.0 <= trained.metrics["model"]["coverage"] <= 1.0
    assert cal["coverage"] == trained.metrics["model"]["coverage"]


def test_conformal_offsets_reach_nominal_coverage_on_exchangeable_residuals():
    rng = np.random.default_rng(0)
    horizons = np.tile(np.arange(1, 5), 500)
    z = rng.normal(0, 1, horizons.size) * np.sqrt(horizons)  # spread grows with the horizon
    table = calibrate(z, horizons, 4, [0.1, 0.5, 0.9])
    assert table["p50"] == [0.0] * 4
    assert all(a <= b for a, b in zip(table["p90"], table["p90"][1:], strict=False))  # never narrows
    fresh_h = np.tile(np.arange(1, 5), 2000)
    fresh = rng.normal(0, 1, fresh_h.size) * np.sqrt(fresh_h)
    bands = apply_calibration(np.zeros(fresh.size), np.ones(fresh.size), fresh_h, table, nonnegative=False)
    inside = np.mean((fresh >= bands["p10"]) & (fresh <= bands["p90"]))
    assert 0.77 <= inside <= 0.84


def test_offsets_never_cross_the_point_forecast_even_for_a_biased_model():
    horizons = np.tile(np.arange(1, 3), 50)
    z = np.abs(np.random.default_rng(1).normal(2.0, 0.5, horizons.size))  # every residual positive
    table = calibrate(z, horizons, 2, [0.1, 0.5, 0.9])
    assert all(v == 0.0 for v in table["p10"]) and all(v > 0 for v in table["p90"])


def test_few_residuals_pool_neighbouring_horizons_and_widen_with_the_finite_sample_correction():
    horizons = np.arange(1, 13)  # one residual per horizon, as one series x one fold gives
    z = np.linspace(-1, 1, 12)
    table = calibrate(z, horizons, 12, [0.1, 0.5, 0.9])
    assert table["p90"][0] == pytest.approx(1.0) and table["p10"][0] == pytest.approx(-1.0)


def test_statistical_forecasts_see_only_history_up_to_the_origin(quarterly):
    features, _, spec = quarterly
    origin = last_date(features) - pd.offsets.QuarterEnd(4)
    upto = features[features["sales_date"] <= origin]
    a = statistical_p50(features, spec, origin, "auto_ets")
    b = statistical_p50(upto, spec, origin, "auto_ets")
    np.testing.assert_allclose(a, b)
    assert np.isfinite(a).all() and a.size == 6 * spec.forecast.horizon


def test_series_scale_is_per_series_and_positive(quarterly):
    features, _, spec = quarterly
    scale = series_scale(features, spec, last_date(features))
    assert scale.shape == (6,) and (scale > 0).all()


def test_a_steady_trend_is_not_counted_as_uncertainty_in_the_series_scale(quarterly):
    """The scale is the spread of the period-to-period changes: a series climbing by 10 +- 1 a quarter
    is easy to forecast, one that moves +-10 at random is not, though both move 10 per period."""
    features, _, spec = quarterly
    target, time_col = spec.features.target, spec.features.time_column
    first = features[spec.features.series_keys].drop_duplicates().head(2).to_numpy()
    is_a = (features[spec.features.series_keys] == first[0]).all(axis=1)
    is_b = (features[spec.features.series_keys] == first[1]).all(axis=1)
    rng = np.random.default_rng(1)
    steps = rng.choice([-10.0, 10.0], size=int(is_b.sum()))
    features = features.copy()
    features.loc[is_a, target] = 1_000.0 + np.cumsum(10.0 + rng.normal(0, 1, int(is_a.sum())))
    features.loc[is_b, target] = 1_000.0 + np.cumsum(steps)
    scale = series_scale(features.sort_values([*spec.features.series_keys, time_col]), spec, last_date(features))
    order = features.drop_duplicates(spec.features.series_keys)[spec.features.series_keys].to_numpy()
    position = {tuple(k): i for i, k in enumerate(sorted(map(tuple, order)))}
    steady, noisy = scale[position[tuple(first[0])]], scale[position[tuple(first[1])]]
    assert noisy > 5 * steady


def test_statistical_season_falls_back_when_the_window_cannot_hold_two_seasons():
    daily = make_period_spec("quarterly").model_copy(update={"frequency": "daily"})
    long_season = daily.model_copy(update={"backtest": daily.backtest.model_copy(update={"season_length": 364})})
    assert statistical_window(long_season) == 112
    assert statistical_season(long_season) == 7
    assert statistical_season(make_period_spec("quarterly")) == 4


@pytest.mark.parametrize(("candidates", "message"), [
    (["ensemble"], "at least one more"),
    (["gbm", "ensemble"], "at least two other candidates"),
    (["gbm", "gbm"], "listed twice"),
    (["prophet"], "candidates.0"),
])
def test_bad_candidate_lists_are_rejected_naming_the_field(tmp_path, candidates, message):
    import re

    from forecast_fixtures import USE_CASES

    text = re.sub(r"\n  candidates: \[[^\]]*\]\n", f"\n  candidates: {candidates}\n",
                  (USE_CASES / "demand_forecast.yaml").read_text())
    path = tmp_path / "demand_forecast.yaml"
    path.write_text(text)
    with pytest.raises(SpecError) as failure:
        load_spec(path)
    assert "model.candidates" in str(failure.value) and message in str(failure.value)


def test_auto_ets_follows_a_season_longer_than_ets_can_model():
    """ETS models seasons up to 24 periods; a 52-week cycle goes through MSTL first, so the forecast
    keeps the cycle instead of flattening it (a plain non-seasonal ETS misses it by twice as much or more)."""
    from mlplatform.candidates import _fit_forecast

    t = np.arange(260 + 13)
    y = 100 + 10 * np.sin(2 * np.pi * t / 52) + 0.1 * t + np.random.default_rng(0).normal(0, 0.2, t.size)
    forecast = _fit_forecast("auto_ets", y[:260], 52, 13)
    assert np.abs(forecast - y[260:]).mean() < 1.0
    flat = _fit_forecast("auto_ets", y[:260], 1, 13)
    assert np.abs(flat - y[260:]).mean() > 2 * np.abs(forecast - y[260:]).mean()
