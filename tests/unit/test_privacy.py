"""PII columns (``privacy.pii_columns``): their values never reach a report, a warning or an error.

Unit level: the redaction helpers, and the ingest checks that quote file content (header names,
undecodable bytes, outlier examples). The end-to-end guarantee (a real files-fed run) is
tests/reliability/test_pii_never_reported.py.
"""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from mlplatform import ingest, privacy
from mlplatform.errors import DataQualityError
from mlplatform.spec import FileTableSpec
from mlplatform.validation import ValidationReport, describe_failure

EMAIL, NAME = "alice.smith@example.com", "Alice Smith"
PII = frozenset({"customer_email", "customer_name"})
CONTRACT = FileTableSpec(kind="fact", columns={"order_date": "date", "order_id": "string", "customer_email": "string",
                                               "customer_name": "string", "units": "integer"},
                         keys=["order_date", "order_id"], date_column="order_date", min={"units": 0})
DAY = date(2025, 7, 1)


class _Store:
    """Just what ``ingest.check_file`` reads: one delivered file."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def uri(self, key: str) -> str:
        return f"s3://bucket/{key}"

    def get_bytes(self, key: str) -> bytes:
        return self.data


def _csv(*rows: str, header: str = "order_date,order_id,customer_email,customer_name,units") -> bytes:
    return "\n".join([header, *rows, ""]).encode()


def test_scrub_replaces_every_value_in_nested_reports_and_keys():
    report = {"warnings": [f"bad row for {EMAIL}"], "reasons": {f"{NAME}: x": 1}, "rows": 3}
    assert privacy.scrub(report, {EMAIL, NAME}) == {"warnings": ["bad row for [redacted]"],
                                                    "reasons": {"[redacted]: x": 1}, "rows": 3}
    assert privacy.scrub(report, set()) is report


def test_pii_values_skip_nulls_and_values_too_short_to_identify_anyone():
    frame = pd.DataFrame({"customer_email": [EMAIL, None, "ab"], "units": ["1", "2", "3"]})
    assert privacy.pii_values(frame, PII) == {EMAIL}
    assert privacy.without_pii(["units", "customer_email", "x"], PII) == ["units", "x"]


def test_database_errors_lose_quoted_row_values_but_keep_identifiers():
    message = ('null value in column "units" of relation "orders" violates not-null constraint DETAIL: Failing row '
               f'contains (2025-07-01, o1, {EMAIL}, null). invalid input syntax for type integer: "{NAME}"')
    scrubbed = privacy.scrub_db_error(message)
    assert EMAIL not in scrubbed and NAME not in scrubbed
    assert 'column "units"' in scrubbed and "withheld" in scrubbed


def test_validation_results_on_pii_columns_lose_their_samples_but_keep_counts():
    row = {"expectation": "expect_column_values_to_match_regex", "column": "customer_email",
           "columns": ["customer_email"], "severity": "critical", "success": False, "unexpected_count": 2,
           "unexpected_percent": 1.0, "sample_values": [EMAIL], "sample_rows": [3], "observed_value": None,
           "error": None, "why": None}
    other = {**row, "column": "units", "columns": ["units"], "sample_values": [-1]}
    report = ValidationReport("suite", False, 2, 10, [row, other])
    redacted = privacy.redact_validation(report, PII)
    assert EMAIL not in str(redacted.to_dict()) and EMAIL not in describe_failure(redacted.results[0])
    assert redacted.results[0]["unexpected_count"] == 2 and redacted.results[1] == other
    assert report.results[0]["sample_values"] == [EMAIL]  # the original is not modified
    assert privacy.redact_validation(report, frozenset()) is report


def test_a_headerless_file_does_not_quote_its_first_row_in_the_error():
    data = _csv("2025-07-02,o2,bob@example.com,Bob Jones,2", header=f"2025-07-01,o1,{EMAIL},{NAME},1")
    with pytest.raises(DataQualityError) as failure:
        ingest.check_file(_Store(data), "orders", CONTRACT, "inbox/orders/day=2025-07-01/a.csv", DAY, DAY, pii=PII)
    message = str(failure.value)
    assert EMAIL not in message and NAME not in message and "withheld" in message
    assert "missing column(s) 'order_date'" in message  # the problem is still named


def test_without_pii_the_header_is_quoted_as_before():
    data = _csv("2025-07-01,o1,x,y,1", header="order_date,order_id,customer_email,customer_nme,units")
    with pytest.raises(DataQualityError, match=r"'customer_name' \(renamed to 'customer_nme'\?\)"):
        ingest.check_file(_Store(data), "orders", CONTRACT, "k/day=2025-07-01/a.csv", DAY, DAY)


def test_extra_columns_that_look_like_data_are_withheld():
    frame = pd.DataFrame(columns=[*CONTRACT.columns, "channel", NAME])
    [warning] = ingest._check_columns(frame, CONTRACT, "s3://b/k", PII)
    assert "['channel']" in warning and NAME not in warning and "1 name(s) withheld" in warning


def test_undecodable_bytes_are_not_quoted_when_the_spec_holds_pii():
    data = _csv(f"2025-07-01,o1,{EMAIL},Jos\xe9,1").replace("Jos\xe9".encode(), "Jos\xe9".encode("latin-1"))
    with pytest.raises(DataQualityError) as failure:
        ingest.check_file(_Store(data), "orders", CONTRACT, "k/day=2025-07-01/a.csv", DAY, DAY, pii=PII)
    assert "not valid utf-8 text (byte" in str(failure.value) and "xe9" not in str(failure.value)
    with pytest.raises(DataQualityError, match="xe9"):  # without PII the bytes still help debugging
        ingest.check_file(_Store(data), "orders", CONTRACT, "k/day=2025-07-01/a.csv", DAY, DAY)


def test_quarantine_reasons_name_the_rule_never_the_value_and_values_are_collected_for_scrubbing():
    data = _csv(f"2025-07-01,o1,{EMAIL},{NAME},-3", f"2025-07-01,o2,{EMAIL},{NAME},abc",
                "2025-07-01,o3,carol@example.com,Carol King,2")
    check = ingest.check_file(_Store(data), "orders", CONTRACT, "k/day=2025-07-01/a.csv", DAY, DAY, pii=PII)
    assert list(check.quarantined["reason"]) == ["units: below the minimum 0", "units: not a valid integer"]
    assert set(check.quarantined["customer_email"]) == {EMAIL}  # the rows themselves are data: kept
    assert check.pii_values == {EMAIL, NAME, "carol@example.com", "Carol King"}


def test_outlier_examples_do_not_quote_a_pii_key():
    contract = FileTableSpec(kind="fact", columns={"d": "date", "customer_email": "string", "units": "integer"},
                             keys=["d", "customer_email"], date_column="d")
    reference = pd.DataFrame({"customer_email": [EMAIL] * 30, "units": [10] * 30})
    good = pd.DataFrame({"customer_email": [EMAIL], "units": [10**6]})
    [warning] = ingest._outlier_warnings(good, contract, "s3://b/k", reference, PII)
    assert "extreme value(s) in units" in warning and EMAIL not in warning and "[redacted]" in warning
