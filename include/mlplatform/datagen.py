"""Deterministic synthetic retail sales: the raw source of the demand-forecast use case.

Why synthetic: the platform must run end to end on a laptop and in CI without any external system,
yet the data has to look like real point-of-sale data so forecasting, validation and drift detection
are exercised meaningfully (weekly and yearly seasonality, trend, prices and promotions, holidays,
zero-sales days, censored stock-outs, over-dispersed counts).

Why "pure function of the date": the pipeline lands raw history incrementally (one run per day,
backfills, reruns). The value of every (store, sku, date) row therefore depends only on
(seed, params, store, sku, date) and never on the requested date range: every random draw comes from
a generator seeded with ``[seed, stream, day or week ordinal]`` and is vectorised over all series of
that day. Latent per-series parameters come from generators seeded by ``seed`` only.

Holidays come from :func:`mlplatform.calendars.holiday_dates` for :data:`SYNTHETIC_HOLIDAYS` (US), the
same function and calendar the land stage writes to ``raw.holidays`` for dbt, so generated demand peaks
exactly where dbt flags ``is_holiday`` (the specs of generator sources must name that calendar).

numpy and pandas are imported inside functions: this module is imported by Airflow DAG files at parse
time, which must stay cheap.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from mlplatform.errors import SpecError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from mlplatform.spec import SourceSpec

# The holiday calendar (country, subdivision) of the synthetic world: the generators lift or lower the
# day's activity on these dates, so a generator spec's `holidays:` must name it (spec.py checks).
SYNTHETIC_HOLIDAYS: tuple[str, str | None] = ("US", None)
# Years load_holidays() covers when called without a range (the generators pass the years they make).
DEFAULT_HOLIDAY_YEARS = (2000, 2040)

SALES_COLUMNS = (
    "sales_date", "store_id", "sku_id", "units_sold", "unit_price", "list_price", "on_promotion",
    "stockout_flag",
)
FAULTS = ("negative_units", "null_price", "duplicate_rows", "price_spike")
DEFAULT_CHUNK_DAYS = 90

REGIONS = ("north", "south", "east", "west", "central")
STORE_FORMATS = ("hypermarket", "supermarket", "convenience")
_FORMAT_SCALE = {"hypermarket": 2.0, "supermarket": 1.0, "convenience": 0.45}

# Weekly demand shape (Mon..Sun, mean zero): quiet early week, Friday/Saturday peak.
_WEEK_SHAPE = (-0.40, -0.45, -0.30, -0.05, 0.35, 0.75, 0.10)
_EPOCH = date(2020, 1, 1)
_ANNUAL_PRICE_INFLATION = 0.03
_MAX_STOCKOUT_DAYS = 4

# Independent random streams: [seed, stream, ...] never collide between purposes.
_STREAM_STORES, _STREAM_PRODUCTS, _STREAM_SERIES, _STREAM_DAY, _STREAM_PROMO, _STREAM_STOCKOUT = range(1, 7)


@dataclass(frozen=True)
class _Category:
    """Demand profile shared by the SKUs of one category (why: categories behave differently)."""

    name: str
    price_low: float
    price_high: float
    yearly_amp: float
    peak_doy: int
    holiday_lift: float
    weekend_amp: float


CATEGORIES = (
    _Category("beverages", 0.8, 4.5, 0.35, 196, 1.6, 0.45),
    _Category("snacks", 1.0, 5.0, 0.20, 350, 1.9, 0.40),
    _Category("dairy", 0.6, 3.5, 0.08, 15, 1.3, 0.20),
    _Category("produce", 0.5, 4.0, 0.25, 180, 1.4, 0.30),
    _Category("household", 2.0, 15.0, 0.05, 90, 1.2, 0.15),
    _Category("personal_care", 2.5, 12.0, 0.10, 330, 1.3, 0.15),
)


# --------------------------------------------------------------------------------------------- holidays


def load_holidays(first_year: int = DEFAULT_HOLIDAY_YEARS[0],
                  last_year: int = DEFAULT_HOLIDAY_YEARS[1]) -> frozenset[date]:
    """Holiday dates of the synthetic world in [first_year, last_year]: the dates dbt flags is_holiday.

    Why the shared function: the land stage writes ``calendars.holidays_between`` of the spec's calendar
    to ``raw.holidays``; reading the same dates here keeps the simulated lift where the flag is.
    """
    from mlplatform.calendars import holiday_dates

    return holiday_dates(*SYNTHETIC_HOLIDAYS, first_year, last_year)


# ------------------------------------------------------------------------------------------ dimensions


def _id_width(n: int, minimum: int) -> int:
    return max(minimum, len(str(n)))


def _check_count(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def _check_seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return seed


def generate_stores(n_stores: int, seed: int) -> pd.DataFrame:
    """Store dimension: id, region, format (drives store size) and opening date (all before 2020)."""
    import numpy as np
    import pandas as pd

    _check_count("n_stores", n_stores)
    rng = np.random.default_rng([_check_seed(seed), _STREAM_STORES])
    width = _id_width(n_stores, 3)
    regions = rng.integers(0, len(REGIONS), n_stores)
    formats = rng.choice(len(STORE_FORMATS), n_stores, p=[0.25, 0.5, 0.25])
    opened = rng.integers(0, 4000, n_stores)
    return pd.DataFrame({
        "store_id": [f"S{i + 1:0{width}d}" for i in range(n_stores)],
        "region": [REGIONS[r] for r in regions],
        "store_format": [STORE_FORMATS[f] for f in formats],
        "opened_on": [date(2008, 1, 1) + timedelta(days=int(d)) for d in opened],
    })


def generate_products(n_skus: int, seed: int) -> pd.DataFrame:
    """Product dimension: id, category (round-robin so every category is present) and list price."""
    import numpy as np
    import pandas as pd

    _check_count("n_skus", n_skus)
    rng = np.random.default_rng([_check_seed(seed), _STREAM_PRODUCTS])
    width = _id_width(n_skus, 4)
    offset = int(rng.integers(0, len(CATEGORIES)))
    cats = [CATEGORIES[(i + offset) % len(CATEGORIES)] for i in range(n_skus)]
    u = rng.random(n_skus)
    prices = [round(c.price_low + (c.price_high - c.price_low) * x, 2) for c, x in zip(cats, u, strict=True)]
    return pd.DataFrame({
        "sku_id": [f"SKU{i + 1:0{width}d}" for i in range(n_skus)],
        "category": [c.name for c in cats],
        "list_price": np.asarray(prices, dtype="float64"),
    })


# ------------------------------------------------------------------------------------- series latents


@dataclass(frozen=True)
class _Series:
    """Latent per-series parameters (arrays of length n_stores * n_skus, store-major)."""

    store_ids: np.ndarray
    sku_ids: np.ndarray
    list_price: np.ndarray
    base: np.ndarray
    trend: np.ndarray
    yearly_amp: np.ndarray
    peak_doy: np.ndarray
    weekly_amp: np.ndarray
    holiday_lift: np.ndarray
    elasticity: np.ndarray
    dispersion: np.ndarray
    promo_prob: np.ndarray
    zero_prob: np.ndarray
    stockout_prob: np.ndarray


@lru_cache(maxsize=8)
def _series(n_stores: int, n_skus: int, seed: int) -> _Series:
    """Latent parameters from a generator seeded by ``seed`` only (never by dates: range-independent)."""
    import numpy as np

    stores, products = generate_stores(n_stores, seed), generate_products(n_skus, seed)
    cats = {c.name: c for c in CATEGORIES}
    cat = [cats[name] for name in products["category"]]
    rng = np.random.default_rng([seed, _STREAM_SERIES])
    n = n_stores * n_skus

    def per_sku(values: list[float]) -> np.ndarray:
        return np.tile(np.asarray(values, dtype="float64"), n_stores)

    store_scale = np.array([_FORMAT_SCALE[f] for f in stores["store_format"]]) * rng.lognormal(0, 0.25, n_stores)
    popularity = rng.lognormal(np.log(4.0), 0.9, n_skus) * (products["list_price"].to_numpy() / 3.0) ** -0.4
    return _Series(
        store_ids=np.repeat(stores["store_id"].to_numpy(dtype=object), n_skus),
        sku_ids=np.tile(products["sku_id"].to_numpy(dtype=object), n_stores),
        list_price=per_sku(list(products["list_price"])),
        base=np.repeat(store_scale, n_skus) * np.tile(popularity, n_stores) * rng.lognormal(0, 0.3, n),
        trend=rng.normal(0.03, 0.08, n),
        yearly_amp=per_sku([c.yearly_amp for c in cat]) * rng.uniform(0.7, 1.3, n),
        peak_doy=per_sku([c.peak_doy for c in cat]) + rng.normal(0, 15, n),
        weekly_amp=per_sku([c.weekend_amp for c in cat]) * rng.uniform(0.6, 1.4, n),
        holiday_lift=per_sku([c.holiday_lift for c in cat]) * rng.uniform(0.9, 1.1, n),
        elasticity=rng.uniform(1.2, 3.0, n),
        dispersion=rng.uniform(2.0, 15.0, n),
        promo_prob=rng.uniform(0.03, 0.15, n),
        zero_prob=rng.uniform(0.0, 0.08, n),
        stockout_prob=rng.uniform(0.003, 0.02, n),
    )


# ---------------------------------------------------------------------------------------------- sales


@dataclass(frozen=True)
class _Drift:
    """From ``start`` on, demand is multiplied by ``factor``, prices by sqrt(factor), promotions get likelier."""

    start: date | None
    factor: float

    def active(self, day: date) -> bool:
        return self.start is not None and day >= self.start and self.factor != 1.0


def _promotions(seed: int, day: date, s: _Series, drift: _Drift) -> tuple[np.ndarray, np.ndarray]:
    """Promotions run Monday..Sunday: drawn once per ISO-style week (seeded by the week, not the range)."""
    import numpy as np

    week = (day.toordinal() - 1) // 7  # ordinal 1 (0001-01-01) is a Monday
    rng = np.random.default_rng([seed, _STREAM_PROMO, week])
    draw, depth = rng.random(s.base.size), 0.05 * rng.integers(2, 9, s.base.size)
    prob = np.minimum(s.promo_prob * (drift.factor if drift.active(day) else 1.0), 0.9)
    on = draw < prob
    return on, np.where(on, depth, 0.0)


def _stockouts(seed: int, day: date, s: _Series) -> np.ndarray:
    """Stock-out episodes of 1..4 days: today is out if an episode started on one of the last 4 days."""
    import numpy as np

    out = np.zeros(s.base.size, dtype=bool)
    for k in range(_MAX_STOCKOUT_DAYS):
        rng = np.random.default_rng([seed, _STREAM_STOCKOUT, day.toordinal() - k])
        start, duration = rng.random(s.base.size) < s.stockout_prob, rng.integers(1, _MAX_STOCKOUT_DAYS + 1, s.base.size)
        out |= start & (duration > k)
    return out


def _expected_demand(day: date, s: _Series, rel_price: np.ndarray, drift: _Drift, holidays: frozenset[date]) -> np.ndarray:
    """Mean demand: level x trend x yearly x weekly x holiday x price response x drift."""
    import numpy as np

    years = (day - _EPOCH).days / 365.25
    doy = day.timetuple().tm_yday
    mu = s.base * (1.0 + s.trend) ** years
    mu = mu * (1.0 + s.yearly_amp * np.cos(2 * math.pi * (doy - s.peak_doy) / 365.25))
    mu = mu * (1.0 + s.weekly_amp * _WEEK_SHAPE[day.weekday()])
    if day in holidays:
        mu = mu * s.holiday_lift
    mu = mu * rel_price ** (-s.elasticity)
    return mu * drift.factor if drift.active(day) else mu


def _one_day(seed: int, day: date, s: _Series, drift: _Drift, holidays: frozenset[date]) -> dict[str, np.ndarray]:
    """All series for one day: a pure function of (seed, series params, day)."""
    import numpy as np

    on_promo, depth = _promotions(seed, day, s, drift)
    price_mult = (1 + _ANNUAL_PRICE_INFLATION) ** (day.year - _EPOCH.year)
    if drift.active(day):
        price_mult *= math.sqrt(drift.factor)
    list_price = np.round(s.list_price * price_mult, 2)
    unit_price = np.round(list_price * (1.0 - depth), 2)
    mu = _expected_demand(day, s, unit_price / list_price, drift, holidays)
    rng = np.random.default_rng([seed, _STREAM_DAY, day.toordinal()])
    demand = rng.poisson(mu * rng.gamma(s.dispersion, 1.0 / s.dispersion))
    demand[rng.random(s.base.size) < s.zero_prob] = 0
    available_share = rng.uniform(0.0, 0.5, s.base.size)
    stockout = _stockouts(seed, day, s)
    units = np.where(stockout, rng.binomial(demand, available_share), demand)
    return {"units_sold": units.astype("int64"), "unit_price": unit_price, "list_price": list_price,
            "on_promotion": on_promo, "stockout_flag": stockout}


def _as_date(value: date | str | None, name: str) -> date | None:
    if value is None or (isinstance(value, date) and not hasattr(value, "hour")):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise ValueError(f"{name} must be an ISO date (YYYY-MM-DD), got {value!r}") from None
    if hasattr(value, "date"):
        return value.date()
    raise ValueError(f"{name} must be a date or ISO string, got {value!r}")


def _empty_sales() -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame({
        "sales_date": pd.Series([], dtype="datetime64[ns]"), "store_id": pd.Series([], dtype=object),
        "sku_id": pd.Series([], dtype=object), "units_sold": pd.Series([], dtype="int64"),
        "unit_price": pd.Series([], dtype="float64"), "list_price": pd.Series([], dtype="float64"),
        "on_promotion": pd.Series([], dtype=bool), "stockout_flag": pd.Series([], dtype=bool),
    })


def _frame(days: list[date], parts: list[dict[str, np.ndarray]], s: _Series) -> pd.DataFrame:
    """Stack per-day arrays into one frame (one row per store x sku x day, sorted by date, store, sku)."""
    import numpy as np
    import pandas as pd

    n = s.base.size
    dates = np.repeat(np.array(days, dtype="datetime64[D]"), n).astype("datetime64[ns]")
    data: dict[str, Any] = {"sales_date": dates, "store_id": np.tile(s.store_ids, len(days)),
                            "sku_id": np.tile(s.sku_ids, len(days))}
    for col in SALES_COLUMNS[3:]:
        data[col] = np.concatenate([p[col] for p in parts])
    return pd.DataFrame(data, columns=list(SALES_COLUMNS))


def _check_unknown(func: str, unknown: dict[str, Any], valid: tuple[str, ...]) -> None:
    if unknown:
        raise TypeError(f"{func}() got unknown parameter(s) {sorted(unknown)}; valid parameters: {', '.join(valid)}")


_SALES_PARAMS = ("n_stores", "n_skus", "seed", "drift_start", "drift_factor")


def iter_sales(start: date, end: date, *, n_stores: int, n_skus: int, seed: int,
               drift_start: date | str | None = None, drift_factor: float = 1.0,
               chunk_days: int = DEFAULT_CHUNK_DAYS, **unknown: Any) -> Iterator[pd.DataFrame]:
    """Sales for [start, end] in chunks of ``chunk_days`` days: bounded memory for long backfills."""
    _check_unknown("iter_sales", unknown, (*_SALES_PARAMS, "chunk_days"))
    _check_count("chunk_days", chunk_days)
    start, end = _as_date(start, "start"), _as_date(end, "end")
    if drift_factor is None or not drift_factor > 0:
        raise ValueError(f"drift_factor must be > 0, got {drift_factor!r}")
    drift = _Drift(_as_date(drift_start, "drift_start"), float(drift_factor))
    s = _series(_check_count("n_stores", n_stores), _check_count("n_skus", n_skus), _check_seed(seed))
    holidays = load_holidays(start.year, end.year)
    day = start
    while day <= end:
        days = [day + timedelta(days=i) for i in range(min(chunk_days, (end - day).days + 1))]
        yield _frame(days, [_one_day(seed, d, s, drift, holidays) for d in days], s)
        day = days[-1] + timedelta(days=1)


def generate_sales(start: date, end: date, *, n_stores: int, n_skus: int, seed: int,
                   drift_start: date | str | None = None, drift_factor: float = 1.0,
                   **unknown: Any) -> pd.DataFrame:
    """All sales rows for [start, end] (inclusive); empty frame with the same columns if start > end."""
    import pandas as pd

    _check_unknown("generate_sales", unknown, _SALES_PARAMS)
    chunks = list(iter_sales(start, end, n_stores=n_stores, n_skus=n_skus, seed=seed,
                             drift_start=drift_start, drift_factor=drift_factor))
    if not chunks:
        return _empty_sales()
    return pd.concat(chunks, ignore_index=True) if len(chunks) > 1 else chunks[0]


# ---------------------------------------------------------------------------------------------- faults


def _fault_rows(n: int, rate: float, rng: np.random.Generator) -> np.ndarray:
    return rng.choice(n, size=min(n, max(1, round(rate * n))), replace=False)


def inject_faults(sales: pd.DataFrame, fault: str, rate: float, seed: int) -> pd.DataFrame:
    """A copy of ``sales`` with a share ``rate`` of rows corrupted: exercises the data-quality gates."""
    import numpy as np
    import pandas as pd

    if fault not in FAULTS:
        raise ValueError(f"unknown fault {fault!r}; valid faults: {', '.join(FAULTS)}")
    if not 0.0 < rate <= 1.0:
        raise ValueError(f"rate must be in (0, 1], got {rate!r}")
    out = sales.copy()
    if out.empty:
        return out
    rng = np.random.default_rng([_check_seed(seed), 99])
    rows = out.index[_fault_rows(len(out), rate, rng)]
    if fault == "negative_units":
        out.loc[rows, "units_sold"] = -rng.integers(1, 10, len(rows))
    elif fault == "null_price":
        out.loc[rows, "unit_price"] = np.nan
    elif fault == "price_spike":
        out.loc[rows, "unit_price"] = out.loc[rows, "unit_price"] * rng.uniform(10, 100, len(rows))
    else:
        out = pd.concat([out, out.loc[rows]], ignore_index=True)
    return out


# --------------------------------------------------------------------------------------------- sources


def check_param_names(params: dict[str, Any], valid: Iterable[str], required: Iterable[str] = ("seed",)) -> None:
    """Every generator's first check: ValueError naming unknown parameters (with the valid ones) or missing ones."""
    valid = list(valid)
    unknown = sorted(set(params) - set(valid))
    if unknown:
        raise ValueError(f"unknown parameter(s) {unknown}; valid: {', '.join(valid)}")
    missing = sorted(set(required) - set(params))
    if missing:
        raise ValueError(f"missing required parameter(s) {missing}")


