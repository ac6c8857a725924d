"""Calendars: the schedule a use case's frequency implies, period ends, and public holidays.

Three things every stage must agree on, kept in one small module with no heavy import at module level
(the DAG parser imports it through the spec):

* **Schedules.** A weekly, monthly or quarterly use case runs once per period, on the day after the
  period ends plus the spec's ``publication_lag_days`` (the days its source needs to publish a complete
  period), as a cron at 00:00 UTC. Daily use cases keep ``@daily``.
* **Period ends.** A run date need not be a period end: a monthly use case may run on the 14th. Only
  periods that ended on or before the run date are complete, so readiness, freshness and the history
  check all look for data up to :func:`latest_period_end` of the run date (the same rule as
  ``forecasting.Periods.origin``, which training and scoring use; a test keeps them equal).
* **Holidays.** The ``holidays`` package (offline, any year, many countries and subdivisions) is the
  one source of holiday dates: the land stage writes them to ``raw.holidays`` for dbt, and the
  synthetic generators lift demand on exactly the same dates (:func:`holiday_dates`).
"""

from __future__ import annotations

import calendar as _calendar
import difflib
from datetime import date, timedelta
from functools import lru_cache

DAILY_SCHEDULE = "@daily"
# ISO weekday (Monday = 0) of the day a week ends on when nothing else says (ISO weeks end on Sunday);
# the same default as forecasting.DEFAULT_WEEK_END.
DEFAULT_WEEK_END = 6
# Largest publication lag whose derived schedule is one cron and still runs before the next period ends:
# a week's run must fall on Monday..Saturday, a month's on day 1..27 (day 28 is February's last day).
MAX_PUBLICATION_LAG_DAYS = {"daily": 0, "weekly": 5, "monthly": 26, "quarterly": 26}
_QUARTER_START_MONTHS = "1,4,7,10"


# ----------------------------------------------------------------------------------------- schedules


def publication_lag_problem(frequency: str, lag_days: int) -> str | None:
    """Why ``lag_days`` cannot shape the derived schedule of ``frequency`` (None when it can)."""
    limit = MAX_PUBLICATION_LAG_DAYS[frequency]
    if lag_days <= limit:
        return None
    if frequency == "daily":
        return ("applies to weekly, monthly and quarterly use cases only (a daily use case runs every day "
                "on the data up to its date); remove it, or set 'schedule' (e.g. '0 6 * * *') to run later")
    return (f"{lag_days} is more than {limit}, the longest lag a {frequency} run can wait and still run before "
            f"the next period ends; for a longer lag set 'schedule' explicitly (e.g. '0 0 15 2,5,8,11 *' for "
            "quarterly data published 45 days after the quarter): every run uses the latest complete period "
            "as of its date, whatever the day")


def derived_schedule(frequency: str, publication_lag_days: int = 0) -> str:
    """The cron a use case of ``frequency`` runs on when its spec sets no ``schedule``.

    weekly: the day after the (ISO, Sunday) week end plus the lag (lag 0: Mondays); monthly: day
    1 + lag of every month; quarterly: day 1 + lag of January, April, July and October. 00:00 UTC, so
    the run's logical date is that day and its forecast origin the period that just ended.
    """
    problem = publication_lag_problem(frequency, publication_lag_days)
    if problem:
        raise ValueError(f"publication_lag_days: {problem}")
    day = 1 + publication_lag_days
    if frequency == "daily":
        return DAILY_SCHEDULE
    if frequency == "weekly":
        return f"0 0 * * {day}"  # cron weekdays: 0 = Sunday, so day 1 + lag is Monday + lag
    if frequency == "monthly":
        return f"0 0 {day} * *"
    if frequency == "quarterly":
        return f"0 0 {day} {_QUARTER_START_MONTHS} *"
    raise ValueError(f"unknown frequency {frequency!r}")


def describe_schedule(frequency: str, publication_lag_days: int, schedule: str | None) -> str:
    """One line for the DAG's docs: the schedule and where it came from."""
    if schedule is None:
        return "none (`schedule: null` in the spec: runs only when triggered)"
    if frequency == "daily" or schedule != derived_schedule(frequency, publication_lag_days):
        origin = "the default of daily use cases" if schedule == DAILY_SCHEDULE else "set in the spec"
        return f"`{schedule}` ({origin})"
    period = {"weekly": "each (Sunday) week end", "monthly": "each month end", "quarterly": "each quarter end"}
    return (f"`{schedule}` (derived from frequency {frequency}: the day after {period[frequency]} plus "
            f"publication_lag_days {publication_lag_days}, 00:00 UTC)")


# --------------------------------------------------------------------------------------- period ends


