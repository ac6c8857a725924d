"""A training run that produces a broken model (NaN predictions) is caught before promotion.

The fault: the final fit of the run comes out with NaN leaf values in one tree (what a numerical bug,
a corrupted estimator or a bad library upgrade produces), while the backtest folds are healthy, so the
backtest metrics alone would promote it. The gate scores the run's own rows with the model exactly as
it will be served (loaded back from its bytes) and refuses it.
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
import reliability_support as rs

from mlplatform import pipeline, registry
from mlplatform.errors import ModelNotAvailableError, PlatformError
from mlplatform.forecasting import QuantileForecaster
from mlplatform.publishing import read_published
from mlplatform.storage import Layout

pytestmark = pytest.mark.reliability

RUN_DATE = rs.CHAMPION_DATE + timedelta(days=1)


def gbm_only(spec):
    """The use case with the global model as its only learning candidate, so the served model is a tree."""
    return spec.model_copy(update={"model": spec.model.model_copy(update={"candidates": ["gbm"]})})


@pytest.fixture
def broken_final_fit(world_copy, monkeypatch):
    """QuantileForecaster.fit as usual, except that the run's last fit (the model to register) gets a
    tree whose leaves are NaN."""
    original, calls = QuantileForecaster.fit, {"n": 0}
    final_fit = world_copy.spec.backtest.folds + 1  # one fit per backtest fold, then the served model

    def fit(self, train):
        fitted = original(self, train)
        calls["n"] += 1
        if calls["n"] == final_fit:
            tree = fitted.estimators[0]._predictors[0][0]
            tree.nodes["value"][:] = np.nan
        return fitted

    monkeypatch.setattr(QuantileForecaster, "fit", fit)
    return calls


def test_a_model_with_nan_predictions_is_registered_as_broken_and_never_promoted(world_copy, broken_final_fit):
    spec, store, settings = gbm_only(world_copy.spec), world_copy.store, world_copy.settings
    layout = Layout(spec.name)
    champion_before = registry.champion_on(store, layout, RUN_DATE)["version"]
    rs.full_run(spec, RUN_DATE, settings, store, stages=("land_raw", "build_features", "validate_features"))
    with rs.single_openmp_thread():
        result = pipeline.train_model(spec, RUN_DATE, store)
    assert broken_final_fit["n"] == spec.backtest.folds + 1

    decision = result["decision"]
    assert decision["promoted"] is False and decision["eligible"] is False
    assert "broken model" in decision["reason"] and "NaN or infinite" in decision["reason"]
    sanity = decision["checks"]["sanity"]
    assert sanity["passed"] is False and sanity["non_finite_rows"] == sanity["rows_scored"] > 0
    assert decision["checks"]["baseline"]["passed"] is True  # the backtest alone would have promoted it

    # the champion keeps serving, and the broken version can be neither pinned nor rolled back to
    assert registry.champion_on(store, layout, RUN_DATE)["version"] == champion_before
    with pytest.raises(ModelNotAvailableError, match="may not serve"):
        pipeline.score_and_publish(spec, RUN_DATE, store, pinned=result["version"])
    with pytest.raises(PlatformError, match="refusing to make it champion"):
        registry.rollback(store, layout, result["version"], reason="test", effective_date=RUN_DATE)
    with rs.single_openmp_thread():
        published = pipeline.score_and_publish(spec, RUN_DATE, store)
    assert published["model_version"] == champion_before
    rows = read_published(store, layout.forecasts(RUN_DATE))
    assert np.isfinite(rows[spec.quantile_columns].to_numpy()).all()


def test_a_healthy_model_passes_the_same_check(world):
    meta = registry.champion_on(world.store, Layout(world.spec.name), rs.CHAMPION_DATE)
    sanity = meta["decision"]["checks"]["sanity"]
    assert sanity["passed"] is True and sanity["rows_scored"] > 0 and sanity["non_finite_rows"] == 0
