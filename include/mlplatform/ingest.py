"""Land raw data delivered as files (``source.type: files``): check every file against its contract.

Upstream drops CSV or Parquet files under ``<inbox>/<table>/day=YYYY-MM-DD/`` in the platform's bucket.
For a run date D, every file of a day <= D that was not ingested before is read and checked against the
table's contract (``spec.FileTableSpec``), with three outcomes per problem:

* blocking: the file cannot be trusted as a whole (unreadable, truncated, wrong encoding or delimiter,
  a missing or renamed column) or the run date's own delivery is missing or has no rows. The run stops
  with an error naming the file and the problem, and nothing of the batch lands;
* row-level: a row with a null or unparseable typed value, a null or duplicated key, a value out of the
  contract's range, or a date outside its file's day or after D is quarantined, with its reason, to
  ``<uc>/quarantine/run_date=D/``; the other rows land;
* warning: an extra column (dropped), extreme outliers, rows for a day already landed (late data):
  the rows land and the landing report says so.

Delivered files are never modified or deleted. Everything is decided before anything is written, then
quarantine objects are written, then the good rows land in one warehouse transaction together with the
record of the ingested files, and the landing report goes to ``<uc>/landing/run_date=D/report.json``.
A rerun for the same date finds every file ingested and lands nothing. A delivered file is immutable
once ingested (it is recognised by its key): corrections come as a new file, whose rows for keys
already landed are quarantined as re-deliveries.

Personal data (``privacy.pii_columns``): quarantined rows keep their values (they are data), but no
report, warning or error message quotes a value of a PII column. Reasons name columns and rules, never
values; when the spec declares PII, messages that would quote unknown file content (undecodable bytes,
parser excerpts, header names that may be a data row) withhold it, and the landing report is scrubbed
of every PII value read before it is stored (see ``mlplatform.privacy``).
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any

from mlplatform import constants as C
from mlplatform import privacy
from mlplatform.errors import DataQualityError, PlatformError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from mlplatform.settings import Settings
    from mlplatform.spec import FileTableSpec, UseCaseSpec
    from mlplatform.storage import ObjectStore

INGESTED_TABLE = f"{C.RAW_SCHEMA}._ingested_files"
INGESTED_DDL = (f"create table if not exists {INGESTED_TABLE} (tbl varchar not null, file_key varchar not null, "
                "sha256 varchar not null, day date not null, rows_landed bigint not null, "
                "rows_quarantined bigint not null, run_date date not null)")
_DAY = re.compile(r"/day=(\d{4}-\d{2}-\d{2})/[^/]+$")
_DELIMITERS = {",": ",", ";": ";", "|": "|", "\\t": "\t"}
MAX_EXAMPLES = 5


@dataclass
class FileCheck:
    """What checking one delivered file found."""

    table: str
    key: str
    day: date
    sha256: str
    good: Any = None                       # DataFrame of rows that land, typed per the contract
    quarantined: Any = None                # DataFrame of rejected rows (as delivered) + reason
    warnings: list[str] = field(default_factory=list)
    pii_values: frozenset[str] = frozenset()  # values of PII columns read: scrubbed from every report

    @property
    def n_quarantined(self) -> int:
        return 0 if self.quarantined is None else len(self.quarantined)


# ------------------------------------------------------------------------------------------- reading


def _blocking(uri: str, problem: str) -> DataQualityError:
    return DataQualityError(f"delivery {uri}: {problem}; the run is stopped and nothing of this batch "
                            "landed (the file is kept as delivered: fix or replace it upstream, then rerun)")


def _read_csv(data: bytes, contract: FileTableSpec, uri: str, pii: frozenset[str] = frozenset()) -> pd.DataFrame:
    import pandas as pd

    try:
        text = data.decode(contract.encoding)
    except UnicodeDecodeError as exc:
        # The bytes at the error belong to some value; with personal data in the spec they are not quoted.
        excerpt = "" if pii else f": {data[exc.start:exc.start + 4]!r}"
        raise _blocking(uri, f"not valid {contract.encoding} text (byte {exc.start}{excerpt}); was it exported "
                             "with another encoding?") from None
    delimiter = _DELIMITERS[contract.delimiter]
    header = text.split("\n", 1)[0]
    if delimiter not in header and len(contract.columns) > 1:
        found = [d for d in (",", ";", "|", "\t") if d in header]
        hint = f" it seems to use {found[0]!r}" if found else ""
        raise _blocking(uri, f"the header has no {contract.delimiter!r} delimiter;{hint} (the contract says "
                             f"{contract.delimiter!r})")
    try:
        return pd.read_csv(io.StringIO(text), sep=delimiter, dtype=str, keep_default_na=False,
                           na_values=[""], on_bad_lines="error", engine="python")
    except (pd.errors.ParserError, ValueError) as exc:
        raise _blocking(uri, f"malformed CSV ({_excerpt(exc, pii)}); truncated or corrupt?") from None


def _excerpt(exc: Exception, pii: frozenset[str]) -> str:
    """A reader's error message, one line, without quoted file content when the spec holds PII."""
    text = " ".join(str(exc).split())[:200]
    return privacy.scrub_quoted(text) if pii else text


