"""Promotion rule and version identity (pure functions, no storage)."""

from __future__ import annotations

from datetime import date

from mlplatform.registry import decide, version_id


def _metrics(model_wape: float, base_wape: float, min_improvement: float = 0.05) -> dict:
    improvement = 1 - model_wape / base_wape
    return {"model": {"wape": model_wape}, "baseline": {"wape": base_wape}, "improvement": improvement,
            "min_improvement": min_improvement, "beats_baseline": improvement >= min_improvement}


def test_a_model_that_does_not_beat_the_baseline_is_not_promoted():
    d = decide(_metrics(0.50, 0.51), "2025-06-30", champion=None)
    assert not d.eligible and not d.promoted
    assert "0.5000" in d.reason and "seasonal-naive 0.5100" in d.reason


def test_first_model_beating_the_baseline_becomes_champion():
    d = decide(_metrics(0.30, 0.50), "2025-06-30", champion=None)
    assert d.eligible and d.promoted and d.reason.startswith("promoted")


def test_an_older_model_from_a_backfill_never_replaces_a_newer_champion():
    champion = {"version": "v20250630-abc", "training_window": {"end": "2025-06-30"}}
    d = decide(_metrics(0.20, 0.50), "2025-05-31", champion=champion)
    assert d.eligible and not d.promoted and "v20250630-abc" in d.reason


def test_version_id_is_content_derived_and_sortable():
    a = version_id(date(2025, 6, 30), "data", "spec", "code")
    assert a == version_id(date(2025, 6, 30), "data", "spec", "code")
    assert a.startswith("v20250630-") and len(a) == len("v20250630-") + 10
    assert a != version_id(date(2025, 6, 30), "data2", "spec", "code")
    assert a != version_id(date(2025, 6, 30), "data", "spec", "code2")
