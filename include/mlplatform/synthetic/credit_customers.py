"""Deterministic synthetic consumer-credit portfolio: the raw source of the credit-risk use case.

Three raw tables:

* ``customers`` (dimension): customer_id, segment, region, product, opened_on, age_band. 60 % of the
  accounts are open at ``EPOCH``, the rest open through 2026 (the dimension lists them all; dbt keeps
  those opened by the run date);
* ``credit_reviews`` (daily fact): one row per account review. Every open customer is reviewed every 30
  days (a statement cycle), staggered by a per-customer offset, so (active customers) / 30 rows a day;
  with defaults removing ~1.5 % of customers a month about half of ``n_customers`` are active, i.e.
  ~n_customers / 60 reviews a day. Columns: credit_limit, balance, utilisation, days_past_due,
  n_late_payments_12m, income_band, tenure_months, n_inquiries_6m, as observed on the review date;
* ``default_events`` (daily fact): default_date, customer_id. A customer defaults at most once, 1..29
  days after a review (strictly between two reviews) and is never reviewed again afterwards.

How values evolve. Each customer has a latent risk made of a slowly mean-reverting part (segment and
age set its mean) and a transient AR(1) part hit by occasional shocks (job loss). Together with a seeded
~3-year macro cycle they drive utilisation of revolving products (AR on the logit scale, spiking after a
shock; personal loans amortise over their term instead), a delinquency bucket (current, 1-30, 31-60,
61-90 days past due; rolls forward, stays or cures), the late-payment count and bureau inquiries.

The monthly default hazard is a logistic function of latent risk (only partly observable) and observed
features, with deliberately non-linear structure so a gradient-boosted model has something honest to
find over a logistic regression (about 4-8 % lower log loss on the features mart; the logistic
baseline still reaches a ROC AUC of ~0.85):

* a step at 30 days past due (1-30 is mostly "forgot to pay", 31-90 is serious), halved for small
  businesses (cash-flow timing) and worse for students;
* utilisation means different things per product: a jump above 0.9 on credit cards (worse when also
  in arrears), linear on overdrafts, nothing on amortising loans; a sudden draw-down (+0.25 since the
  previous review) on revolving products; a small-business x utilisation interaction;
* thresholds: 3+ late cycles in 12 months, 3+ inquiries in 6 months, seasoning (tenure < 6 and < 12
  months, young accounts' late payments weigh more).

About 4.5 % of reviews are followed by a default within 90 days (``default_rate``), moving with the
macro cycle between roughly 3.5 and 6 % a quarter.

Why "pure function of (seed, params, day)": the pipeline lands raw history incrementally (one run per
day, backfills, reruns), so a row must not depend on the requested date range. Time is cut into 30-day
cycles counted from ``EPOCH``; a customer's review in cycle ``c`` falls on ``EPOCH + 30 c + offset``.
Every random draw of a cycle comes from a numpy generator seeded with ``[seed, stream, cycle]`` (the
cycle is a function of the day) and is vectorised over all customers, whether open, not yet open or
defaulted; latent per-customer parameters come from generators seeded by ``seed`` only. The portfolio is
simulated forward from ``EPOCH`` (a fixed date, never the landed history's start), so landing any day
range in any chunking gives identical rows. Days before ``EPOCH`` have no rows: the year before the
spec's usual history start (2023-01-01) is a burn-in in which delinquency states settle.

Parameters (``SOURCE.check_params`` fills defaults, ValueError names unknown, missing or bad ones):

* ``seed`` (required, int >= 0); ``n_customers`` (default 3000);
* ``default_rate`` (default 0.045, at most 0.2): target share of reviews followed by a default within
  90 days; it shifts the hazard's intercept by a factor calibrated by simulation, so the realised rate
  is close (within ~0.5 points for 0.03..0.06 over a few thousand customers), not exact;
* ``drift_start`` / ``drift_factor`` (default none / 1.0): from that date on, every customer's risk is
  raised by log(drift_factor) (utilisation, delinquency and defaults go up), for drift tests;
* ``group_disparity`` (default 0.0): a controllable difference in default risk by age band, so the
  fairness gate (``fairness.sensitive_attributes: [age_band]``) can be tested both ways. Adds
  ``group_disparity * AGE_BAND_DISPARITY[age_band]`` to the monthly default log-odds (18-25 riskier,
  51+ safer): a difference no observed feature explains directly, which a model that never sees the age
  band still picks up through proxies (segment, tenure, income). 0.0 = none (rows identical to omitting
  it). The weights average about zero over the age mix, so the portfolio's overall rate stays about the
  same. 1.0 raises the 18-25 band's realised 90-day default rate by ~40 % (7 % -> 10 %) and lowers 51+
  by ~20 %; 2.5 raises it ~2.5x, and the credit_risk model's demographic parity difference (selected at
  p >= 0.05) goes from 0.10-0.18 to 0.35-0.48. Beyond ~3 the young borrowers default out of the portfolio
  within months, their band falls below the gate's minimum group size and the measured gap shrinks again.

numpy and pandas are imported inside functions: this module is imported lazily on first landing, but it
stays cheap anyway.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from mlplatform.datagen import DEFAULT_CHUNK_DAYS, Source, check_param_names

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

REVIEW_COLUMNS = (
    "review_date", "customer_id", "credit_limit", "balance", "utilisation", "days_past_due",
    "n_late_payments_12m", "income_band", "tenure_months", "n_inquiries_6m",
)
DEFAULT_COLUMNS = ("default_date", "customer_id")
CUSTOMER_COLUMNS = ("customer_id", "segment", "region", "product", "opened_on", "age_band")

SEGMENTS = ("mass_market", "affluent", "small_business", "student")
PRODUCTS = ("credit_card", "personal_loan", "overdraft")
REGIONS = ("north", "south", "east", "west", "central")
AGE_BANDS = ("18-25", "26-35", "36-50", "51-65", "66+")
INCOME_BANDS = ("<20k", "20-40k", "40-70k", "70-120k", "120k+")  # ordinal 1..5 in dbt
# Log-odds weight per age band of the optional group_disparity parameter: young borrowers riskier,
# older ones safer, averaging about zero over the portfolio's age mix (students are mostly 18-25).
AGE_BAND_DISPARITY = {"18-25": 1.0, "26-35": 0.0, "36-50": -0.25, "51-65": -0.5, "66+": -0.5}

EPOCH = date(2022, 1, 1)
CYCLE_DAYS = 30
LABEL_WINDOW_DAYS = 90
MAX_DEFAULT_RATE = 0.2

PARAMS = ("n_customers", "seed", "default_rate", "drift_start", "drift_factor", "group_disparity")
DEFAULTS: dict[str, Any] = {"n_customers": 3000, "default_rate": 0.045, "drift_start": None,
                            "drift_factor": 1.0, "group_disparity": 0.0}

_SEGMENT_P = (0.5, 0.2, 0.15, 0.15)
_SEGMENT_RISK = (0.0, -0.8, 0.2, 0.45)
_SEGMENT_INCOME = (1.6, 3.0, 2.2, 0.5)
_PRODUCT_P = (0.55, 0.25, 0.2)
_PRODUCT_LIMIT = (2500.0, 9000.0, 1500.0)  # base limit per income band step
_PRODUCT_UTIL = (0.0, 0.9, -0.4)  # logit offset of revolving use (loans follow their schedule instead)
_PRE_EPOCH_SHARE = 0.6  # share of customers already open at EPOCH (the rest open through 2026)
_OPEN_FROM, _OPEN_LAST = date(2008, 1, 1), date(2026, 12, 31)

_RHO_SLOW, _RHO_RISK, _RHO_UTIL, _RHO_MACRO = 0.92, 0.85, 0.6, 0.8
_RISK_SD = 0.9
_SHOCK_PROB, _SHOCK_SIZE = 0.02, 1.6
_HAZARD_PERSISTENT, _HAZARD_TRANSIENT = 0.4, 0.9  # latent risk weights in the default log-odds
_BUCKET_LOGIT = (0.0, 0.1, 1.9, 2.6)  # default log-odds by delinquency bucket (0 = current)
# Intercept giving a ~4.5 % 90-day default rate at default parameters, and how strongly default_rate moves
# it: the realised rate responds less than proportionally to the odds (high-risk customers saturate and
# survivors get riskier), so the log-ratio is amplified. Both calibrated by simulation over seeds.
_BASE_INTERCEPT = -6.85
_BASE_RATE = 0.045
_RATE_ELASTICITY = 2.8
_UNIX_ORDINAL = date(1970, 1, 1).toordinal()

# Independent random streams: [seed, stream, ...] never collide between purposes.
_STREAM_CUSTOMERS, _STREAM_LATENT, _STREAM_MACRO, _STREAM_CYCLE = range(21, 25)


# ------------------------------------------------------------------------------------------- params


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def _check_float(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def _check_date(name: str, value: Any) -> date | None:
    if value is None or (isinstance(value, date) and not hasattr(value, "hour")):
        return value
    if isinstance(value, date):  # datetime / pandas Timestamp: the day
        return value.date()
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise ValueError(f"{name} must be an ISO date (YYYY-MM-DD) or null, got {value!r}")


def check_params(params: dict[str, Any]) -> dict[str, Any]:
    """Validated generator parameters with defaults filled in; ValueError names the offending one."""
    check_param_names(params, PARAMS)
    out = {**DEFAULTS, **params}
    out["seed"] = _check_int("seed", out["seed"], 0)
    out["n_customers"] = _check_int("n_customers", out["n_customers"], 1)
    rate = _check_float("default_rate", out["default_rate"])
    if not 0.0 < rate <= MAX_DEFAULT_RATE:
        raise ValueError(f"default_rate must be in (0, {MAX_DEFAULT_RATE}], got {rate!r}")
    factor = _check_float("drift_factor", out["drift_factor"])
    if factor <= 0:
        raise ValueError(f"drift_factor must be > 0, got {factor!r}")
    disparity = _check_float("group_disparity", out["group_disparity"])
    if abs(disparity) > 5:
        raise ValueError(f"group_disparity must be within [-5, 5] (log-odds), got {disparity!r}")
    out.update(default_rate=rate, drift_factor=factor, group_disparity=disparity,
               drift_start=_check_date("drift_start", out["drift_start"]))
    return out


# ---------------------------------------------------------------------------------------- customers


@dataclass(frozen=True)
class _Portfolio:
    """Latent per-customer parameters (arrays of length n_customers), from ``seed`` only."""

    ids: np.ndarray
    segment: np.ndarray  # index into SEGMENTS
    product: np.ndarray
    region: np.ndarray
    age: np.ndarray
    opened: np.ndarray  # date ordinal
    offset: np.ndarray  # review day within each 30-day cycle
    risk: np.ndarray  # persistent latent risk at EPOCH
    risk_mean: np.ndarray  # what it reverts to (segment and age)
    util_level: np.ndarray  # logit-scale utilisation propensity
    income0: np.ndarray  # income band index at opening (0..4)
    income_growth: np.ndarray  # income bands gained per year on book
    base_limit: np.ndarray
    risk0: np.ndarray  # transient risk at EPOCH
    util0: np.ndarray  # utilisation logit at EPOCH
    loan_term: np.ndarray  # months (personal loans amortise over it)


@lru_cache(maxsize=8)
def _portfolio(n: int, seed: int) -> _Portfolio:
    import numpy as np

    rng = np.random.default_rng([seed, _STREAM_CUSTOMERS])
    segment = rng.choice(len(SEGMENTS), n, p=_SEGMENT_P)
    product = rng.choice(len(PRODUCTS), n, p=_PRODUCT_P)
    region = rng.integers(0, len(REGIONS), n)
    student = segment == SEGMENTS.index("student")
    age = np.where(student, rng.choice(2, n, p=[0.85, 0.15]),
                   rng.choice(5, n, p=[0.08, 0.27, 0.35, 0.22, 0.08]))
    pre = rng.random(n) < np.where(student, 0.4, _PRE_EPOCH_SHARE)
    e, lo, hi = EPOCH.toordinal(), _OPEN_FROM.toordinal(), _OPEN_LAST.toordinal()
    # Students opened recently; everyone else anywhere in the range (pre-EPOCH or after it).
    pre_from = np.where(student, EPOCH.toordinal() - 4 * 365, lo)
    opened = np.where(pre, pre_from + (rng.random(n) * (e - pre_from)).astype(int),
                      e + (rng.random(n) * (hi - e + 1)).astype(int))
    offset = rng.integers(0, CYCLE_DAYS, n)

    lat = np.random.default_rng([seed, _STREAM_LATENT])
    risk_mean = np.asarray(_SEGMENT_RISK)[segment] + 0.3 * (age == 0) - 0.15 * (age >= 3)
    risk = risk_mean + lat.normal(0, _RISK_SD, n)
    income = (np.asarray(_SEGMENT_INCOME)[segment] - 0.35 * risk + 0.4 * np.minimum(age, 3)
              + lat.normal(0, 0.7, n))
    income0 = np.clip(np.round(income), 0, len(INCOME_BANDS) - 1).astype(int)
    base_limit = np.asarray(_PRODUCT_LIMIT)[product] * (1 + income0) * lat.lognormal(0, 0.25, n)
    return _Portfolio(
        ids=np.array([f"C{i + 1:0{max(5, len(str(n)))}d}" for i in range(n)], dtype=object),
        segment=segment, product=product, region=region, age=age, opened=opened, offset=offset,
        risk=risk, risk_mean=risk_mean,
        util_level=np.asarray(_PRODUCT_UTIL)[product] + 0.3 * risk + lat.normal(-0.5, 0.8, n),
        income0=income0, income_growth=lat.uniform(0.0, 0.15, n),
        base_limit=np.round(base_limit, -2).clip(min=500.0),
        risk0=lat.normal(0, 1, n), util0=lat.normal(0, 0.5, n), loan_term=lat.choice([36, 60], n),
    )


def generate_customers(n_customers: int, seed: int) -> pd.DataFrame:
    """Customer dimension (every customer, also those opening after today: dbt filters by opened_on)."""
    import pandas as pd

    p = _portfolio(_check_int("n_customers", n_customers, 1), _check_int("seed", seed, 0))
    return pd.DataFrame({
        "customer_id": p.ids,
        "segment": [SEGMENTS[i] for i in p.segment],
        "region": [REGIONS[i] for i in p.region],
        "product": [PRODUCTS[i] for i in p.product],
        "opened_on": [date.fromordinal(int(d)) for d in p.opened],
        "age_band": [AGE_BANDS[i] for i in p.age],
    }, columns=list(CUSTOMER_COLUMNS))


# ------------------------------------------------------------------------------------------- cycles


@dataclass
class _State:
    """Portfolio state carried from one cycle to the next (all customers)."""

    slow: np.ndarray  # slowly mean-reverting part of the customer's risk (circumstances change over years)
    risk: np.ndarray
    util: np.ndarray  # logit scale
    bucket: np.ndarray  # 0 current, 1..3 = 1-30, 31-60, 61-90 days past due
    late: np.ndarray  # (12, n) ring of "late in that cycle" flags
    defaulted: np.ndarray
    macro: float
    prev_util: np.ndarray  # utilisation at the previous cycle's review


@dataclass(frozen=True)
class _Cycle:
    """Review rows and default events of one 30-day cycle (only customers reviewed in it)."""

    index: int
    reviews: dict[str, np.ndarray]
    defaults: dict[str, np.ndarray]


def _sigmoid(x: np.ndarray) -> np.ndarray:
    import numpy as np

    return 1.0 / (1.0 + np.exp(-x))


def _poisson(u: np.ndarray, lam: np.ndarray, k_max: int = 30) -> np.ndarray:
    """Poisson draws by inverse CDF from uniforms.

    Why not ``rng.poisson``: it consumes a number of random values that depends on each rate, so a rate
    changed for one customer (drift from drift_start on) would shift every later draw of the cycle for
    all others, and rows before drift_start would no longer be identical with and without drift.
    """
    import numpy as np

    term = np.exp(-lam)
    cdf, k = term.copy(), np.zeros(u.size, dtype="int64")
    for i in range(1, k_max + 1):
        more = u > cdf
        if not more.any():
            break
        k += more
        term = term * lam / i
        cdf = cdf + term
    return k


def _macro_wave(seed: int, cycle: int) -> float:
    """Seeded ~3-year credit cycle (log-odds units); its phase depends on the seed only."""
    import numpy as np

    phase = float(np.random.default_rng([seed, _STREAM_MACRO]).uniform(0, 2 * math.pi))
    return 0.3 * math.sin(2 * math.pi * cycle * CYCLE_DAYS / (3 * 365.25) + phase)


def _hazard_logit(params: dict[str, Any], p: _Portfolio, risk: np.ndarray, obs: dict[str, np.ndarray],
                  macro: float) -> np.ndarray:
    """Monthly default log-odds: latent risk plus observed features, with thresholds and interactions.

    Utilisation means different things per product: on a credit card, being near or over the limit is
    a distress signal (a jump above 0.9); on an overdraft, risk rises linearly with use; on an
    amortising personal loan it only says how far the repayment schedule is, and carries no risk.
    """
    import numpy as np

    util, bucket, late12, tenure = obs["util"], obs["bucket"], obs["late12"], obs["tenure"]
    card = p.product == PRODUCTS.index("credit_card")
    overdraft = p.product == PRODUCTS.index("overdraft")
    revolving = card | overdraft
    small_business = p.segment == SEGMENTS.index("small_business")
    student = p.segment == SEGMENTS.index("student")
    young = tenure < 12
    disparity = np.asarray([AGE_BAND_DISPARITY[a] for a in AGE_BANDS])[p.age]
    return (_BASE_INTERCEPT + _RATE_ELASTICITY * math.log(params["default_rate"] / _BASE_RATE)
            + risk + np.asarray(_BUCKET_LOGIT)[bucket] * np.where(small_business, 0.5, 1.0)
            + 0.8 * student * (bucket > 0)
            + card * (0.4 * util + 2.4 * (util > 0.9)) + overdraft * 1.4 * util
            + revolving * ((util > 0.9) & (bucket > 0)) * 1.0
            + revolving * small_business * 2.0 * (util - 0.5)
            + 1.0 * (tenure < 6) + young * (0.4 + 0.5 * late12) + 1.0 * (late12 >= 3)
            + 1.2 * (obs["inquiries"] >= 3) + revolving * 1.2 * (obs["util_jump"] > 0.25)
            + 0.7 * macro + params["group_disparity"] * disparity)


def _advance(params: dict[str, Any], p: _Portfolio, s: _State, c: int) -> _Cycle:
    """Move the portfolio one cycle forward; return the cycle's reviews and defaults."""
    import numpy as np

    n, seed = p.ids.size, params["seed"]
    rng = np.random.default_rng([seed, _STREAM_CYCLE, c])
    review = EPOCH.toordinal() + c * CYCLE_DAYS + p.offset
    drift = params["drift_start"]
    shift = np.where(review >= drift.toordinal(), math.log(params["drift_factor"]), 0.0) if drift else 0.0

    shock = rng.random(n) < _SHOCK_PROB
    s.macro = _RHO_MACRO * s.macro + rng.normal(0, 0.08)
    macro = _macro_wave(seed, c) + s.macro
    s.risk = _RHO_RISK * s.risk + math.sqrt(1 - _RHO_RISK**2) * rng.normal(0, 1, n) + _SHOCK_SIZE * shock
    s.slow = _RHO_SLOW * s.slow + math.sqrt(1 - _RHO_SLOW**2) * _RISK_SD * rng.normal(0, 1, n)
    persistent = p.risk_mean + s.slow
    x = persistent + 0.8 * s.risk + 0.3 * macro + shift
    s.util = (_RHO_UTIL * s.util + (1 - _RHO_UTIL) * (p.util_level + 0.7 * x) + rng.normal(0, 0.3, n)
              + 1.2 * shock)
    tenure = np.maximum(0, (review - p.opened) * 12 // 365)
    loan = p.product == PRODUCTS.index("personal_loan")
    # Revolving products: utilisation follows the customer's state; loans amortise over their term.
    schedule = 0.98 * (1 - (tenure % p.loan_term) / p.loan_term) + rng.normal(0, 0.02, n) + 0.03 * s.bucket
    util = np.where(loan, np.clip(schedule, 0.01, 1.0), np.minimum(1.08 * _sigmoid(s.util), 1.08))

    u_bucket = rng.random(n)
    enter = _sigmoid(-4.2 + 1.0 * x + 1.3 * (~loan & (util > 0.9)) + 1.0 * shock)
    roll = _sigmoid(-0.7 + 0.9 * x)
    cure = 0.5 * (1 - roll)
    s.bucket = np.where(s.bucket == 0, (u_bucket < enter).astype(int),
                        np.where(u_bucket < roll, np.minimum(s.bucket + 1, 3),
                                 np.where(u_bucket > 1 - cure, 0, s.bucket)))
    s.late[c % 12] = s.bucket > 0
    late12 = s.late.sum(axis=0)

    active = (p.opened <= review) & ~s.defaulted
    years = np.maximum(0.0, (review - p.opened) / 365.25)
    income = np.minimum(p.income0 + np.floor(years * p.income_growth).astype(int), len(INCOME_BANDS) - 1)
    limit = np.round(p.base_limit * 1.06 ** np.minimum(tenure // 12, 10), -2)
    dpd = np.where(s.bucket == 0, 0, 30 * (s.bucket - 1) + rng.integers(1, 31, n))
    inquiries = _poisson(rng.random(n), np.exp(-1.5 + 0.3 * persistent + 0.8 * s.risk))

    risk = _HAZARD_PERSISTENT * persistent + _HAZARD_TRANSIENT * s.risk + 0.8 * shock + shift
    obs = {"util": util, "util_jump": util - s.prev_util, "bucket": s.bucket, "late12": late12,
           "tenure": tenure, "inquiries": inquiries}
    logit = _hazard_logit(params, p, risk, obs, macro)
    defaults = active & (rng.random(n) < _sigmoid(logit))
    default_day = review + rng.integers(1, CYCLE_DAYS, n)  # strictly between two reviews
    s.defaulted = s.defaulted | defaults
    s.prev_util = util

    balance = np.round(util * limit, 2)
    idx = np.flatnonzero(active)
    reviews = {
        "review_date": review[idx], "customer_id": p.ids[idx], "credit_limit": limit[idx],
        "balance": balance[idx], "utilisation": np.round(balance[idx] / limit[idx], 4),
        "days_past_due": dpd[idx].astype("int64"), "n_late_payments_12m": late12[idx].astype("int64"),
        "income_band": np.asarray(INCOME_BANDS, dtype=object)[income[idx]],
        "tenure_months": tenure[idx].astype("int64"), "n_inquiries_6m": inquiries[idx].astype("int64"),
    }
    hit = np.flatnonzero(defaults)
    return _Cycle(c, reviews, {"default_date": default_day[hit], "customer_id": p.ids[hit]})


def _cycles(params: dict[str, Any]) -> Iterator[_Cycle]:
    """Every cycle from EPOCH on (endless): the portfolio simulated forward, identically on every call."""
    import numpy as np

    p = _portfolio(params["n_customers"], params["seed"])
    n = p.ids.size
    state = _State(slow=p.risk - p.risk_mean, risk=p.risk0.copy(), util=p.util_level + p.util0,
                   bucket=np.zeros(n, dtype=int), late=np.zeros((12, n), dtype=bool),
                   defaulted=np.zeros(n, dtype=bool), macro=0.0, prev_util=np.zeros(n))
    c = 0
    while True:
        yield _advance(params, p, state, c)
        c += 1


# -------------------------------------------------------------------------------------------- frames


_DTYPES = {"credit_limit": "float64", "balance": "float64", "utilisation": "float64",
           "days_past_due": "int64", "n_late_payments_12m": "int64", "tenure_months": "int64",
           "n_inquiries_6m": "int64"}


def _frame(parts: list[dict[str, np.ndarray]], columns: tuple[str, ...]) -> pd.DataFrame:
    """Rows of several cycles, dates as datetime64 (like the retail source), sorted by date and customer."""
    import numpy as np
    import pandas as pd

    date_col = columns[0]
    if not parts:
        return pd.DataFrame({
            col: pd.Series([], dtype="datetime64[ns]" if col == date_col else _DTYPES.get(col, object))
            for col in columns})
    data = {col: np.concatenate([part[col] for part in parts]) for col in columns}
    ordinals = data[date_col].astype("int64")
    data[date_col] = (ordinals - _UNIX_ORDINAL).astype("datetime64[D]").astype("datetime64[ns]")
    order = np.lexsort((data["customer_id"].astype(str), ordinals))
    return pd.DataFrame({col: values[order] for col, values in data.items()}, columns=list(columns))


def _in_range(part: dict[str, np.ndarray], key: str, lo: int, hi: int) -> dict[str, np.ndarray]:
    keep = (part[key] >= lo) & (part[key] <= hi)
    return {col: values[keep] for col, values in part.items()}


def _keep(parts: list[dict[str, np.ndarray]], key: str, lo: int, hi: int) -> list[dict[str, np.ndarray]]:
    """Rows of ``parts`` dated in [lo, hi] (ordinals); parts left without rows are dropped."""
    kept = [_in_range(part, key, lo, hi) for part in parts]
    return [part for part in kept if part[key].size]


def iter_credit(params: dict[str, Any], start: date, end: date,
                chunk_days: int = DEFAULT_CHUNK_DAYS) -> Iterator[dict[str, pd.DataFrame]]:
    """{"credit_reviews", "default_events"} for consecutive ranges of ``chunk_days`` days in [start, end].

    The portfolio is simulated once from EPOCH through ``end``; a range is emitted as soon as every cycle
    that can write into it has been simulated (a default falls at most 59 days after its cycle start).
    """
    params = check_params(params)
    _check_int("chunk_days", chunk_days, 1)
    start, end = _check_date("start", start), _check_date("end", end)
    ranges, day = [], start
    while day <= end:
        hi = min(end, day + timedelta(days=chunk_days - 1))
        ranges.append((day.toordinal(), hi.toordinal()))
        day = hi + timedelta(days=1)
    if not ranges:
        return
    reviews: list[dict[str, np.ndarray]] = []
    defaults: list[dict[str, np.ndarray]] = []
    lo_all, hi_all = ranges[0][0], ranges[-1][1]
    for cycle in _cycles(params):
        reviews += _keep([cycle.reviews], "review_date", lo_all, hi_all)
        defaults += _keep([cycle.defaults], "default_date", lo_all, hi_all)
        # After cycle c, reviews up to its last day and defaults before the next cycle's start are final.
        complete = EPOCH.toordinal() + (cycle.index + 1) * CYCLE_DAYS - 1
        while ranges and ranges[0][1] <= complete:
            lo, hi = ranges.pop(0)
            yield {"credit_reviews": _frame(_keep(reviews, "review_date", lo, hi), REVIEW_COLUMNS),
                   "default_events": _frame(_keep(defaults, "default_date", lo, hi), DEFAULT_COLUMNS)}
            reviews = _keep(reviews, "review_date", hi + 1, hi_all)
            defaults = _keep(defaults, "default_date", hi + 1, hi_all)
        if not ranges:
            return


def generate_credit(start: date, end: date, **params: Any) -> dict[str, pd.DataFrame]:
    """Every raw table for [start, end]: credit_reviews, default_events and the customers dimension."""
    import pandas as pd

    params = check_params(params)
    parts: dict[str, list[pd.DataFrame]] = {"credit_reviews": [], "default_events": []}
    for chunk in iter_credit(params, start, end):
        for table, frame in chunk.items():
            parts[table].append(frame)
    out = {table: pd.concat(frames, ignore_index=True) if frames else
           _frame([], REVIEW_COLUMNS if table == "credit_reviews" else DEFAULT_COLUMNS)
           for table, frames in parts.items()}
    return {**out, **_dimensions(params)}


def _dimensions(params: dict[str, Any]) -> dict[str, pd.DataFrame]:
    params = check_params(params)
    return {"customers": generate_customers(params["n_customers"], params["seed"])}


def _fact_chunks(params: dict[str, Any], start: date, end: date,
                 chunk_days: int) -> Iterator[dict[str, pd.DataFrame]]:
    return iter_credit(params, start, end, chunk_days)


SOURCE = Source(
    facts={"credit_reviews": "review_date", "default_events": "default_date"},
    check_params=check_params,
    dimensions=_dimensions,
    fact_chunks=_fact_chunks,
)