def _read_parquet(data: bytes, uri: str, pii: frozenset[str] = frozenset()) -> pd.DataFrame:
    import pandas as pd
    import pyarrow as pa

    try:
        frame = pd.read_parquet(io.BytesIO(data))
    except (pa.ArrowInvalid, OSError, ValueError) as exc:
        raise _blocking(uri, f"not a readable Parquet file ({_excerpt(exc, pii)}); truncated or "
                             "corrupt?") from None
    return frame.astype(object).where(frame.notna(), None).map(lambda v: None if v is None else str(v))


def _quotable_header(present: list[str], contract: FileTableSpec, pii: frozenset[str]) -> tuple[list[str], str]:
    """(header names a message may quote, a note on those withheld).

    Why: a file delivered without its header line has a data row where the names should be, and that
    row may hold personal data. With PII in the spec, a header sharing no name with the contract is
    withheld whole, and names not shaped like identifiers (emails, names with spaces) are withheld.
    """
    if not pii:
        return present, ""
    if not any(c in contract.columns for c in present):
        return [], (f" ({len(present)} name(s) withheld: none is a contract column, so the header line may be "
                    "missing and they may be personal data, see privacy.pii_columns)")
    shown = [c for c in present if c in contract.columns or privacy.looks_like_column_name(c)]
    hidden = len(present) - len(shown)
    return shown, (f" (and {hidden} name(s) withheld: not identifier-shaped, they may be personal data, see "
                   "privacy.pii_columns)" if hidden else "")


def _check_columns(frame: pd.DataFrame, contract: FileTableSpec, uri: str,
                   pii: frozenset[str] = frozenset()) -> list[str]:
    """Blocking: missing (or renamed) columns. Warning: extra columns, which are dropped."""
    import difflib

    present = [str(c).strip() for c in frame.columns]
    missing = [c for c in contract.columns if c not in present]
    shown, withheld = _quotable_header(present, contract, pii)
    extra = [c for c in shown if c not in contract.columns]
    if missing:
        hints = []
        for column in missing:
            close = difflib.get_close_matches(column, extra, n=1, cutoff=0.6)
            hints.append(f"{column!r} (renamed to {close[0]!r}?)" if close else repr(column))
        raise _blocking(uri, f"missing column(s) {', '.join(hints)}; the contract requires "
                             f"{list(contract.columns)}, the file has {shown}{withheld}")
    if not extra and not withheld:
        return []
    return [f"{uri}: extra column(s) {extra}{withheld} not in the contract were dropped (schema drift upstream?)"]


# ------------------------------------------------------------------------------------------ row checks


def _typed(raw: pd.Series, kind: str) -> tuple[pd.Series, pd.Series]:
    """(typed values, mask of non-null raw values that do not parse as ``kind``)."""
    import pandas as pd

    text = raw.astype(object).where(raw.notna(), None)
    if kind == "string":
        return text, pd.Series(False, index=raw.index)
    if kind == "date":
        values = pd.to_datetime(text, format="%Y-%m-%d", errors="coerce")
    elif kind == "boolean":
        lowered = text.map(lambda v: None if v is None else str(v).strip().lower())
        values = lowered.map({"true": True, "false": False, "1": True, "0": False, "t": True, "f": False})
    else:
        values = pd.to_numeric(text, errors="coerce")
        if kind == "integer":
            whole = values.isna() | (values == values.round())
            values = values.where(whole)
    bad = text.notna() & values.isna()
    return values, bad


def _landed_keys(db: Any, table: str, contract: FileTableSpec, day: date) -> set[tuple]:
    """Keys of the fact rows already landed for ``day`` (a re-delivered key must not land twice)."""
    from mlplatform.warehouse import _as_date, table_exists

    if not table_exists(db, C.RAW_SCHEMA, table):
        return set()
    columns = ", ".join(contract.keys)
    rows = db.fetchall(f"select {columns} from {C.RAW_SCHEMA}.{table} where cast({contract.date_column} as date) = ?",
                       [day])
    return {tuple(_as_date(v) if k == contract.date_column else v for k, v in zip(contract.keys, row, strict=True))
            for row in rows}


