"""A file-fed variant of the demand use case, and deliveries built from the real generator's rows.

Upstream delivers one CSV per day of sales (and one file per dimension) under the spec's inbox, as a
file-drop integration would; the bad-input tests then deliver a corrupted file for one day.
"""

from __future__ import annotations

import io
from datetime import date, timedelta
from typing import Any

from mlplatform import datagen
from mlplatform.spec import FilesSourceSpec, FileTableSpec, SourceSpec, UseCaseSpec, get_spec
from mlplatform.storage import ObjectStore

HISTORY_START = date(2024, 6, 1)
FIRST_RUN = date(2025, 6, 30)
NEXT_DAY = FIRST_RUN + timedelta(days=1)
PARAMS = {"n_stores": 4, "n_skus": 12, "seed": 42}
INBOX = "inbox/demand"

SALES_COLUMNS = {"sales_date": "date", "store_id": "string", "sku_id": "string", "units_sold": "integer",
                 "unit_price": "number", "list_price": "number", "on_promotion": "boolean",
                 "stockout_flag": "boolean"}


def make_spec() -> UseCaseSpec:
    base = get_spec("demand_forecast")
    tables = {
        "retail_sales": FileTableSpec(kind="fact", columns=SALES_COLUMNS, date_column="sales_date",
                                      keys=["sales_date", "store_id", "sku_id"],
                                      min={"units_sold": 0, "unit_price": 0.0001, "list_price": 0.0001},
                                      max={"units_sold": 100000}),
        "stores": FileTableSpec(kind="dimension", keys=["store_id"],
                                columns={"store_id": "string", "region": "string", "store_format": "string",
                                         "opened_on": "date"}),
        "products": FileTableSpec(kind="dimension", keys=["sku_id"],
                                  columns={"sku_id": "string", "category": "string", "list_price": "number"}),
    }
    source = SourceSpec(type="files", history_start=HISTORY_START,
                        files=FilesSourceSpec(inbox=INBOX, tables=tables))
    return base.model_copy(update={"source": source})


def sales(day: date) -> Any:
    return datagen.generate_sales(day, day, **PARAMS)


def to_csv(frame: Any, sep: str = ",", encoding: str = "utf-8") -> bytes:
    out = frame.copy()
    for column in out.columns:
        if str(out[column].dtype).startswith("datetime64"):
            out[column] = out[column].dt.strftime("%Y-%m-%d")
    buffer = io.StringIO()
    out.to_csv(buffer, index=False, sep=sep)
    return buffer.getvalue().encode(encoding)


def delivery_key(table: str, day: date, name: str = "part-000.csv") -> str:
    return f"{INBOX}/{table}/day={day.isoformat()}/{name}"


def deliver(store: ObjectStore, table: str, day: date, data: bytes, name: str = "part-000.csv") -> str:
    key = delivery_key(table, day, name)
    store.put_bytes(key, data)
    return key


def deliver_history(store: ObjectStore, end: date) -> None:
    """Every day's sales file from HISTORY_START to ``end``, and the dimensions once."""
    dims = datagen.dimension_tables(SourceSpec(generator="retail_sales", history_start=HISTORY_START,
                                               params=PARAMS))
    for table, frame in dims.items():
        deliver(store, table, HISTORY_START, to_csv(frame))
    all_sales = datagen.generate_sales(HISTORY_START, end, **PARAMS)
    for day, rows in all_sales.groupby(all_sales["sales_date"].dt.date):
        deliver(store, "retail_sales", day, to_csv(rows))
