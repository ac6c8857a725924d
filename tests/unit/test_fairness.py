"""Group fairness: fairlearn metrics on hand-computed frames, the gate both ways, small groups, unlabelled
rows, JSON safety, the registry decision, the model card, realised fairness, and the attribute never
becoming a model input."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from tabular_fixtures import as_of, last_date, make_panel, make_spec

from mlplatform import accuracy as A
from mlplatform import fairness
from mlplatform.errors import DataQualityError
from mlplatform.model_card import render
from mlplatform.registry import decide
from mlplatform.spec import FairnessSpec
from mlplatform.tabular import TabularModel, input_columns, train_and_backtest

# Group a: labels 1 1 0 0, probabilities .9 .3 .6 .1 -> selected 1 0 1 0: rate 1/2, TPR 1/2, FPR 1/2.
# Group b: labels 1 0 0 0, probabilities .8 .2 .1 .4 -> selected 1 0 0 0: rate 1/4, TPR 1,   FPR 0.
# Demographic parity difference 1/2 - 1/4 = 0.25; equalized odds difference max(|1/2 - 1|, |1/2 - 0|) = 0.5.
Y = [1, 1, 0, 0, 1, 0, 0, 0]
P = [0.9, 0.3, 0.6, 0.1, 0.8, 0.2, 0.1, 0.4]
G = ["a"] * 4 + ["b"] * 4


def _spec(**kw) -> FairnessSpec:
    return FairnessSpec(**{"sensitive_attributes": ["band"], "min_group_rows": 4, **kw})


def _report(y=Y, p=P, groups=G, **kw) -> dict:
    return fairness.group_report(y, p, pd.DataFrame({"band": groups}), _spec(**kw))


def test_group_rates_and_differences_match_hand_computed_numbers():
    r = _report()
    a, b = r["attributes"]["band"]["groups"]["a"], r["attributes"]["band"]["groups"]["b"]
    assert a == {"rows": 4, "positives": 2, "selection_rate": 0.5, "tpr": 0.5, "fpr": 0.5, "gated": True}
    assert b == {"rows": 4, "positives": 1, "selection_rate": 0.25, "tpr": 1.0, "fpr": 0.0, "gated": True}
    assert r["attributes"]["band"]["demographic_parity_difference"] == pytest.approx(0.25)
    assert r["attributes"]["band"]["equalized_odds_difference"] == pytest.approx(0.5)
    assert r["n_rows"] == 8 and r["selection_rate"] == pytest.approx(3 / 8) and r["positive_rate"] == 3 / 8


def test_a_probability_equal_to_the_threshold_counts_as_selected():
    r = _report(p=[0.5, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], threshold=0.5)
    assert r["attributes"]["band"]["groups"]["a"]["selection_rate"] == 0.25
    assert r["attributes"]["band"]["groups"]["b"]["selection_rate"] == 0.0


@pytest.mark.parametrize(("dpd", "eod", "passed", "failed"), [
    (0.3, 0.6, True, []),
    (0.2, 0.6, False, ["demographic parity difference 0.2500 > max 0.2000"]),
    (0.3, 0.4, False, ["equalized odds difference 0.5000 > max 0.4000"]),
    (None, None, True, []),  # no limits: measured and reported, never gated
])
def test_the_check_passes_within_the_limits_and_fails_past_them_with_the_numbers(dpd, eod, passed, failed):
    spec = _spec(max_demographic_parity_difference=dpd, max_equalized_odds_difference=eod)
    verdict = fairness.check(fairness.group_report(Y, P, pd.DataFrame({"band": G}), spec), spec)
    assert verdict["passed"] is passed
    assert [f.split(": ", 1)[1] for f in verdict["failures"]] == failed
    assert verdict["differences"]["band"] == {
        "demographic_parity_difference": pytest.approx(0.25), "max_demographic_parity_difference": dpd,
        "equalized_odds_difference": pytest.approx(0.5), "max_equalized_odds_difference": eod}
    assert "8 labelled rows" in verdict["detail"]
    if failed:
        assert all(f in verdict["detail"] for f in failed)


def test_small_groups_are_reported_but_left_out_of_the_differences():
    # Group c (2 rows, everyone selected) would make the parity difference 0.75 if it were gated.
    r = _report(y=[*Y, 0, 1], p=[*P, 0.9, 0.9], groups=[*G, "c", "c"])
    band = r["attributes"]["band"]
    assert band["groups"]["c"] == {"rows": 2, "positives": 1, "selection_rate": 1.0, "tpr": 1.0, "fpr": 1.0,
                                   "gated": False}
    assert band["small_groups"] == ["c"] and band["gated_groups"] == ["a", "b"]
    assert band["demographic_parity_difference"] == pytest.approx(0.25)
    assert band["equalized_odds_difference"] == pytest.approx(0.5)


def test_with_fewer_than_two_large_groups_nothing_is_gated_and_the_check_says_so():
    r = _report(min_group_rows=5)
    assert r["attributes"]["band"]["demographic_parity_difference"] is None
    verdict = fairness.check(r, _spec(min_group_rows=5))
    assert verdict["passed"] and "not measurable" in verdict["detail"] and "not gated" in verdict["detail"]


def test_a_group_without_positives_has_no_tpr_and_is_left_out_of_equalized_odds_only():
    # Group b without a default: fairlearn would call its TPR 0; it is undefined.
    r = _report(y=[1, 1, 0, 0, 0, 0, 0, 0])
    band = r["attributes"]["band"]
    assert band["groups"]["b"]["tpr"] is None and band["groups"]["b"]["fpr"] == 0.25
    assert band["demographic_parity_difference"] == pytest.approx(0.25)
    assert band["equalized_odds_difference"] is None  # a is the only group with both outcomes


def test_unlabelled_rows_are_excluded_and_counted():
    r = _report(y=[*Y, np.nan, np.nan], p=[*P, 0.9, 0.9], groups=[*G, "b", "b"])
    assert r["n_rows"] == 8 and r["n_unlabelled"] == 2
    assert r["attributes"] == _report()["attributes"]


def test_a_missing_attribute_value_is_its_own_group():
    r = _report(groups=["a"] * 4 + [None] * 4)
    assert set(r["attributes"]["band"]["groups"]) == {"a", fairness.MISSING_GROUP}


def test_the_report_is_strict_json_with_string_group_keys():
    spec = _spec(sensitive_attributes=["band", "code"])
    groups = pd.DataFrame({"band": G, "code": np.array([1, 1, 1, 1, 2, 2, 2, 2], dtype="int64")})
    out = fairness.assess(pd.Series(Y, dtype="float64"), np.asarray(P), groups, spec)
    assert json.loads(json.dumps(out, allow_nan=False)) == out
    assert set(out["attributes"]["code"]["groups"]) == {"1", "2"}
    assert out["check"]["passed"] is False


def test_bad_input_is_refused_naming_the_problem():
    with pytest.raises(DataQualityError, match=r"\['age'\] are not columns"):
        fairness.group_report(Y, P, pd.DataFrame({"band": G}), _spec(sensitive_attributes=["age"]))
    with pytest.raises(ValueError, match="same length"):
        fairness.group_report(Y[:-1], P, pd.DataFrame({"band": G}), _spec())
    with pytest.raises(DataQualityError, match="finite probability"):
        fairness.group_report(Y, [np.nan, *P[1:]], pd.DataFrame({"band": G}), _spec())


# ----------------------------------------------------------------------------------------- the gate


def _gate_metrics(spec: FairnessSpec) -> dict:
    return {"metric": "log_loss", "model": {"log_loss": 0.30}, "baseline": {"log_loss": 0.40},
            "improvement": 0.25, "min_improvement": 0.02, "beats_baseline": True, "champion": None,
            "fairness": fairness.assess(Y, P, pd.DataFrame({"band": G}), spec)}


def test_a_fairness_breach_blocks_promotion_and_records_the_numbers():
    d = decide(_gate_metrics(_spec(max_demographic_parity_difference=0.2, max_equalized_odds_difference=0.6)),
               champion=None)
    assert not d.promoted and not d.eligible
    assert d.reason == ("not promoted: fairness limits exceeded: band: demographic parity difference 0.2500 > "
                        "max 0.2000 (on 8 labelled rows, selected at p >= 0.5)")
    assert d.checks["fairness"]["passed"] is False
    assert d.checks["fairness"]["differences"]["band"]["demographic_parity_difference"] == pytest.approx(0.25)
    assert d.checks["baseline"]["passed"] and d.checks["champion"]["passed"]


def test_within_the_limits_the_model_is_promoted_and_the_check_is_recorded():
    d = decide(_gate_metrics(_spec(max_demographic_parity_difference=0.3, max_equalized_odds_difference=0.6)),
               champion=None)
    assert d.promoted and d.checks["fairness"]["passed"] is True


def test_without_a_fairness_report_there_is_no_fairness_check_and_a_report_without_verdict_fails_closed():
    metrics = _gate_metrics(_spec())
    assert "fairness" not in decide({**metrics, "fairness": None}, champion=None).checks
    d = decide({**metrics, "fairness": {"attributes": {}}}, champion=None)
    assert not d.promoted and "no verdict" in d.reason


# --------------------------------------------------------------------------------------- model card


def _card(metrics: dict) -> str:
    spec = make_spec(overrides={"fairness": {"sensitive_attributes": ["band"]}})
    metadata = {
        "version": "v20250630-abcdef1234", "training_window": {"start": "2024-01-01", "end": "2025-06-30"},
        "n_training_rows": 1000, "model": {"estimator": "hist_gradient_boosting", "params": {}},
        "data": {"snapshot_uri": "s3://b/uc/features/run_date=2025-06-30/", "fingerprint": "f" * 64, "rows": 10},
        "dbt_manifest_hash": "d" * 64, "code": {"source_hash": "c" * 64}, "spec_fingerprint": "s" * 64,
        "feature_names": ["utilisation"], "metrics": metrics, "decision": {"reason": "not promoted: ..."}}
    return render(spec, metadata, {})


def test_the_model_card_shows_the_fairness_section_when_measured():
    card = _card(_gate_metrics(_spec(max_demographic_parity_difference=0.2)))
    for fact in ("## Fairness", "### band", "| a | 4 | 2 | 0.500 | 0.500 | 0.500 | yes |",
                 "| b | 4 | 1 | 0.250 | 1.000 | 0.000 | yes |",
                 "- Demographic parity difference: 0.250 (max 0.200): FAIL",
                 "- Equalized odds difference: 0.500 (max 0.100): FAIL", "**Fairness check: FAILED**",
                 "measurement only, not model inputs"):
        assert fact in card, fact
    assert "## Fairness" not in _card({k: v for k, v in _gate_metrics(_spec()).items() if k != "fairness"})


# ------------------------------------------------------------------------------------- realised outcomes


def _realised_spec():
    return make_spec(overrides={"fairness": {"sensitive_attributes": ["band"], "min_group_rows": 1}})


def test_realised_fairness_joins_the_attribute_from_the_snapshot_and_counts_each_review_once():
    spec = _realised_spec()
    days = pd.to_datetime(["2025-01-10", "2025-01-12", "2025-01-15", "2025-01-15"])
    features = pd.DataFrame({"customer_id": ["C1", "C2", "C3", "C4"], "snapshot_date": days,
                             "band": ["young", "old", "old", "young"], "defaulted_90d": [1.0, 0.0, 1.0, 0.0]})
    published = pd.DataFrame({"customer_id": ["C1", "C2", "C3", "C4"], "observation_date": days.date,
                              "probability": [0.9, 0.1, 0.2, 0.8], "risk_band": ["high"] * 4,
                              "model_version": "v2"})
    known = A.actuals(features, spec)
    rows = pd.concat([  # an older publication of the same reviews, with other scores: superseded
        A.join_actuals(published.assign(probability=0.0, model_version="v1"), known, spec)
        .assign(**{A.PUBLISHED_RUN_DATE: "2025-01-16"}),
        A.join_actuals(published, known, spec).assign(**{A.PUBLISHED_RUN_DATE: "2025-01-20"})])
    out = A.realised_fairness(rows, features, spec)
    band = out["attributes"]["band"]["groups"]
    assert out["n_rows"] == 4 and out["model_versions"] == ["v2"]
    assert band["young"] == {"rows": 2, "positives": 1, "selection_rate": 1.0, "tpr": 1.0, "fpr": 1.0, "gated": True}
    assert band["old"] == {"rows": 2, "positives": 1, "selection_rate": 0.0, "tpr": 0.0, "fpr": 0.0, "gated": True}
    assert out["attributes"]["band"]["demographic_parity_difference"] == pytest.approx(1.0)
    assert out["check"]["passed"] is False and "band" not in published.columns
    assert json.loads(json.dumps(out, allow_nan=False)) == out


def test_realised_fairness_is_absent_without_sensitive_attributes_and_empty_without_rows():
    features = pd.DataFrame({"customer_id": ["C1"], "snapshot_date": pd.to_datetime(["2025-01-10"]),
                             "band": ["young"]})
    assert A.realised_fairness(pd.DataFrame(), features, make_spec()) is None
    empty = A.realised_fairness(pd.DataFrame(), features, _realised_spec())
    assert empty["n_rows"] == 0 and empty["check"]["passed"] and empty["model_versions"] == []
    with pytest.raises(DataQualityError, match=r"\['band'\] are not columns of the features snapshot"):
        A.realised_fairness(pd.DataFrame(), features.drop(columns="band"), _realised_spec())


# ------------------------------------------------------------------------------- training (tabular)


@pytest.fixture(scope="module")
def panel_with_band() -> tuple[pd.DataFrame, pd.Timestamp]:
    panel = make_panel(n_customers=200, n_periods=24, seed=3)
    bands = {c: ("young" if i % 3 == 0 else "older") for i, c in enumerate(sorted(panel["customer_id"].unique()))}
    panel = panel.assign(band=panel["customer_id"].map(bands))
    run_date = last_date(panel)
    return as_of(panel, run_date), run_date


@pytest.fixture(scope="module")
def single_thread():
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        yield


def test_training_measures_fairness_on_the_backtest_rows_without_using_the_attribute(panel_with_band, single_thread):
    features, run_date = panel_with_band
    fast = {"backtest": {"folds": 1}}
    plain = make_spec(overrides=fast)
    spec = make_spec(overrides={**fast, "fairness": {"sensitive_attributes": ["band"], "min_group_rows": 20}})
    assert "band" in input_columns(spec) and "band" not in TabularModel(spec).feature_names
    with_fairness = train_and_backtest(features, spec, run_date)
    without = train_and_backtest(features.drop(columns="band"), plain, run_date)
    fair = with_fairness.metrics["fairness"]
    assert fair["n_rows"] == with_fairness.metrics["n_eval_rows"] and set(fair["attributes"]["band"]["groups"]) == {
        "young", "older"}
    assert set(fair["check"]) >= {"passed", "detail", "differences"}
    json.dumps(with_fairness.metrics, allow_nan=False)
    # Same backtest scores and the same final model as without the attribute: it is not an input.
    assert with_fairness.metrics["model"] == without.metrics["model"] and "fairness" not in without.metrics
    assert "band" not in with_fairness.feature_names and "band" not in with_fairness.reference.columns
    scored = with_fairness.model.predict(features)["probability"]
    shuffled = features.assign(band=features["band"].sample(frac=1.0, random_state=0).to_numpy())
    pd.testing.assert_series_equal(with_fairness.model.predict(shuffled)["probability"], scored)
    with pytest.raises(DataQualityError, match="band"):
        train_and_backtest(features.drop(columns="band"), spec, run_date)


def test_with_use_as_features_the_attribute_is_a_model_input():
    spec = make_spec(overrides={"features": {"categorical": ["segment", "region", "band"]},
                                "fairness": {"sensitive_attributes": ["band"], "use_as_features": True}})
    assert "band" in TabularModel(spec).feature_names