def _reasons(frame: pd.DataFrame, contract: FileTableSpec, day: date, run_date: date,
             landed: set[tuple]) -> tuple[pd.DataFrame, pd.Series]:
    """The typed frame and, per row, the reason it is quarantined ('' for rows that land)."""
    import pandas as pd

    typed = pd.DataFrame(index=frame.index)
    reason = pd.Series("", index=frame.index, dtype=object)

    def flag(mask: pd.Series, why: str) -> None:
        reason.loc[mask & (reason == "")] = why

    for column, kind in contract.columns.items():
        typed[column], bad = _typed(frame[column], kind)
        flag(bad, f"{column}: not a valid {kind}")
        if column in contract.keys:
            flag(frame[column].isna(), f"{column}: null key")
        else:
            flag(frame[column].isna(), f"{column}: missing value")
    for column, low in contract.min.items():
        flag(typed[column] < low, f"{column}: below the minimum {low:g}")
    for column, high in contract.max.items():
        flag(typed[column] > high, f"{column}: above the maximum {high:g}")
    if contract.date_column:
        dates = typed[contract.date_column]
        flag(dates > pd.Timestamp(run_date), f"{contract.date_column}: dated after the run date {run_date}")
        flag(dates.notna() & (dates != pd.Timestamp(day)),
             f"{contract.date_column}: not the delivery's day {day}")
    ok = reason == ""
    # Exact copies of a row: keep the first, quarantine the copies. Same key with different values: which
    # one is right is unknown, so every row of that key is quarantined.
    copies = frame.loc[ok].duplicated(keep="first")
    flag(copies.reindex(frame.index, fill_value=False), "exact copy of an earlier row in the file")
    ok = reason == ""
    conflicting = typed[contract.keys].loc[ok].duplicated(keep=False)
    flag(conflicting.reindex(frame.index, fill_value=False),
         f"conflicting rows for one key {contract.keys} in the file")
    if landed:
        keys = typed[contract.keys].apply(
            lambda r: tuple(v.date() if k == contract.date_column else v for k, v in r.items()), axis=1)
        flag(keys.isin(landed), f"key {contract.keys} already landed from an earlier delivery")
    return typed, reason


REFERENCE_DAYS = 90
MIN_LOG_SCALE = 0.25


def _reference(db: Any, table: str, contract: FileTableSpec, day: date) -> pd.DataFrame | None:
    """The table's landed rows of the REFERENCE_DAYS days before ``day``: what 'normal' looks like."""
    from datetime import timedelta

    from mlplatform.warehouse import table_exists

    if contract.kind != "fact" or not table_exists(db, C.RAW_SCHEMA, table):
        return None
    return db.read_frame(f"select * from {C.RAW_SCHEMA}.{table} where cast({contract.date_column} as date) "
                         "between ? and ?", [day - timedelta(days=REFERENCE_DAYS), day - timedelta(days=1)])


def _outlier_warnings(good: pd.DataFrame, contract: FileTableSpec, uri: str,
                      reference: pd.DataFrame | None, pii: frozenset[str] = frozenset()) -> list[str]:
    """Extreme values land, but are reported: each value against its own series' recent history.

    The score is a robust z (median / MAD) on a signed log scale, per series (the keys without the
    date). Why per series and logged: sales are heavy-tailed across series (a best-seller sells 100x the
    median SKU), so a cross-sectional score flags every delivery; against its own history only a jump of
    orders of magnitude stands out. Without history (the first deliveries) nothing is scored. PII
    columns are not scored, and a series key that is PII is not quoted.
    """
    import numpy as np

    if reference is None or reference.empty or good.empty:
        return []
    series = [k for k in contract.keys if k != contract.date_column]
    out = []
    for column, kind in contract.columns.items():
        if kind not in ("integer", "number") or column in {*contract.keys, *pii} or column not in reference.columns:
            continue
        log = lambda x: np.sign(x) * np.log1p(np.abs(x))  # noqa: E731 - the scale, named once
        ref = reference[[*series, column]].assign(v=log(reference[column].astype(float)))
        stats = ref.groupby(series)["v"].agg(
            median="median", mad=lambda v: float(np.median(np.abs(v - np.median(v)))) or float(np.mean(np.abs(v - np.median(v)))))
        new = good[[*series, column]].assign(v=log(good[column].astype(float))).join(stats, on=series)
        # A floor on the scale (0.25 on the log scale, about +-30 %): a near-constant series such as a
        # list price would otherwise call any promotion an outlier.
        scale = (1.4826 * new["mad"]).clip(lower=MIN_LOG_SCALE)
        z = ((new["v"] - new["median"]).abs() / scale).fillna(0.0)
        hits = new.loc[z > contract.outlier_z]
        if len(hits):
            worst = hits.loc[z[hits.index].idxmax()]
            out.append(f"{uri}: {len(hits)} extreme value(s) in {column} against their series' last "
                       f"{REFERENCE_DAYS} days (robust z > {contract.outlier_z:g} on a log scale; e.g. "
                       f"{worst[column]:g} for {privacy.redact_record(dict(worst[series]), pii)}); landed, "
                       "check upstream")
    return out