def _retail_params(params: dict[str, Any]) -> dict[str, Any]:
    """Validated retail generator kwargs; ValueError names any unknown, missing or bad parameter."""
    params = dict(params)
    check_param_names(params, _SALES_PARAMS, required=("n_stores", "n_skus", "seed"))
    params["drift_start"] = _as_date(params.get("drift_start"), "drift_start")
    _series(_check_count("n_stores", params["n_stores"]), _check_count("n_skus", params["n_skus"]),
            _check_seed(params["seed"]))
    return params


def _retail_dimensions(params: dict[str, Any]) -> dict[str, pd.DataFrame]:
    return {"stores": generate_stores(params["n_stores"], params["seed"]),
            "products": generate_products(params["n_skus"], params["seed"])}


def _retail_sales_chunks(params: dict[str, Any], start: date, end: date,
                         chunk_days: int) -> Iterator[dict[str, pd.DataFrame]]:
    for frame in iter_sales(start, end, chunk_days=chunk_days, **params):
        yield {"retail_sales": frame}


@dataclass(frozen=True)
class Source:
    """A registered synthetic raw source: dimension tables plus dated fact tables, landed day by day.

    ``facts`` maps each fact table to its date column; the first is the primary one. ``fact_chunks``
    yields {table: rows} for consecutive day ranges; every value must depend only on (params, day), so
    landing a range twice or in other chunks gives the same rows (see the module docstring).
    """

    facts: dict[str, str]
    check_params: Callable[[dict[str, Any]], dict[str, Any]]
    dimensions: Callable[[dict[str, Any]], dict[str, pd.DataFrame]]
    fact_chunks: Callable[[dict[str, Any], date, date, int], Iterator[dict[str, pd.DataFrame]]]
    series: Callable[[dict[str, Any]], int] | None = None  # forecast series per checked params, if it has any

    @property
    def primary(self) -> tuple[str, str]:
        return next(iter(self.facts.items()))


