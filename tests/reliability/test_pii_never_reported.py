"""Personal data delivered in a raw file never reaches a report, a log line or an error message.

The file-fed demand use case (files_support) gets a second fact table, ``customer_orders``, whose
``customer_email`` and ``customer_name`` columns the spec declares in ``privacy.pii_columns``. Two full
pipeline runs (FIRST_RUN trains the champion; NEXT_DAY monitors drift against it and publishes) land
deliveries in which some rows are bad and quarantined; then a delivery without its header line stops
the third day's landing with an error. Everything the platform wrote is then searched for the PII
values: they may only be in the delivered files and the quarantined rows (data, not reports).
"""

from __future__ import annotations

import io
import json
import logging
from datetime import date, timedelta

import files_support as fs
import pandas as pd
import pytest
import reliability_support as rs

from mlplatform import pipeline
from mlplatform.cli import format_summary
from mlplatform.errors import DataQualityError
from mlplatform.spec import FileTableSpec, PrivacySpec, UseCaseSpec
from mlplatform.storage import ObjectStore

pytestmark = pytest.mark.reliability

PII = ["customer_email", "customer_name"]
ORDERS = FileTableSpec(kind="fact", columns={"order_date": "date", "order_id": "string", "store_id": "string",
                                             "customer_email": "string", "customer_name": "string",
                                             "units": "integer"},
                       keys=["order_date", "order_id"], date_column="order_date", min={"units": 0})
ERROR_DAY = fs.NEXT_DAY + timedelta(days=1)


def _person(day: date, i: int) -> tuple[str, str]:
    return f"priv.person{day:%m%d}x{i}@example.org", f"Private Person{day:%m%d}x{i}"


def _spec() -> UseCaseSpec:
    base = fs.make_spec()
    files = base.source.files.model_copy(update={"tables": {**base.source.files.tables, "customer_orders": ORDERS}})
    spec = base.model_copy(update={"source": base.source.model_copy(update={"files": files}),
                                   "privacy": PrivacySpec(pii_columns=PII)})
    return UseCaseSpec.model_validate(spec.model_dump())  # the governance checks accept it


def _orders(day: date) -> tuple[bytes, set[str]]:
    """Eight good orders and four bad ones (negative, not a number, two conflicting for one key)."""
    rows, values = [], set()
    for i in range(12):
        email, name = _person(day, i)
        values |= {email, name}
        units = {8: "-3", 9: "lots", 10: "4", 11: "5"}.get(i, str(i + 1))
        order = "o10" if i == 11 else f"o{i}"  # rows 10 and 11 conflict on one key
        rows.append(f"{day},{order},s01,{email},{name},{units}")
    header = ",".join(ORDERS.columns)
    return "\n".join([header, *rows, ""]).encode(), values


def _headerless(day: date) -> tuple[bytes, set[str]]:
    data, values = _orders(day)
    return data.split(b"\n", 1)[1], values


def _leaks(key: str, data: bytes, values: set[str]) -> set[str]:
    """PII values found in one object (Parquet is searched cell by cell: its pages are compressed)."""
    if key.endswith(".parquet"):
        frame = pd.read_parquet(io.BytesIO(data))
        text = " ".join(map(str, frame.columns)) + " " + frame.astype(str).to_csv(index=False)
        return {v for v in values if v in text}
    return {v for v in values if v.encode() in data or json.dumps(v)[1:-1].encode() in data}


def _run(spec: UseCaseSpec, day: date, settings, store: ObjectStore) -> tuple[dict, set[str]]:
    fs.deliver(store, "retail_sales", day, fs.to_csv(fs.sales(day)))
    data, values = _orders(day)
    fs.deliver(store, "customer_orders", day, data)
    return rs.full_run(spec, day, settings, store), values


def test_pii_values_reach_no_report_log_or_error(s3_server, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    caplog.set_level(logging.DEBUG, logger="mlplatform")
    spec, settings, store = _spec(), rs.settings_for(tmp_path / "data"), rs.new_store(s3_server.client())
    fs.deliver_history(store, fs.FIRST_RUN - timedelta(days=1))
    first, values = _run(spec, fs.FIRST_RUN, settings, store)
    second, more = _run(spec, fs.NEXT_DAY, settings, store)
    values |= more
    summaries = [format_summary(pipeline.run_summary(spec, d, store)) for d in (fs.FIRST_RUN, fs.NEXT_DAY)]

    fs.deliver(store, "retail_sales", ERROR_DAY, fs.to_csv(fs.sales(ERROR_DAY)))
    data, more = _headerless(ERROR_DAY)
    values |= more
    fs.deliver(store, "customer_orders", ERROR_DAY, data)
    with pytest.raises(DataQualityError) as failure:
        pipeline.land_raw(spec, ERROR_DAY, settings, store)

    # the scenario did what it should: rows quarantined, a drift report against the champion, an error
    landing = store.get_json(f"{spec.name}/landing/run_date={fs.NEXT_DAY}/report.json")
    assert landing["rows_quarantined"] == 4 and landing["rows_by_table"]["customer_orders"] == 8
    assert second["monitor_drift"]["report_uri"] and first["train_model"]["version"]
    message = str(failure.value)
    assert "customer_orders" in message and "missing column(s)" in message and "withheld" in message

    objects = rs.bucket_contents(store)
    data_prefixes = (f"{fs.INBOX}/", f"{spec.name}/quarantine/")
    leaks = {k: found for k, v in objects.items() if not k.startswith(data_prefixes) and (found := _leaks(k, v, values))}
    assert not leaks, leaks
    quarantine = {k: v for k, v in objects.items() if k.startswith(f"{spec.name}/quarantine/")}
    assert any(_leaks(k, v, values) for k, v in quarantine.items())  # the check would see a value if it leaked
    for key, data in quarantine.items():
        reasons = " ".join(pd.read_parquet(io.BytesIO(data))["reason"])
        assert not {v for v in values if v in reasons}, key

    assert not {v for v in values if v in message}, message
    logged = "\n".join(f"{r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    assert caplog.records and not {v for v in values if v in logged}
    returned = json.dumps([first, second], default=str) + "\n".join(summaries)
    assert not {v for v in values if v in returned}