def check_file(store: ObjectStore, table: str, contract: FileTableSpec, key: str, day: date,
               run_date: date, landed: set[tuple] | None = None, reference: pd.DataFrame | None = None,
               pii: frozenset[str] = frozenset()) -> FileCheck:
    """Read and check one delivered file; raise DataQualityError for a blocking problem.

    ``pii``: the spec's PII columns; their values are never quoted (see the module docstring).
    """
    from mlplatform.storage import sha256_hex

    uri = store.uri(key)
    data = store.get_bytes(key)
    frame = _read_parquet(data, uri, pii) if contract.format == "parquet" else _read_csv(data, contract, uri, pii)
    frame.columns = [str(c).strip() for c in frame.columns]
    check = FileCheck(table, key, day, sha256_hex(data), pii_values=privacy.pii_values(frame, pii))
    check.warnings += _check_columns(frame, contract, uri, pii)
    frame = frame[list(contract.columns)]
    typed, reason = _reasons(frame, contract, day, run_date, landed or set())
    rejected = reason != ""
    if rejected.any():
        quarantined = frame.loc[rejected].copy()
        quarantined["reason"] = reason[rejected]
        quarantined["source_file"] = uri
        quarantined["source_row"] = quarantined.index + 2  # 1-based, after the header line
        check.quarantined = quarantined.reset_index(drop=True)
    check.good = typed.loc[~rejected].reset_index(drop=True)
    check.warnings += _outlier_warnings(check.good, contract, uri, reference, pii)
    check.warnings = [privacy.scrub_text(w, check.pii_values) for w in check.warnings]
    return check


# ------------------------------------------------------------------------------------------ discovery


def _deliveries(store: ObjectStore, inbox: str, table: str, run_date: date) -> list[tuple[str, date]]:
    """(key, day) of every file delivered for ``table`` on a day up to ``run_date``, in day/key order."""
    out = []
    for key in store.list_keys(f"{inbox}/{table}/"):
        match = _DAY.search(key)
        if match and date.fromisoformat(match.group(1)) <= run_date:
            out.append((key, date.fromisoformat(match.group(1))))
    return sorted(out, key=lambda kd: (kd[1], kd[0]))


def _ingested(db: Any) -> dict[str, str]:
    return {key: sha for key, sha in db.fetchall(f"select file_key, sha256 from {INGESTED_TABLE}")}


def _landed_fact_days(db: Any, table: str) -> set[date]:
    from mlplatform.warehouse import _as_date

    return {_as_date(d) for (d,) in db.fetchall(
        f"select distinct day from {INGESTED_TABLE} where tbl = ? and rows_landed > 0", [table])}


# ------------------------------------------------------------------------------------------ landing


def _keys_of(check: FileCheck, contract: FileTableSpec) -> set[tuple]:
    """Keys of a checked file's good rows (so two new files of one day cannot land the same key twice)."""
    if check.good is None or check.good.empty or contract.kind != "fact":
        return set()
    frame = check.good[contract.keys].copy()
    frame[contract.date_column] = frame[contract.date_column].dt.date
    return set(frame.itertuples(index=False, name=None))


def _plan(spec: UseCaseSpec, run_date: date, store: ObjectStore, db: Any) -> list[FileCheck]:
    """Check every new file (blocking problems raise here, before anything is written)."""
    files = spec.source.files
    done, checks = _ingested(db), []
    for table, contract in files.tables.items():
        deliveries = _deliveries(store, files.inbox, table, run_date)
        if contract.kind == "fact" and not any(day == run_date for _, day in deliveries):
            raise DataQualityError(
                f"{spec.name}: no delivery of {table} for {run_date} under "
                f"{store.uri(f'{files.inbox}/{table}/day={run_date}/')}; the source has not delivered that day "
                "yet (the task retries; a later run succeeds once it arrives)")
        if contract.kind == "dimension":
            deliveries = deliveries[-1:]  # the latest delivery replaces the table
        for key, day in deliveries:
            if key in done:
                continue
            landed = _landed_keys(db, table, contract, day) if contract.kind == "fact" else set()
            landed |= {k for c in checks if c.table == table and c.day == day for k in _keys_of(c, contract)}
            reference = _reference(db, table, contract, day) if contract.kind == "fact" else None
            checks.append(check_file(store, table, contract, key, day, run_date, landed, reference,
                                     privacy.pii_columns(spec)))
    for table, contract in files.tables.items():
        todays = [c for c in checks if c.table == table and c.day == run_date]
        if contract.kind == "fact" and todays and not any(len(c.good) for c in todays) \
                and not _landed_keys(db, table, contract, run_date):
            raise _blocking(", ".join(store.uri(c.key) for c in todays), f"no valid row for {run_date} "
                            f"({sum(c.n_quarantined for c in todays)} quarantined); an empty day is not a "
                            "plausible delivery")
    return checks


