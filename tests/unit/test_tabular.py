"""Tabular trainer: label-delay leakage guards, backtest vs baseline and champion, calibration, scoring."""

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pytest
from tabular_fixtures import DELAY, as_of, last_date, make_panel, make_spec

from mlplatform import tabular
from mlplatform.errors import DataQualityError
from mlplatform.metrics import expected_calibration_error
from mlplatform.tabular import BaselineModel, TabularModel, backtest_origins, score_chunks, train_and_backtest

DAY = pd.Timedelta(days=1)
OVERFIT = {"max_iter": 150, "learning_rate": 0.3, "max_leaf_nodes": 31, "min_samples_leaf": 5}


@dataclass
class Champion:
    version: str
    model: Any
    trained_to: Any


@pytest.fixture(scope="module", autouse=True)
def single_thread():
    """One OpenMP thread: on shared cores, the boosters' thread pools spin against each other and a
    few-second module can take a minute; these data are far too small to gain from threads."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        yield


@pytest.fixture(scope="module")
def panel():
    return make_panel()


@pytest.fixture(scope="module")
def run_date(panel):
    return last_date(panel)


@pytest.fixture(scope="module")
def features(panel, run_date):
    return as_of(panel, run_date)


@pytest.fixture(scope="module")
def spec():
    return make_spec()


@pytest.fixture(scope="module")
def one_fold():
    return make_spec(overrides={"backtest": {"folds": 1}})


@pytest.fixture(scope="module")
def fit_log():
    return []


@pytest.fixture(scope="module")
def result(features, spec, run_date, fit_log):
    """One backtest for the module; every fit (model and baseline) records what it was given."""
    patch = pytest.MonkeyPatch()
    for cls in (TabularModel, BaselineModel):
        original = cls.fit

        def recording_fit(self, train, _original=original, _cls=cls):
            fit_log.append((_cls.__name__, train["snapshot_date"].max(), train["defaulted_90d"].isna().sum(),
                            len(train)))
            return _original(self, train)

        patch.setattr(cls, "fit", recording_fit)
    try:
        yield train_and_backtest(features, spec, run_date)
    finally:
        patch.undo()


def _manual_training_count(features, spec, cutoff):
    last = cutoff - DELAY * DAY
    time = features["snapshot_date"]
    keep = (time <= last) & (time > last - spec.model.training_window * DAY) & features["defaulted_90d"].notna()
    return int(keep.sum())


def _scores(chunks):
    return pd.concat(list(chunks), ignore_index=True)


# ------------------------------------------------------------------------------------------- guards


def test_rows_after_run_date_are_rejected(features, spec, run_date):
    early = run_date - 10 * DAY
    with pytest.raises(DataQualityError, match=f"after run_date {early.date()}"):
        train_and_backtest(features, spec, early)


def test_duplicate_rows_and_non_binary_labels_are_rejected(features, spec, run_date):
    with pytest.raises(DataQualityError, match="duplicate"):
        tabular.prepare(pd.concat([features, features.head(3)]), spec, run_date)
    bad = features.assign(defaulted_90d=features["defaulted_90d"].replace(1.0, 2.0))
    with pytest.raises(DataQualityError, match="0/1"):
        tabular.prepare(bad, spec, run_date)


def test_fold_origins_leave_every_scored_label_known(spec, run_date):
    origins = backtest_origins(spec, run_date)
    step = spec.backtest.fold_step
    assert len(origins) == spec.backtest.folds
    assert origins[-1] == run_date - (DELAY + step) * DAY
    assert [b - a for a, b in zip(origins, origins[1:], strict=False)] == [step * DAY] * (len(origins) - 1)


def test_no_fit_sees_a_label_unknown_at_its_cutoff(result, fit_log, features, spec, run_date):
    cutoffs = [*backtest_origins(spec, run_date), run_date]
    assert [name for name, *_ in fit_log] == ["TabularModel", "BaselineModel"] * spec.backtest.folds + ["TabularModel"]
    fits = [entry for entry in fit_log if entry[0] == "TabularModel"]
    for (_, max_time, n_unlabelled, n_rows), cutoff in zip(fits, cutoffs, strict=True):
        assert max_time <= cutoff - DELAY * DAY
        assert n_unlabelled == 0
        assert n_rows == _manual_training_count(features, spec, cutoff)
    for fold, cutoff in zip(result.metrics["folds"], cutoffs, strict=False):
        assert fold["n_training_rows"] == _manual_training_count(features, spec, cutoff)


def test_evaluation_rows_are_the_fold_step_after_each_origin(result, features, spec):
    time = features["snapshot_date"]
    for fold in result.metrics["folds"]:
        origin = pd.Timestamp(fold["origin"])
        window = (time > origin) & (time <= origin + spec.backtest.fold_step * DAY)
        assert fold["n_eval_rows"] == int((window & features["defaulted_90d"].notna()).sum()) > 0


def test_leakage_invariant_fires_on_a_tampered_training_set(features, spec, run_date, monkeypatch):
    def leaky(frame, spec_, cutoff, max_rows):
        return frame.loc[frame["defaulted_90d"].notna()]  # ignores the cutoff

    monkeypatch.setattr(tabular, "training_rows", leaky)
    with pytest.raises(AssertionError, match="not known at the cutoff"):
        train_and_backtest(features, spec, run_date)


# ----------------------------------------------------------------------------------------- backtest


def test_model_beats_the_linear_baseline_and_the_prior_on_signal_data(result):
    m = result.metrics
    assert m["metric"] == "log_loss" and m["higher_is_better"] is False
    assert m["beats_baseline"] is True and m["improvement"] > 0
    rate = m["model"]["positive_rate"]
    prior = -(rate * np.log(rate) + (1 - rate) * np.log(1 - rate))
    assert m["model"]["log_loss"] < 0.9 * prior
    assert m["model"]["roc_auc"] > 0.75


def test_no_skill_is_found_in_pure_noise():
    """With labels independent of the features, a leak would show up as skill; none must appear."""
    noise = make_panel(n_customers=250, signal=0.0, intercept=-1.5, seed=1)
    run = last_date(noise)
    m = train_and_backtest(as_of(noise, run), make_spec(overrides={"backtest": {"folds": 2}}), run).metrics
    assert abs(m["model"]["roc_auc"] - 0.5) < 0.1
    assert abs(m["baseline"]["roc_auc"] - 0.5) < 0.1


def test_metrics_structure_is_complete_and_strict_json(result, spec, run_date):
    m = result.metrics
    json.dumps(m, allow_nan=False)
    assert {"metric", "higher_is_better", "model", "baseline", "improvement", "min_improvement",
            "beats_baseline", "n_eval_rows", "folds", "champion"} <= set(m)
    expected = {"log_loss", "brier", "roc_auc", "calibration_error", "positive_rate", "n"}
    assert set(m["model"]) == set(m["baseline"]) == expected
    assert m["champion"] is None
    assert [f["origin"] for f in m["folds"]] == [o.date().isoformat() for o in backtest_origins(spec, run_date)]
    assert m["n_eval_rows"] == sum(f["n_eval_rows"] for f in m["folds"]) == m["model"]["n"]
    for fold in m["folds"]:
        assert {"origin", "n_training_rows", "n_eval_rows", "model", "baseline"} <= set(fold)


def test_final_model_and_window(result, features, spec, run_date):
    assert result.training_window["end"] == run_date.date().isoformat()
    assert result.n_training_rows == _manual_training_count(features, spec, run_date)
    assert result.feature_names == result.model.feature_names
    assert set(result.reference.columns) >= {"utilisation", "segment"}


def test_backtest_does_not_depend_on_row_order(features, one_fold, run_date):
    shuffled = features.sample(frac=1.0, random_state=3)
    a = train_and_backtest(features, one_fold, run_date).metrics
    b = train_and_backtest(shuffled, one_fold, run_date).metrics
    assert a == b


def test_row_cap_defaults_to_the_spec_and_applies_to_every_fit(features, run_date):
    capped = make_spec(overrides={"backtest": {"folds": 1}, "model": {"max_training_rows": 1000}})
    result = train_and_backtest(features, capped, run_date)
    assert result.metrics["folds"][0]["n_training_rows"] == result.n_training_rows == 1000
    uncapped = train_and_backtest(features, capped, run_date, max_training_rows=None)
    assert uncapped.n_training_rows == _manual_training_count(features, capped, run_date)


# -------------------------------------------------------------------------------------- calibration


def test_time_split_holds_out_the_latest_rows(features, spec, run_date):
    train = tabular.training_rows(tabular.prepare(features, spec, run_date), spec, run_date, None)
    early, late = tabular._time_split(train, "snapshot_date", tabular.CALIBRATION_SHARE)
    assert early["snapshot_date"].max() < late["snapshot_date"].min()
    assert 0.15 < len(late) / len(train) < 0.3


@pytest.fixture(scope="module")
def held_out(panel):
    """Training data as of 180 days before the end, and the truth of every later row."""
    run = last_date(panel) - 180 * DAY
    return as_of(panel, run), run, panel.loc[panel["snapshot_date"] > run]


def _held_out_ece(held_out, calibration, params=None):
    features, run, later = held_out
    overrides = {"tabular": {"calibration": calibration}, **({"model": {"params": params}} if params else {})}
    spec = make_spec(overrides=overrides)
    train = tabular.training_rows(tabular.prepare(features, spec, run), spec, run, None)
    model = TabularModel(spec).fit(train)
    assert model.calibration_used == calibration
    p = model.predict(later)["probability"]
    return expected_calibration_error(later["defaulted_90d"], p), model


def test_isotonic_calibration_repairs_an_overconfident_booster(held_out):
    raw, _ = _held_out_ece(held_out, "none", OVERFIT)
    calibrated, model = _held_out_ece(held_out, "isotonic", OVERFIT)
    assert calibrated < 0.05 < raw
    assert 0 < model.n_calibration_rows < model.n_training_rows


def test_calibrated_default_model_is_well_calibrated_out_of_time(held_out):
    for method in ("isotonic", "sigmoid"):
        ece, model = _held_out_ece(held_out, method)
        assert ece < 0.1, method
        p = model.predict(held_out[2])["probability"]
        assert p.between(tabular.PROBABILITY_FLOOR, 1 - tabular.PROBABILITY_FLOOR).all()


# -------------------------------------------------------------------------------------- persistence


def test_model_round_trips_through_bytes_with_identical_predictions(result, features, spec):
    model = result.model
    restored = TabularModel.from_bytes(model.to_bytes())
    pd.testing.assert_frame_equal(restored.predict(features), model.predict(features))
    assert (restored.kind, restored.use_case, restored.spec_fingerprint) == ("classification", spec.name,
                                                                             spec.fingerprint())
    assert restored.feature_names == [*spec.features.numeric, *spec.features.categorical]
    assert not any(type(v).__name__ == "UseCaseSpec" for v in vars(restored).values())
    with pytest.raises(TypeError, match="TabularModel"):
        TabularModel.from_bytes(BaselineModel(spec).to_bytes())


def test_predict_output_shape_and_unseen_levels(result, features):
    frame = features.head(5).assign(segment=["martian"] * 5)
    out = result.model.predict(frame)
    assert list(out.columns) == ["customer_id", "snapshot_date", "probability"]
    assert out["probability"].between(0, 1).all()
    assert list(result.model.predict(frame.iloc[:0]).columns) == list(out.columns)


# ------------------------------------------------------------------------------------------ champion


def _fold_twin(features, spec, run_date):
    """A model fitted exactly like the single fold's challenger: same rows, same seed."""
    origin = backtest_origins(spec, run_date)[0]
    rows = tabular.training_rows(tabular.prepare(features, spec, run_date), spec, origin,
                                 spec.model.max_training_rows)
    return TabularModel(spec).fit(rows), origin


