"""Calendars: derived schedules per frequency and publication lag, period ends, holidays of any year."""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd
import pytest

from mlplatform import calendars as cal
from mlplatform.forecasting import Periods


@pytest.mark.parametrize(("frequency", "lag", "cron"), [
    ("daily", 0, "@daily"),
    ("weekly", 0, "0 0 * * 1"),      # Monday, the day after the (Sunday) week end
    ("weekly", 2, "0 0 * * 3"),      # Wednesday
    ("weekly", 5, "0 0 * * 6"),      # Saturday: the latest a week's run can wait
    ("monthly", 0, "0 0 1 * *"),     # the 1st, the day after each month end
    ("monthly", 5, "0 0 6 * *"),
    ("monthly", 26, "0 0 27 * *"),
    ("quarterly", 0, "0 0 1 1,4,7,10 *"),
    ("quarterly", 14, "0 0 15 1,4,7,10 *"),
])
def test_the_derived_schedule_runs_the_day_after_each_period_end_plus_the_lag(frequency, lag, cron):
    assert cal.derived_schedule(frequency, lag) == cron


@pytest.mark.parametrize(("frequency", "lag", "words"), [
    ("daily", 1, "weekly, monthly and quarterly use cases only"),
    ("weekly", 6, "more than 5"),
    ("monthly", 27, "more than 26"),
    ("quarterly", 45, "set 'schedule' explicitly"),
])
def test_a_lag_the_schedule_cannot_express_is_refused_with_the_way_out(frequency, lag, words):
    assert words in cal.publication_lag_problem(frequency, lag)
    with pytest.raises(ValueError, match="publication_lag_days"):
        cal.derived_schedule(frequency, lag)


def _cron_days(cron: str, first: date, last: date) -> list[date]:
    """Days in [first, last] a 00:00 cron of the derived kind fires on (day-of-month, month, weekday)."""
    _, _, dom, months, dow = cron.split()
    out = []
    day = first
    while day <= last:
        ok_dom = dom == "*" or day.day == int(dom)
        ok_month = months == "*" or day.month in {int(m) for m in months.split(",")}
        ok_dow = dow == "*" or (day.weekday() + 1) % 7 == int(dow)
        if ok_dom and ok_month and ok_dow:
            out.append(day)
        day += timedelta(days=1)
    return out


@pytest.mark.parametrize(("frequency", "lag"), [("weekly", 0), ("weekly", 5), ("monthly", 0), ("monthly", 26),
                                                ("quarterly", 0), ("quarterly", 26)])
def test_each_scheduled_run_comes_after_its_period_and_before_the_next_one_ends(frequency, lag):
    """Every run of the derived schedule has exactly the period that ended lag + 1 days earlier as its
    latest complete period: each period is forecast once, and never before its data can be there."""
    runs = _cron_days(cal.derived_schedule(frequency, lag), date(2023, 1, 1), date(2025, 12, 31))
    origins = [cal.latest_period_end(run, frequency) for run in runs]
    assert all((run - origin).days == lag + 1 for run, origin in zip(runs, origins, strict=True))
    assert len(set(origins)) == len(runs)


@pytest.mark.parametrize("frequency", ["daily", "weekly", "monthly", "quarterly"])
def test_latest_period_end_agrees_with_the_forecast_origin_training_uses(frequency):
    days = pd.date_range("2023-12-01", "2025-03-15", freq="D")
    for week_end in ([6, 5, 0] if frequency == "weekly" else [6]):
        periods = Periods(frequency, week_end)
        for day in days[::3]:
            assert cal.latest_period_end(day.date(), frequency, week_end) == periods.origin(day).date(), (day, week_end)


def test_period_arithmetic_across_month_lengths_and_years():
    assert cal.latest_period_end(date(2025, 3, 14), "monthly") == date(2025, 2, 28)
    assert cal.latest_period_end(date(2025, 3, 31), "monthly") == date(2025, 3, 31)
    assert cal.latest_period_end(date(2025, 1, 5), "quarterly") == date(2024, 12, 31)
    assert cal.add_periods(date(2024, 1, 31), 1, "monthly") == date(2024, 2, 29)
    assert cal.add_periods(date(2024, 12, 31), 2, "quarterly") == date(2025, 6, 30)
    assert cal.add_periods(date(2025, 6, 29), -2, "weekly") == date(2025, 6, 15)
    assert cal.periods_between(date(2024, 11, 30), date(2025, 2, 28), "monthly") == 3
    assert cal.periods_between(date(2024, 12, 31), date(2025, 6, 30), "quarterly") == 2
    assert cal.periods_between(date(2025, 6, 1), date(2025, 6, 14), "daily") == 13


def test_holidays_of_any_year_from_the_package_one_row_per_date():
    old = cal.holidays_between("US", None, 1995, 1996)
    assert (date(1995, 7, 4), "Independence Day") in old
    assert len({d for d, _ in old}) == len(old) and [d for d, _ in old] == sorted(d for d, _ in old)
    assert date(2024, 3, 29) in cal.holiday_dates("DE", None, 2024, 2024)  # Karfreitag
    california = cal.holiday_dates("US", "CA", 2024, 2024) - cal.holiday_dates("US", None, 2024, 2024)
    assert california  # a subdivision adds its own holidays (e.g. Cesar Chavez Day)
    assert cal.holidays_between("US", None, 2025, 2024) == ()
    assert cal.calendar_key("US", "CA") == "US-CA" and cal.calendar_key("GB") == "GB"


def test_unknown_countries_and_subdivisions_are_named_with_a_suggestion():
    assert cal.country_problem("US") is None and cal.country_problem("USA") is None
    assert "'XX' is not a country code" in cal.country_problem("XX")
    assert "did you mean 'DE'" in cal.country_problem("de")
    assert cal.subdivision_problem("US", "CA") is None
    assert "'ZZ' is not a subdivision of 'US'" in cal.subdivision_problem("US", "ZZ")


def test_source_freshness_counts_from_the_latest_period_end_for_monthly_and_quarterly():
    from forecast_fixtures import make_spec

    from mlplatform.freshness import _describe, freshness_as_of

    monthly = make_spec({"frequency": "monthly", "backtest": {"season_length": 12}})
    assert freshness_as_of(monthly, date(2025, 3, 14)) == date(2025, 2, 28)
    assert freshness_as_of(make_spec(), date(2025, 3, 14)) == date(2025, 3, 14)  # daily: the run date
    line = _describe({"table": "raw.sales", "status": "warn", "newest": "2025-01-31", "age_days": 28,
                      "warn_after_days": 5, "error_after_days": None}, date(2025, 3, 14), date(2025, 2, 28))
    assert line == ("raw.sales: newest row 2025-01-31 is 28 day(s) before the latest period end 2025-02-28 "
                    "(run date 2025-03-14) (warn after 5)")