def _late_warnings(checks: list[FileCheck], spec: UseCaseSpec, run_date: date, db: Any, store: ObjectStore) -> list[str]:
    out = []
    for table, contract in spec.source.files.tables.items():
        if contract.kind != "fact":
            continue
        landed = _landed_fact_days(db, table)
        for check in checks:
            if check.table == table and check.day < run_date and check.day in landed and not check.good.empty:
                out.append(f"{store.uri(check.key)}: {len(check.good)} late row(s) for {check.day}, a day landed "
                           "before; partitions published since then did not see them (rerun those dates to "
                           "republish)")
    return out


def _write_quarantine(spec: UseCaseSpec, run_date: date, store: ObjectStore, checks: list[FileCheck]) -> list[dict]:
    prefix = f"{spec.name}/quarantine/run_date={run_date.isoformat()}"
    out = []
    for check in checks:
        if not check.n_quarantined:
            continue
        name = check.key.rsplit("/", 1)[1].rsplit(".", 1)[0]
        put = store.put_parquet(f"{prefix}/{check.table}/{check.day}-{name}-{check.sha256[:8]}.parquet",
                                check.quarantined)
        reasons = check.quarantined["reason"].value_counts().to_dict()
        out.append({"file": store.uri(check.key), "uri": store.uri(put["key"]), "rows": check.n_quarantined,
                    "reasons": {str(k): int(v) for k, v in sorted(reasons.items())}})
    return out


def _land(db: Any, spec: UseCaseSpec, run_date: date, checks: list[FileCheck]) -> dict[str, int]:
    from mlplatform.warehouse import table_exists

    rows: dict[str, int] = {}
    for check in checks:
        contract = spec.source.files.tables[check.table]
        good = check.good
        if contract.date_column is not None:
            good = good.assign(**{contract.date_column: good[contract.date_column].dt.date})
        if contract.kind == "dimension" and table_exists(db, C.RAW_SCHEMA, check.table):
            db.execute(f"delete from {C.RAW_SCHEMA}.{check.table}")
        if not good.empty:
            db.insert_frame(check.table, good)
        rows[check.table] = rows.get(check.table, 0) + len(good)
        db.execute(f"insert into {INGESTED_TABLE} values (?, ?, ?, ?, ?, ?, ?)",
                   [check.table, check.key, check.sha256, check.day, len(good), check.n_quarantined, run_date])
    return rows


def land_files(spec: UseCaseSpec, run_date: date, settings: Settings, store: ObjectStore | None) -> dict[str, Any]:
    """Check and land every new delivery up to ``run_date``; the landing report (also stored in S3)."""
    from mlplatform.warehouse import landing_transaction

    if store is None:
        raise PlatformError(f"{spec.name}: a files source needs the object store its deliveries are in")
    with landing_transaction(settings, f"land.files.{spec.source.files.inbox}", (INGESTED_DDL,)) as db:
        checks = _plan(spec, run_date, store, db)
        warnings = [w for c in checks for w in c.warnings] + _late_warnings(checks, spec, run_date, db, store)
        quarantine = _write_quarantine(spec, run_date, store, checks)
        rows = _land(db, spec, run_date, checks)
    report = {"use_case": spec.name, "run_date": run_date.isoformat(), "files": len(checks),
              "rows_landed": sum(rows.values()), "rows_by_table": rows,
              "rows_quarantined": sum(q["rows"] for q in quarantine), "quarantine": quarantine,
              "warnings": warnings, "last_day": run_date.isoformat(), "days_landed": len({c.day for c in checks})}
    report = privacy.scrub(report, frozenset().union(*(c.pii_values for c in checks)))
    store.put_json(f"{spec.name}/landing/run_date={run_date.isoformat()}/report.json", report)
    return report