def test_a_worse_champion_is_beaten(features, one_fold, run_date):
    noise = make_panel(signal=0.0, seed=5)
    origin = backtest_origins(one_fold, run_date)[0]
    weak = TabularModel(one_fold).fit(tabular.training_rows(noise, one_fold, origin, None))
    m = train_and_backtest(features, one_fold, run_date, champion=Champion("v1", weak, origin)).metrics
    c = m["champion"]
    assert c["error"] is None and c["beats_champion"] is True
    assert c["improvement"] > c["margin"] == 0.02
    assert c["n_eval_rows"] == m["n_eval_rows"]
    assert c["version"] == "v1" and c["trained_to"] == origin.date().isoformat()
    assert c["challenger"]["log_loss"] == pytest.approx(m["model"]["log_loss"])
    json.dumps(m, allow_nan=False)


def test_an_identical_champion_is_not_beaten_when_a_margin_is_required(features, one_fold, run_date):
    twin, origin = _fold_twin(features, one_fold, run_date)
    c = train_and_backtest(features, one_fold, run_date, champion=Champion("v2", twin, origin)).metrics["champion"]
    assert c["error"] is None
    assert c["improvement"] == pytest.approx(0.0, abs=1e-12)
    assert c["beats_champion"] is False


def test_champion_is_compared_only_on_labels_it_never_saw(features, one_fold, run_date):
    twin, origin = _fold_twin(features, one_fold, run_date)
    trained_to = origin + 100 * DAY  # labels of rows observed up to origin + 10 days were known then
    m = train_and_backtest(features, one_fold, run_date, champion=Champion("v3", twin, trained_to)).metrics
    time = features["snapshot_date"]
    expected = ((time > origin + 10 * DAY) & (time <= origin + one_fold.backtest.fold_step * DAY)).sum()
    assert m["champion"]["n_eval_rows"] == expected < m["n_eval_rows"]