def _month_end(year: int, month: int) -> date:
    return date(year, month, _calendar.monthrange(year, month)[1])


def latest_period_end(day: date, frequency: str, week_end: int = DEFAULT_WEEK_END) -> date:
    """The last day of the latest period that ended on or before ``day`` (daily: ``day`` itself).

    weekly: the latest ``week_end`` weekday (Monday = 0) on or before ``day``; monthly: ``day`` if it is
    a month end, else the previous month's end; quarterly: likewise with quarter ends.
    """
    if frequency == "daily":
        return day
    if frequency == "weekly":
        return day - timedelta(days=(day.weekday() - week_end) % 7)
    if frequency not in ("monthly", "quarterly"):
        raise ValueError(f"unknown frequency {frequency!r}")
    step = 1 if frequency == "monthly" else 3
    last_month = day.month - (day.month - 1) % step + step - 1  # last month of day's period
    end = _month_end(day.year, last_month)
    if end == day:
        return day
    first = date(day.year, last_month - step + 1, 1)  # first day of day's period: the previous one ends before
    return first - timedelta(days=1)


def add_periods(period_end: date, n: int, frequency: str) -> date:
    """The period end ``n`` periods after ``period_end`` (itself a period end; n may be negative)."""
    if frequency == "daily":
        return period_end + timedelta(days=n)
    if frequency == "weekly":
        return period_end + timedelta(days=7 * n)
    months = n * (1 if frequency == "monthly" else 3)
    index = period_end.year * 12 + period_end.month - 1 + months
    return _month_end(index // 12, index % 12 + 1)


def periods_between(first_end: date, last_end: date, frequency: str) -> int:
    """Whole periods from period end ``first_end`` to period end ``last_end`` (negative if before)."""
    if frequency == "daily":
        return (last_end - first_end).days
    if frequency == "weekly":
        return (last_end - first_end).days // 7
    months = (last_end.year - first_end.year) * 12 + last_end.month - first_end.month
    return months if frequency == "monthly" else months // 3


# ------------------------------------------------------------------------------------------ holidays


def calendar_key(country: str, subdivision: str | None = None) -> str:
    """How ``raw.holidays`` names a calendar: the country code, or ``<country>-<subdivision>``."""
    return f"{country}-{subdivision}" if subdivision else country


def country_problem(country: str) -> str | None:
    """Why ``country`` is not a code of ``holidays.list_supported_countries()`` (None when it is).

    Reads the codes from the package's registry (what ``list_supported_countries`` lists) without loading
    every country's module: the spec is validated at DAG parse time, which must stay cheap.
    """
    from holidays.registry import EntityLoader

    codes = sorted(EntityLoader.get_country_codes(include_aliases=True))
    if country in codes:
        return None
    close = difflib.get_close_matches(country.upper(), codes, n=3)
    hint = f"did you mean {', '.join(repr(c) for c in close)}? " if close else ""
    return (f"{country!r} is not a country code the holidays package supports; {hint}use an ISO 3166-1 code "
            "listed by holidays.list_supported_countries(), e.g. 'US', 'GB', 'DE'")


def subdivision_problem(country: str, subdivision: str) -> str | None:
    """Why ``subdivision`` is not one of ``holidays.list_supported_countries()[country]`` (None if it is)."""
    import holidays

    known = list(getattr(holidays, country).subdivisions)
    if subdivision in known:
        return None
    if not known:
        return f"the holidays package has no subdivisions for {country!r}: remove 'subdivision' (null)"
    close = difflib.get_close_matches(subdivision, known, n=3)
    hint = f"did you mean {', '.join(repr(c) for c in close)}? " if close else ""
    return (f"{subdivision!r} is not a subdivision of {country!r} in the holidays package; {hint}"
            f"known: {', '.join(known[:40])}{' ...' if len(known) > 40 else ''}")


@lru_cache(maxsize=64)
def holidays_between(country: str, subdivision: str | None, first_year: int,
                     last_year: int) -> tuple[tuple[date, str], ...]:
    """(date, name) of every public holiday of the calendar in [first_year, last_year], sorted by date.

    One row per date (the package joins the names of coinciding holidays with '; '); names are in the
    country's default language, never the machine's locale, so every worker lands the same rows.
    """
    import holidays

    if last_year < first_year:
        return ()
    found = holidays.country_holidays(country, subdiv=subdivision, years=range(first_year, last_year + 1))
    return tuple(sorted((day, str(name)) for day, name in found.items()))


def holiday_dates(country: str, subdivision: str | None, first_year: int, last_year: int) -> frozenset[date]:
    """The holiday dates of :func:`holidays_between`: what the synthetic generators lift demand on."""
    return frozenset(day for day, _ in holidays_between(country, subdivision, first_year, last_year))