# Registered sources. A string value "module:ATTRIBUTE" is imported on first use, so a source module's
# dependencies load only when that source is landed (never at DAG parse time).
SOURCES: dict[str, Source | str] = {
    "retail_sales": Source({"retail_sales": "sales_date"}, _retail_params, _retail_dimensions,
                           _retail_sales_chunks, lambda p: p["n_stores"] * p["n_skus"]),
    "revenue_ledger": "mlplatform.synthetic.revenue_ledger:SOURCE",
    "credit_customers": "mlplatform.synthetic.credit_customers:SOURCE",
}


def get_source(name: str) -> Source:
    """The registered source called ``name``; SpecError lists the known ones."""
    import importlib

    entry = SOURCES.get(name)
    if entry is None:
        raise SpecError(f"source.generator {name!r} is not registered; known: {sorted(SOURCES)}")
    if isinstance(entry, str):
        module, attr = entry.split(":")
        entry = getattr(importlib.import_module(module), attr)
    return entry


def _source(spec_source: SourceSpec) -> Source:
    if spec_source.type != "generator" or not spec_source.generator:
        raise SpecError("source: only sources of type 'generator' are generated; "
                        f"type {spec_source.type!r} is loaded by an external tool")
    return get_source(spec_source.generator)


def source_params(spec_source: SourceSpec) -> dict[str, Any]:
    """Generator kwargs from ``spec.source.params``; SpecError names any unknown or missing parameter."""
    try:
        return _source(spec_source).check_params(spec_source.params)
    except ValueError as exc:
        raise SpecError(f"source.params: {exc} (generator {spec_source.generator!r})") from None


