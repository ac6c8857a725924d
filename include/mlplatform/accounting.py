"""Every series accounted for: which series a publication forecasts, and why each other one is left out.

A forecast partition that silently lacks a series is worse than a failed run: the consumer sums a total
that is short, and nothing says so. So each forecast publication compares the series it wrote with every
series in the features as of the run date, and the manifest (and ``mlplatform summary``) lists each one
left out with its reason:

- ``null target``: the series has no observed target as of the date;
- ``stopped``: its last observation is before the forecast origin, so it has no row to forecast from;
- ``not forecast``: observed at the origin yet absent from the output (a defect; it is named as such);
- ``gone``: in the previous partition, but no longer in the features at all (deleted at the source).

``publish.series`` sets the policy: more than ``max_missing_share`` of the series left out, or any of
the ``top_n`` largest (by mean |target| over their last season), is a breach; ``on_breach: warn`` flags
the manifest and logs, ``block`` refuses to publish (the earlier partition stays as it was).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from mlplatform.errors import DataQualityError
from mlplatform.spec import UseCaseSpec

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

# Series listed by name in the manifest at most (the counts always cover all of them).
MAX_LISTED = 100


class SeriesTally:
    """Collects the series keys of published chunks as they stream to object storage (no second pass)."""

    def __init__(self, keys: list[str]) -> None:
        self.keys = list(keys)
        self.seen: set[tuple] = set()

    def watch(self, chunks: Iterable[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for chunk in chunks:
            self.seen.update(chunk[self.keys].drop_duplicates().itertuples(index=False, name=None))
            yield chunk


def _volume(observed: pd.DataFrame, keys: list[str], time_col: str, target: str, season: int) -> pd.Series:
    """Mean |target| over each series' last ``season`` observations: what 'largest series' means."""
    recent = observed.sort_values(time_col).groupby(keys, dropna=False, sort=False).tail(max(season, 1))
    return recent.assign(_abs=recent[target].abs()).groupby(keys, dropna=False)["_abs"].mean()


def account(features: pd.DataFrame, spec: UseCaseSpec, origin: Any, forecast: set[tuple],
            previous: tuple[Any, set[tuple]] | None = None) -> dict[str, Any]:
    """The manifest's ``series`` block: counts, each series left out with its reason, and the policy verdict.

    ``features`` are the rows as of the run date; ``forecast`` the key tuples the partition holds;
    ``previous`` the (date, key tuples) of the latest earlier partition, whose series count too.
    """
    import pandas as pd

    f, policy = spec.features, spec.publish.series
    keys, time_col = list(f.series_keys), f.time_column
    origin = pd.Timestamp(origin)
    observed = features.loc[features[f.target].notna(), [*keys, time_col, f.target]]
    last = observed.groupby(keys, dropna=False)[time_col].max()
    every = list(features[keys].drop_duplicates().itertuples(index=False, name=None))
    missing = [k for k in every if k not in forecast]
    volume = _volume(observed, keys, time_col, f.target, spec.backtest.season_length)
    top = set(volume.sort_values(ascending=False).head(policy.top_n).index.map(_as_tuple)) if policy.top_n else set()
    last_by = {_as_tuple(k): v for k, v in last.items()}
    left_out = []
    for key in missing:
        seen = last_by.get(key)
        if seen is None or pd.isna(seen):
            reason = f"null target: no observed {f.target} as of the run date"
        elif pd.Timestamp(seen) < origin:
            reason = f"stopped: last observed {pd.Timestamp(seen).date()}, before the origin {origin.date()}"
        else:
            reason = f"not forecast although observed up to {pd.Timestamp(seen).date()} (a defect: report it)"
        left_out.append({**dict(zip(keys, key, strict=True)), "reason": reason, "top_n": key in top})
    if previous is not None:
        when, held = previous
        gone = sorted(held - set(every) - forecast, key=str)
        left_out += [{**dict(zip(keys, key, strict=True)), "top_n": False,
                      "reason": f"gone: in the partition of {when}, absent from the features as of the run date"}
                     for key in gone]
    return _verdict(spec, len(every), len(every) + len(left_out) - len(missing), len(forecast), left_out)


def _as_tuple(key: Any) -> tuple:
    return key if isinstance(key, tuple) else (key,)


def _verdict(spec: UseCaseSpec, n_features: int, n_series: int, n_forecast: int,
             left_out: list[dict]) -> dict[str, Any]:
    """Counts and the policy verdict; ``n_series`` = the features' series plus those gone since the
    previous partition (the share left out is of that whole)."""
    policy = spec.publish.series
    share = len(left_out) / n_series if n_series else 0.0
    problems = []
    if share > policy.max_missing_share:
        problems.append(f"{len(left_out)} of {n_series} series ({share:.1%}) left out "
                        f"> publish.series.max_missing_share {policy.max_missing_share:.1%}")
    big = [s for s in left_out if s["top_n"]]
    if big:
        names = "; ".join(_label(spec, s) for s in big[:5])
        problems.append(f"{len(big)} of the {policy.top_n} largest series left out ({names})")
    return {"in_features": n_features, "expected": n_series, "forecast": n_forecast, "left_out": len(left_out),
            "left_out_share": round(share, 6), "series": left_out[:MAX_LISTED],
            "listed": min(len(left_out), MAX_LISTED), "breach": "; ".join(problems) or None,
            "policy": policy.model_dump()}


def _label(spec: UseCaseSpec, entry: dict) -> str:
    keys = ", ".join(f"{k}={entry[k]}" for k in spec.features.series_keys)
    return f"{keys}: {entry['reason']}"


def enforce(spec: UseCaseSpec, block: dict[str, Any], where: str) -> dict[str, Any]:
    """Apply the policy to an ``account`` result: log a breach, or refuse to publish under ``block``."""
    if not block["breach"]:
        return block
    message = (f"use case {spec.name!r}, {where}: {block['breach']}. Left out: "
               + "; ".join(_label(spec, s) for s in block["series"][:10]))
    if spec.publish.series.on_breach == "block":
        raise DataQualityError(message + ". Nothing was published (publish.series.on_breach: block); the "
                                          "earlier partition of the date, if any, stays as it was.")
    log.warning("%s (published, flagged in the manifest's series block)", message)
    return block