@pytest.mark.parametrize("problem", ["too_recent", "not_a_date", "wrong_kind", "missing_feature"])
def test_champion_problems_are_reported_never_raised(features, one_fold, run_date, problem):
    twin, origin = _fold_twin(features, one_fold, run_date)
    champion = {
        "too_recent": Champion("v4", twin, run_date),
        "not_a_date": Champion("v4", twin, "someday"),
        "wrong_kind": Champion("v4", BaselineModel(make_spec("regression")), origin),
        "missing_feature": Champion("v4", _with_extra_feature(twin), origin),
    }[problem]
    c = train_and_backtest(features, one_fold, run_date, champion=champion).metrics["champion"]
    assert c["beats_champion"] is False
    assert isinstance(c["error"], str) and c["error"]
    assert c["improvement"] is None


def _with_extra_feature(model):
    clone = TabularModel.from_bytes(model.to_bytes())
    clone.numeric = [*clone.numeric, "bureau_score"]
    clone.feature_names = [*clone.feature_names, "bureau_score"]
    return clone


# ------------------------------------------------------------------------------------------- scoring


def test_scoring_returns_each_active_entity_once_in_key_order(result, features, spec, run_date):
    chunks = list(score_chunks(result.model, features, spec, run_date, chunk_rows=150))
    assert all(len(c) <= 150 for c in chunks)
    out = _scores(chunks)
    window = features.loc[features["snapshot_date"] > run_date - 31 * DAY]
    assert list(out.columns) == ["customer_id", "observation_date", "probability", "risk_band"]
    assert len(out) == window["customer_id"].nunique()
    assert out["customer_id"].is_monotonic_increasing and out["customer_id"].is_unique
    latest = window.groupby("customer_id")["snapshot_date"].max().dt.date
    assert (out.set_index("customer_id")["observation_date"] == latest).all()
    assert set(out["risk_band"]) <= {"low", "medium", "high"}
    high = out["probability"] >= 0.2
    assert (out.loc[high, "risk_band"] == "high").all() and (out.loc[~high, "risk_band"] != "high").all()