def dimension_tables(spec_source: SourceSpec) -> dict[str, pd.DataFrame]:
    """Dimension tables (e.g. {"stores": ..., "products": ...}) for the spec's source parameters."""
    return _source(spec_source).dimensions(source_params(spec_source))


def fact_chunks(spec_source: SourceSpec, start: date, end: date,
                chunk_days: int = DEFAULT_CHUNK_DAYS) -> Iterator[dict[str, pd.DataFrame]]:
    """The fact tables for [start, end] in chunks of {table: rows} (what warehouse.land_source inserts)."""
    return _source(spec_source).fact_chunks(source_params(spec_source), start, end, chunk_days)


def source_tables(spec_source: SourceSpec, start: date, end: date) -> dict[str, pd.DataFrame]:
    """Every raw table of the source for [start, end] (e.g. {"retail_sales", "stores", "products"})."""
    import pandas as pd

    src = _source(spec_source)
    parts: dict[str, list[pd.DataFrame]] = {table: [] for table in src.facts}
    for chunk in fact_chunks(spec_source, start, end):
        for table, frame in chunk.items():
            parts[table].append(frame)
    facts = {t: pd.concat(f, ignore_index=True) if f else None for t, f in parts.items()}
    if facts.get("retail_sales") is None and "retail_sales" in facts:
        facts["retail_sales"] = _empty_sales()
    return {**{t: f for t, f in facts.items() if f is not None}, **dimension_tables(spec_source)}


def series_count(spec_source: SourceSpec) -> int | None:
    """How many forecast series a generator source yields, from its params (None if not known).

    Lets spec validation refuse, at load, a ``backtest.champion_min_rows`` the backtest can never
    supply. Never raises: bad params are reported by landing, with the generator's own message.
    """
    if spec_source.type != "generator" or not spec_source.generator:
        return None
    try:
        source = get_source(spec_source.generator)
        return source.series(source.check_params(spec_source.params)) if source.series else None
    except (SpecError, ValueError, TypeError, KeyError):
        return None
