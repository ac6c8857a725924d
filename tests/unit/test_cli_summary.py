"""`mlplatform summary` shows the governance state of a run: freshness (and a stale flag) and the approval."""

from __future__ import annotations

from mlplatform.cli import format_summary

BASE = {
    "use_case": "demand_forecast", "kind": "forecast", "run_date": "2025-06-30",
    "forecasts_uri": "s3://mlplatform/demand_forecast/forecasts/run_date=2025-06-30/", "rows": 10, "files": 1,
    "model_version": "v20250630-abc", "backtest": {"metric": "wape", "model": {"wape": 0.4}, "baseline": {"wape": 0.6}},
    "validation": {"success": True, "result_uri": "s3://x/result.json"}, "drift": None, "retrain": None,
    "accuracy": None, "landing": None,
}


def test_summary_shows_stale_freshness_and_who_approved() -> None:
    summary = {**BASE, "stale": True,
               "freshness": {"status": "error", "sources": {"retail_sales": {"newest": "2025-06-27", "age_days": 3,
                                                                             "status": "error"}}},
               "approval": {"outcome": "approved", "to_version": "v20250630-abc",
                            "approver": {"id": "alice", "name": "alice"}, "responded_at": "2025-06-30T09:30:00+00:00"}}
    text = format_summary(summary)
    assert "freshness       error  STALE: published flagged stale  [retail_sales 3 d (error)]" in text
    assert "approval        approved v20250630-abc by alice at 2025-06-30T09:30:00+00:00" in text


def test_summary_without_governance_sections_has_no_governance_lines() -> None:
    text = format_summary({**BASE, "freshness": None, "approval": None})
    assert "freshness" not in text and "approval" not in text


def test_summary_names_the_served_candidate_and_says_first_when_it_is_a_fallback() -> None:
    fallback = {"candidate": "auto_theta", "refused_version": "v20250630-abc",
                "reason": "fallback: auto_theta serves, flagged, while no version has cleared the gate"}
    text = format_summary({**BASE, "model": "auto_theta", "fallback": fallback})
    lines = text.splitlines()
    assert lines[2] == "model version   v20250630-abc  (auto_theta)"
    assert lines[3].startswith("FALLBACK        no version has cleared the gate yet: auto_theta serves (rows flagged "
                               "is_fallback)")
    assert "FALLBACK" not in format_summary({**BASE, "model": "gbm", "fallback": None})


def test_summary_accounts_for_every_series_and_names_those_left_out() -> None:
    series = {"in_features": 6, "expected": 6, "forecast": 4, "left_out": 2, "breach": "2 of the 2 largest series left out",
              "series": [{"series_id": "r5", "reason": "stopped: last observed 2024-06-30", "top_n": True},
                         {"series_id": "r4", "reason": "stopped: last observed 2024-06-30", "top_n": True}]}
    lines = format_summary({**BASE, "series": series}).splitlines()
    assert "series          4 of 6 forecast, 2 left out  BREACH: 2 of the 2 largest series left out" in lines
    assert "  left out      series_id=r5: stopped: last observed 2024-06-30 (top series)" in lines
    assert not any(line.startswith("series") for line in format_summary(BASE).splitlines())
