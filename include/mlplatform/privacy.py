"""Personal data (``privacy.pii_columns`` in a spec) kept out of reports, logs and error messages.

Raw deliveries may carry columns such as a customer's email or name. Their rows may land (the warehouse
and the quarantine hold data, not reports), but nothing written for people to read may quote their
values: landing and quarantine reports, validation results, drift reports, model cards, run summaries,
log lines and exception messages. Spec validation already keeps PII columns out of model features, keys
and the target; the helpers here cover the places where arbitrary raw values could still be quoted:

* :func:`without_pii` drops PII columns from a column list (drift monitoring, reference statistics);
* :func:`redact_validation` removes the sample values GX quotes for expectations on PII columns;
* :func:`pii_values` + :func:`scrub` / :func:`scrub_text` replace every known PII value in a report or
  message with :data:`REDACTED` (a safety net when a value reaches text by an unforeseen path);
* :func:`scrub_quoted` and :func:`scrub_db_error` strip the quoted data fragments parsers and Postgres
  put in their error messages, where the values are not known in advance.

Imports nothing heavy (pandas only inside functions), so stage modules can use it freely.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from mlplatform.spec import UseCaseSpec
    from mlplatform.validation import ValidationReport

REDACTED = "[redacted]"
# Shorter values ('F', 'NY') would redact unrelated text everywhere without protecting anyone: a value
# that short does not identify a person on its own.
MIN_VALUE_LENGTH = 3
# The identifier shape every contract column has (spec.IDENT_PATTERN); a header name of another shape
# (an email, a name with spaces, a date) is more likely a data row than a column name.
_IDENT = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
# Quoted fragments longer than a delimiter: 'abc', "abc" (parser messages quote the offending text).
_QUOTED = re.compile(r"""(['"])(?:(?!\1).){2,}\1""")
# Postgres error details that quote row values: 'Failing row contains (...)', 'Key (col)=(value) ...'.
_PG_DETAIL = re.compile(r"DETAIL:.*", re.DOTALL)
# A literal Postgres quotes after a colon ('invalid input syntax for type integer: "abc"'); identifiers
# (column "x", relation "raw.t") are quoted without one and stay readable.
_PG_LITERAL = re.compile(r'(:\s*)"[^"]*"')


def pii_columns(spec: UseCaseSpec) -> frozenset[str]:
    """The spec's PII columns as a set (empty for most use cases)."""
    return frozenset(spec.privacy.pii_columns)


def without_pii(columns: Iterable[str], pii: Collection[str]) -> list[str]:
    """``columns`` in their order, minus PII columns: what may be profiled and shown to people."""
    return [c for c in columns if c not in pii]


def looks_like_column_name(name: str) -> bool:
    """True for identifier-shaped names (how contract columns are spelled); data values rarely are."""
    return bool(_IDENT.match(name))


def pii_values(frame: pd.DataFrame, pii: Collection[str]) -> frozenset[str]:
    """Distinct values (as text, stripped) of the PII columns present in ``frame``.

    Why collect them: a report is scrubbed of exactly these strings before it is stored, whatever path
    a value took into it.
    """
    out: set[str] = set()
    for column in [c for c in frame.columns if c in pii]:
        for value in frame[column].dropna().unique():
            text = str(value).strip()
            if len(text) >= MIN_VALUE_LENGTH:
                out.add(text)
    return frozenset(out)


def scrub_text(text: str, values: Collection[str]) -> str:
    """``text`` with every occurrence of a PII value replaced by :data:`REDACTED` (longest first, so
    a value containing another is replaced whole)."""
    if not values or not text:
        return text
    for value in sorted(values, key=len, reverse=True):
        if value in text:
            text = text.replace(value, REDACTED)
    return text


def scrub(obj: Any, values: Collection[str]) -> Any:
    """A JSON-like structure (dicts, lists, strings) with every PII value scrubbed, keys included."""
    if not values:
        return obj
    if isinstance(obj, str):
        return scrub_text(obj, values)
    if isinstance(obj, dict):
        return {scrub(k, values): scrub(v, values) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [scrub(v, values) for v in obj]
    return obj


def scrub_quoted(text: str) -> str:
    """``text`` with quoted fragments ('...', "...") replaced: for messages that quote unknown data."""
    return _QUOTED.sub(REDACTED, text)


def scrub_db_error(text: str) -> str:
    """A database error message without the parts that quote row values.

    Postgres appends ``DETAIL: Failing row contains (...)`` or ``Key (col)=(value)`` and quotes the
    offending literal in e.g. ``invalid input syntax for type integer: "abc"``; raw rows may hold
    personal data, and the message ends up in task logs, so both are removed. Quoted identifiers
    (``column "x"``) stay: they name the problem.
    """
    text = _PG_DETAIL.sub("DETAIL: (withheld: may quote row values)", text)
    return _PG_LITERAL.sub(lambda m: m.group(1) + REDACTED, text)


def redact_record(record: dict[str, Any], pii: Collection[str]) -> dict[str, Any]:
    """A row-like mapping with the values of PII columns replaced (for messages quoting a row or key)."""
    return {k: (REDACTED if k in pii else v) for k, v in record.items()}


def redact_validation(report: ValidationReport, pii: Collection[str]) -> ValidationReport:
    """The report with no value of a PII column: sample values and observed values are replaced.

    Why: GX quotes offending values (``sample_values``) and statistics (``observed_value``); for an
    expectation on a PII column of the features mart those are personal data, and the result is stored
    and quoted in the error that stops the run. Counts, percentages and row positions stay.
    """
    if not pii:
        return report
    results = [_redact_result(r, pii) for r in report.results]
    return replace(report, results=results)


def _redact_result(result: dict[str, Any], pii: Collection[str]) -> dict[str, Any]:
    if not set(result.get("columns") or ()) & set(pii):
        return result
    redacted = dict(result)
    if redacted.get("sample_values"):
        redacted["sample_values"] = [REDACTED]
    if redacted.get("observed_value") is not None:
        redacted["observed_value"] = REDACTED
    redacted["redacted"] = "values of privacy.pii_columns are not reported"
    return redacted
