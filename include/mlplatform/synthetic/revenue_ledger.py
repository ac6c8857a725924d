"""Deterministic synthetic revenue ledger: the raw source of the finance revenue-forecast use case.

Individual revenue postings (journal lines) per business unit, region and posting date, plus a
business-unit dimension. The daily revenue they add up to carries the structure finance data has and a
seasonal-naive forecast cannot know:

* a weekday profile per segment (B2B units post nothing at weekends, consumer units trade every day);
* a month-end spike on the last 3 business days of every month, ramping up to the last one, and a
  larger one at quarter end (sales teams close deals, invoices are raised before the books close);
* low revenue on holidays (the US calendar of the ``holidays`` package, read through
  :func:`mlplatform.datagen.load_holidays`: the rows the land stage writes to ``raw.holidays``, so dbt's
  ``is_holiday`` flags exactly the low days);
* annual seasonality and a log-linear trend whose slope changes at one or two seeded trend breaks per
  business unit (see :func:`trend_breaks`);
* an occasional negative posting (credit note), and an optional level shift from ``drift_start``
  (multiplied by ``drift_factor``) that tests use to inject drift.

Business day = Monday..Friday and not a holiday of the shared calendar; ``int_finance__fiscal_days``
in dbt uses the same definition for ``is_month_end_window``.

Like the retail generator, every value is a pure function of (seed, params, day): each day's draws come
from a numpy generator seeded with ``[seed, stream, day ordinal]`` and latent per-series parameters from
one seeded by ``seed`` only, so landing any day range in any chunking gives identical rows. numpy and
pandas are imported inside functions (this module is imported lazily, but keep it cheap anyway).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from mlplatform.datagen import DEFAULT_CHUNK_DAYS, Source, check_param_names, load_holidays

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

LEDGER_COLUMNS = ("posting_date", "entry_id", "business_unit", "region", "account", "amount", "currency")
BUSINESS_UNIT_COLUMNS = ("business_unit", "business_unit_name", "segment", "weekend_trading")
CURRENCY = "USD"
REGIONS = ("AMER", "EMEA", "APAC", "LATAM", "ANZ", "INDIA")
CREDIT_NOTE_ACCOUNT = "4900_credit_notes"
MONTH_END_WINDOW = 3  # business days

PARAMS = ("n_business_units", "n_regions", "seed", "drift_start", "drift_factor")
DEFAULTS: dict[str, Any] = {"n_business_units": 4, "n_regions": 3, "drift_start": None, "drift_factor": 1.0}

_EPOCH = date(2022, 1, 1)
# Trend breaks fall in this range whatever the landed history: they are part of the data, not of a run.
_BREAKS_FROM, _BREAKS_TO = date(2022, 7, 1), date(2025, 3, 31)
_MIN_BREAK_GAP = 180  # days between a unit's two breaks
_CREDIT_NOTE_PROB = 0.015
_MAX_POSTINGS = 20
_TICKET_SIGMA = 0.35  # log-sd of a posting's amount around the day's ticket size
_DAY_SIGMA = 0.06  # log-sd of the series-day level shock
# Month-end ramp: share of the (peak - 1) uplift on the last, second-last and third-last business day.
_RAMP = (1.0, 0.7, 0.45)

# Independent random streams: [seed, stream, ...] never collide between purposes.
_STREAM_UNITS, _STREAM_SERIES, _STREAM_DAY = range(11, 14)


@dataclass(frozen=True)
class _Segment:
    """Revenue profile shared by the business units of one segment."""

    name: str
    label: str  # display name of its business units
    week: tuple[float, float, float, float, float, float, float]  # Mon..Sun relative level
    month_end: float  # peak multiplier on the last business day of a month
    quarter_end: float  # ... of a quarter (replaces month_end)
    holiday: float  # multiplier on holidays
    postings: float  # expected postings on an ordinary weekday
    accounts: tuple[tuple[str, float], ...]  # revenue accounts and their shares


SEGMENTS = (
    _Segment("enterprise", "Enterprise Software", (1.00, 1.10, 1.10, 1.05, 0.85, 0.0, 0.0), 2.2, 3.4, 0.10, 8.0,
             (("4000_license_revenue", 0.5), ("4100_subscription_revenue", 0.3), ("4200_services_revenue", 0.2))),
    _Segment("consumer", "Consumer Devices", (0.90, 0.85, 0.90, 0.95, 1.10, 1.30, 1.10), 1.15, 1.25, 0.55, 12.0,
             (("4300_product_revenue", 0.8), ("4100_subscription_revenue", 0.2))),
    _Segment("mid_market", "SMB Cloud", (1.00, 1.05, 1.05, 1.00, 0.90, 0.12, 0.05), 1.7, 2.4, 0.25, 10.0,
             (("4100_subscription_revenue", 0.6), ("4000_license_revenue", 0.25), ("4200_services_revenue", 0.15))),
    _Segment("public_sector", "Government Services", (1.00, 1.00, 1.00, 1.00, 0.95, 0.0, 0.0), 1.5, 2.8, 0.15,
             6.0, (("4200_services_revenue", 0.7), ("4000_license_revenue", 0.3))),
)


# ------------------------------------------------------------------------------------------- params


def _check_count(name: str, value: Any, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be at most {maximum}, got {value!r}")
    return value


def _check_date(name: str, value: Any) -> date | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise ValueError(f"{name} must be an ISO date (YYYY-MM-DD), got {value!r}") from None
    if isinstance(value, date):
        return value.date() if hasattr(value, "hour") else value
    raise ValueError(f"{name} must be a date or ISO string, got {value!r}")


def check_params(params: dict[str, Any]) -> dict[str, Any]:
    """Validated generator parameters with defaults filled in; ValueError names the offending one."""
    check_param_names(params, PARAMS)
    out = {**DEFAULTS, **params}
    _check_count("n_business_units", out["n_business_units"])
    _check_count("n_regions", out["n_regions"], len(REGIONS))
    seed = out["seed"]
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    out["drift_start"] = _check_date("drift_start", out["drift_start"])
    factor = out["drift_factor"]
    if isinstance(factor, bool) or not isinstance(factor, int | float) or not factor > 0 or not math.isfinite(factor):
        raise ValueError(f"drift_factor must be a number > 0, got {factor!r}")
    out["drift_factor"] = float(factor)
    return out


# ----------------------------------------------------------------------------------- business calendar


def is_business_day(day: date, holidays: frozenset[date] | None = None) -> bool:
    """Monday..Friday and not a holiday of the shared calendar (the dbt models use the same rule)."""
    holidays = load_holidays(day.year, day.year) if holidays is None else holidays
    return day.weekday() < 5 and day not in holidays


@lru_cache(maxsize=1024)
def _month_end_days(year: int, month: int, holidays: frozenset[date]) -> dict[date, int]:
    """The last MONTH_END_WINDOW business days of a month -> business days after them (0 = last)."""
    first_next = date(year + month // 12, month % 12 + 1, 1)
    out: dict[date, int] = {}
    day = first_next - timedelta(days=1)
    while len(out) < MONTH_END_WINDOW and day.month == month:
        if is_business_day(day, holidays):
            out[day] = len(out)
        day -= timedelta(days=1)
    return out


def month_end_rank(day: date, holidays: frozenset[date] | None = None) -> int | None:
    """0/1/2 when ``day`` is the last/second-last/third-last business day of its month, else None."""
    holidays = load_holidays(day.year, day.year) if holidays is None else holidays
    return _month_end_days(day.year, day.month, holidays).get(day)


def is_quarter_end_month(day: date) -> bool:
    return day.month % 3 == 0


# ------------------------------------------------------------------------------------------ dimensions


def _segments(n_business_units: int, seed: int) -> list[_Segment]:
    """Round-robin over the segments (so every segment is present) from a seeded offset."""
    import numpy as np

    offset = int(np.random.default_rng([seed, _STREAM_UNITS]).integers(0, len(SEGMENTS)))
    return [SEGMENTS[(i + offset) % len(SEGMENTS)] for i in range(n_business_units)]


def _unit_ids(n_business_units: int) -> list[str]:
    width = max(2, len(str(n_business_units)))
    return [f"BU{i + 1:0{width}d}" for i in range(n_business_units)]


def generate_business_units(params: dict[str, Any]) -> pd.DataFrame:
    """Business-unit dimension: id, display name, segment and whether it trades at weekends."""
    import pandas as pd

    p = check_params(params)
    segs = _segments(p["n_business_units"], p["seed"])
    ids = _unit_ids(p["n_business_units"])
    names = [s.label + (f" {i // len(SEGMENTS) + 1}" if i >= len(SEGMENTS) else "") for i, s in enumerate(segs)]
    return pd.DataFrame({
        "business_unit": ids,
        "business_unit_name": names,
        "segment": [s.name for s in segs],
        "weekend_trading": [bool(s.week[5] > 0 or s.week[6] > 0) for s in segs],
    }, columns=list(BUSINESS_UNIT_COLUMNS))


# ------------------------------------------------------------------------------------- series latents


@dataclass(frozen=True)
class _Series:
    """Latent per-series parameters (arrays of length n_business_units * n_regions, unit-major)."""

    units: np.ndarray
    regions: np.ndarray
    unit_index: np.ndarray
    week: np.ndarray  # (n, 7)
    month_end: np.ndarray
    quarter_end: np.ndarray
    holiday: np.ndarray
    postings: np.ndarray
    base: np.ndarray  # expected revenue of an ordinary weekday at _EPOCH
    growth: np.ndarray  # (n, k + 1) yearly log-growth before the first break, after each break
    breaks: np.ndarray  # (n, k) break day ordinals (padded with a far-future day)
    jumps: np.ndarray  # (n, k) log level step at each break
    yearly_amp: np.ndarray
    peak_doy: np.ndarray
    account_names: tuple[str, ...]
    account_cdf: np.ndarray  # (n, n_accounts) cumulative account shares


_NO_BREAK = date(9999, 12, 31).toordinal()


@lru_cache(maxsize=8)
def _series(n_business_units: int, n_regions: int, seed: int) -> _Series:
    """Latent parameters from a generator seeded by ``seed`` only (never by dates: range-independent)."""
    import numpy as np

    segs = _segments(n_business_units, seed)
    rng = np.random.default_rng([seed, _STREAM_SERIES])
    nu, nr = n_business_units, n_regions
    # Per business unit: size, trend with 1-2 breaks, annual seasonality.
    unit_scale = rng.lognormal(np.log(60_000.0), 0.5, nu)
    n_breaks = rng.integers(1, 3, nu)
    lo, hi = _BREAKS_FROM.toordinal(), _BREAKS_TO.toordinal()
    first = lo + (rng.random(nu) * (hi - lo - _MIN_BREAK_GAP)).astype("int64")
    second = first + _MIN_BREAK_GAP + (rng.random(nu) * (hi - first - _MIN_BREAK_GAP)).astype("int64")
    breaks = np.column_stack([first, np.where(n_breaks == 2, second, _NO_BREAK)])
    growth = np.column_stack([rng.normal(0.10, 0.05, nu), rng.normal(0.02, 0.15, nu), rng.normal(0.06, 0.12, nu)])
    jumps = rng.normal(0.0, 0.06, (nu, 2))
    yearly_amp = rng.uniform(0.05, 0.20, nu)
    peak_doy = rng.uniform(0, 365, nu)
    # Per series: regional share and posting rate.
    region_share = rng.lognormal(0.0, 0.4, nu * nr)
    postings_jitter = rng.uniform(0.8, 1.2, nu * nr)

    accounts = tuple(dict.fromkeys(name for s in SEGMENTS for name, _ in s.accounts))
    shares = np.zeros((nu, len(accounts)))
    for i, s in enumerate(segs):
        for name, share in s.accounts:
            shares[i, accounts.index(name)] = share
    unit_of = np.repeat(np.arange(nu), nr)

    def per_unit(values: Any) -> np.ndarray:
        return np.asarray(values, dtype="float64")[unit_of]

    return _Series(
        units=np.asarray(_unit_ids(nu), dtype=object)[unit_of],
        regions=np.tile(np.asarray(REGIONS[:nr], dtype=object), nu),
        unit_index=unit_of,
        week=np.asarray([s.week for s in segs], dtype="float64")[unit_of],
        month_end=per_unit([s.month_end for s in segs]),
        quarter_end=per_unit([s.quarter_end for s in segs]),
        holiday=per_unit([s.holiday for s in segs]),
        postings=per_unit([s.postings for s in segs]) * postings_jitter,
        base=unit_scale[unit_of] * region_share,
        growth=growth[unit_of],
        breaks=breaks[unit_of],
        jumps=jumps[unit_of],
        yearly_amp=yearly_amp[unit_of],
        peak_doy=peak_doy[unit_of],
        account_names=accounts,
        account_cdf=np.cumsum(shares, axis=1)[unit_of],
    )


def trend_breaks(params: dict[str, Any]) -> dict[str, list[date]]:
    """The built-in trend-break dates of each business unit (one or two, seeded)."""
    p = check_params(params)
    s = _series(p["n_business_units"], p["n_regions"], p["seed"])
    out: dict[str, list[date]] = {}
    for unit, row in zip(s.units, s.breaks, strict=True):
        out.setdefault(str(unit), [date.fromordinal(int(o)) for o in row if o != _NO_BREAK])
    return out


# --------------------------------------------------------------------------------------------- ledger


def _structural_factor(day: date, s: _Series, holidays: frozenset[date]) -> np.ndarray:
    """Weekday x holiday x month/quarter-end multipliers (what drives the number of postings)."""
    factor = s.week[:, day.weekday()]
    if day in holidays:
        factor = factor * s.holiday
    rank = month_end_rank(day, holidays)
    if rank is not None:
        peak = s.quarter_end if is_quarter_end_month(day) else s.month_end
        factor = factor * (1.0 + (peak - 1.0) * _RAMP[rank])
    return factor


def _trend(day: date, s: _Series) -> np.ndarray:
    """Piecewise log-linear trend: the slope changes (and the level steps) at each break."""
    import numpy as np

    ordinal = day.toordinal()
    years = (ordinal - _EPOCH.toordinal()) / 365.25
    since = np.clip((ordinal - s.breaks) / 365.25, 0.0, None)  # years since each break (0 before it)
    log_level = s.growth[:, 0] * years
    log_level = log_level + ((s.growth[:, 1:] - s.growth[:, :-1]) * since).sum(axis=1)
    log_level = log_level + (s.jumps * (ordinal >= s.breaks)).sum(axis=1)
    return np.exp(log_level)


def _expected_revenue(day: date, s: _Series, params: dict[str, Any], holidays: frozenset[date]) -> np.ndarray:
    import numpy as np

    doy = day.timetuple().tm_yday
    seasonal = 1.0 + s.yearly_amp * np.cos(2 * math.pi * (doy - s.peak_doy) / 365.25)
    mu = s.base * _trend(day, s) * seasonal * _structural_factor(day, s, holidays)
    start = params["drift_start"]
    if start is not None and day >= start:
        mu = mu * params["drift_factor"]
    return mu


def _one_day(day: date, s: _Series, params: dict[str, Any], holidays: frozenset[date]) -> dict[str, Any]:
    """All postings of one day: a pure function of (seed, series params, day)."""
    import numpy as np

    mu = _expected_revenue(day, s, params, holidays)
    factor = _structural_factor(day, s, holidays)
    lam = np.minimum(s.postings * np.sqrt(factor), _MAX_POSTINGS)
    rng = np.random.default_rng([params["seed"], _STREAM_DAY, day.toordinal()])
    shock = rng.lognormal(-_DAY_SIGMA**2 / 2, _DAY_SIGMA, mu.size)
    counts = np.minimum(rng.poisson(lam), _MAX_POSTINGS)
    ticket = np.divide(mu * shock, lam, out=np.zeros_like(mu), where=lam > 0)
    idx = np.repeat(np.arange(mu.size), counts)
    total = idx.size
    amount = ticket[idx] * rng.lognormal(-_TICKET_SIGMA**2 / 2, _TICKET_SIGMA, total)
    credit = rng.random(total) < _CREDIT_NOTE_PROB
    amount = np.where(credit, -ticket[idx] * rng.uniform(0.2, 0.8, total), amount)
    pick = (rng.random(total)[:, None] >= s.account_cdf[idx]).sum(axis=1)
    pick = np.minimum(pick, len(s.account_names) - 1)
    accounts = np.where(credit, CREDIT_NOTE_ACCOUNT, np.asarray(s.account_names, dtype=object)[pick])
    seq = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts) + 1
    stamp = day.strftime("%Y%m%d")
    units, regions = s.units[idx], s.regions[idx]
    entry_ids = [f"JE{stamp}-{u}-{r}-{k:03d}" for u, r, k in zip(units, regions, seq, strict=True)]
    return {"entry_id": entry_ids, "business_unit": units, "region": regions, "account": accounts,
            "amount": np.round(amount, 2), "n": total}


def _empty_ledger() -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame({
        "posting_date": pd.Series([], dtype="datetime64[ns]"), "entry_id": pd.Series([], dtype=object),
        "business_unit": pd.Series([], dtype=object), "region": pd.Series([], dtype=object),
        "account": pd.Series([], dtype=object), "amount": pd.Series([], dtype="float64"),
        "currency": pd.Series([], dtype=object),
    }, columns=list(LEDGER_COLUMNS))


def _frame(days: list[date], parts: list[dict[str, Any]]) -> pd.DataFrame:
    import numpy as np
    import pandas as pd

    n = sum(p["n"] for p in parts)
    if n == 0:
        return _empty_ledger()
    dates = np.repeat(np.array(days, dtype="datetime64[D]"), [p["n"] for p in parts]).astype("datetime64[ns]")
    return pd.DataFrame({
        "posting_date": dates,
        "entry_id": np.concatenate([np.asarray(p["entry_id"], dtype=object) for p in parts]),
        "business_unit": np.concatenate([p["business_unit"] for p in parts]),
        "region": np.concatenate([p["region"] for p in parts]),
        "account": np.concatenate([p["account"] for p in parts]),
        "amount": np.concatenate([p["amount"] for p in parts]).astype("float64"),
        "currency": np.full(n, CURRENCY, dtype=object),
    }, columns=list(LEDGER_COLUMNS))


def iter_ledger(params: dict[str, Any], start: date, end: date,
                chunk_days: int = DEFAULT_CHUNK_DAYS) -> Iterator[pd.DataFrame]:
    """Ledger postings for [start, end] in frames of ``chunk_days`` days (bounded memory)."""
    p = check_params(params)
    _check_count("chunk_days", chunk_days)
    start, end = _check_date("start", start), _check_date("end", end)
    s = _series(p["n_business_units"], p["n_regions"], p["seed"])
    holidays = load_holidays(start.year, end.year)
    day = start
    while day <= end:
        days = [day + timedelta(days=i) for i in range(min(chunk_days, (end - day).days + 1))]
        yield _frame(days, [_one_day(d, s, p, holidays) for d in days])
        day = days[-1] + timedelta(days=1)


def generate_ledger(start: date, end: date, **params: Any) -> pd.DataFrame:
    """All postings for [start, end] (inclusive), sorted by date, business unit, region and entry."""
    import pandas as pd

    frames = [f for f in iter_ledger(params, start, end) if not f.empty]
    if not frames:
        return _empty_ledger()
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


# --------------------------------------------------------------------------------------------- source


def _dimensions(params: dict[str, Any]) -> dict[str, pd.DataFrame]:
    return {"business_units": generate_business_units(params)}


def _fact_chunks(params: dict[str, Any], start: date, end: date,
                 chunk_days: int) -> Iterator[dict[str, pd.DataFrame]]:
    for frame in iter_ledger(params, start, end, chunk_days):
        yield {"ledger_entries": frame}


SOURCE = Source(
    facts={"ledger_entries": "posting_date"},
    check_params=check_params,
    dimensions=_dimensions,
    fact_chunks=_fact_chunks,
    series=lambda p: p["n_business_units"] * p["n_regions"],
)