def test_scoring_respects_run_date(result, features, spec, run_date):
    earlier = run_date - 45 * DAY
    out = _scores(score_chunks(result.model, features, spec, earlier, chunk_rows=1000))
    assert out["observation_date"].max() <= earlier.date()
    expected = _scores(score_chunks(result.model, features.loc[features["snapshot_date"] <= earlier], spec,
                                    earlier, chunk_rows=1000))
    pd.testing.assert_frame_equal(out, expected)


def test_scoring_with_no_recent_rows_raises(result, features, spec):
    with pytest.raises(DataQualityError, match="no entity has a feature row"):
        next(score_chunks(result.model, features, spec, pd.Timestamp("2022-06-01"), chunk_rows=100))


# ---------------------------------------------------------------------------------------- regression


def test_regression_trains_and_reports_errors_against_ridge(panel, run_date):
    spec = make_spec("regression")
    result = train_and_backtest(as_of(panel, run_date), spec, run_date)
    m = result.metrics
    json.dumps(m, allow_nan=False)
    assert m["metric"] == "mae" and m["higher_is_better"] is False
    assert set(m["model"]) == set(m["baseline"]) == {"mae", "rmse", "wape", "bias", "n"}
    assert m["beats_baseline"] is True and m["model"]["mae"] < m["baseline"]["mae"]
    out = _scores(score_chunks(result.model, as_of(panel, run_date), spec, run_date, chunk_rows=1000))
    assert list(out.columns) == ["customer_id", "observation_date", "prediction"]
    assert np.isfinite(out["prediction"]).all()
