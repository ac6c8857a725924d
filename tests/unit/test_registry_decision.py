"""Promotion gate and version identity (pure functions, no storage)."""

from __future__ import annotations

from datetime import date

from mlplatform.registry import decide, version_id

CHAMPION = {"version": "v20250531-abc", "training_window": {"end": "2025-05-31"}}


def _metrics(model: float, base: float, min_improvement: float = 0.05, champion: dict | None = None,
             metric: str = "wape") -> dict:
    improvement = 1 - model / base
    return {"metric": metric, "model": {metric: model}, "baseline": {metric: base}, "improvement": improvement,
            "min_improvement": min_improvement, "beats_baseline": improvement >= min_improvement,
            "champion": champion}


def _versus(challenger: float, champion: float, margin: float = 0.02, version: str = CHAMPION["version"],
            error: str | None = None) -> dict:
    improvement = None if error else 1 - challenger / champion
    return {"version": version, "metric": "wape", "n_eval_rows": 480, "challenger": {"wape": challenger},
            "champion": {"wape": champion}, "improvement": improvement, "margin": margin,
            "beats_champion": bool(improvement is not None and improvement >= margin), "error": error}


def test_a_model_that_does_not_beat_the_baseline_is_not_promoted_and_the_reason_has_the_numbers():
    d = decide(_metrics(0.50, 0.51), champion=None)
    assert not d.eligible and not d.promoted
    assert "0.5000" in d.reason and "baseline 0.5100" in d.reason and "required 5.0%" in d.reason
    assert d.checks["baseline"]["passed"] is False


def test_first_model_beating_the_baseline_becomes_champion():
    d = decide(_metrics(0.30, 0.50), champion=None)
    assert d.eligible and d.promoted and d.reason.startswith("promoted")
    assert d.checks["champion"] == {"passed": True, "detail": "no champion yet"}


def test_a_challenger_worse_than_the_champion_is_refused_even_if_it_beats_the_baseline():
    d = decide(_metrics(0.40, 0.50, champion=_versus(0.40, 0.35)), champion=CHAMPION)
    assert d.eligible and not d.promoted
    assert "does not beat champion v20250531-abc" in d.reason and "480 shared rows" in d.reason


def test_a_challenger_within_the_champion_margin_is_refused():
    d = decide(_metrics(0.40, 0.50, champion=_versus(0.395, 0.40, margin=0.02)), champion=CHAMPION)
    assert not d.promoted and "required 2.0%" in d.reason


def test_a_challenger_beating_baseline_and_champion_by_their_margins_is_promoted():
    d = decide(_metrics(0.30, 0.50, champion=_versus(0.30, 0.40)), champion=CHAMPION)
    assert d.promoted and "champion v20250531-abc by 25.0%" in d.reason


def test_too_few_shared_rows_are_too_little_evidence_to_replace_the_champion():
    m = _metrics(0.30, 0.50, champion={**_versus(0.30, 0.40), "n_eval_rows": 12})
    d = decide(m, champion=CHAMPION, champion_min_rows=100)
    assert d.eligible and not d.promoted and "only 12 backtest rows" in d.reason


def test_the_size_derived_minimum_lets_a_small_use_case_replace_its_champion_and_is_reported():
    """1 series x horizon 28 x 3 folds: at most 84 shared rows, so a fixed 100 refused every retrain."""
    from forecast_fixtures import make_spec

    spec = make_spec({"forecast": {"horizon": 28}})
    m = _metrics(0.30, 0.50, champion={**_versus(0.30, 0.40), "n_eval_rows": 28})
    assert not decide(m, champion=CHAMPION, champion_min_rows=100).promoted
    d = decide(m, CHAMPION, *spec.champion_min_rows_for(1))
    assert d.promoted
    check = d.checks["champion"]
    assert check["min_rows"] == 7 and "3 folds x horizon 28 x 1 series / 12" in check["min_rows_rule"]
    few = decide({**m, "champion": {**m["champion"], "n_eval_rows": 5}}, CHAMPION, *spec.champion_min_rows_for(1))
    assert not few.promoted and "only 5 backtest rows" in few.reason and "(< 7, backtest.champion_min_rows auto" in few.reason


def test_no_comparison_on_a_shared_window_means_no_promotion():
    cmp = _versus(0.3, 0.4, error="the champion was trained on data after every backtest target")
    d = decide(_metrics(0.30, 0.50, champion=cmp), champion=CHAMPION)
    assert not d.promoted and "after every backtest target" in d.reason


def test_a_comparison_against_another_version_than_the_serving_champion_does_not_count():
    d = decide(_metrics(0.30, 0.50, champion=_versus(0.3, 0.4, version="v-other")), champion=CHAMPION)
    assert not d.promoted and "did not compare against the current champion" in d.reason


def test_higher_is_better_metrics_use_their_own_direction():
    m = _metrics(0.80, 0.75, metric="roc_auc")
    m.update(improvement=0.80 / 0.75 - 1, beats_baseline=True, min_improvement=0.02)
    assert decide(m, champion=None).promoted


def test_version_id_is_content_derived_and_sortable():
    a = version_id(date(2025, 6, 30), "data", "spec", "code")
    assert a == version_id(date(2025, 6, 30), "data", "spec", "code")
    assert a.startswith("v20250630-") and len(a) == len("v20250630-") + 10
    assert a != version_id(date(2025, 6, 30), "data2", "spec", "code")
    assert a != version_id(date(2025, 6, 30), "data", "spec", "code2")
