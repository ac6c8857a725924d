"""The bad-input catalogue for delivered files: each case's verdict (blocking, quarantined or warning).

A file-fed demand use case (``source.type: files``, files_support) runs once for FIRST_RUN on clean
deliveries: trained, scored, published. Each test then works on a private copy of that world (its own
warehouse file and bucket), delivers one bad file for NEXT_DAY the way upstream would, and runs
``land_raw`` for NEXT_DAY. Every case checks what the issue asks: a clear error or report naming the
problem and the file, the delivered file kept as it was, nothing landed or published from bad rows, and
the earlier publication still valid.

Verdicts (see mlplatform.ingest and spec.FileTableSpec):
  blocking     missing column, renamed column, unreadable encoding, wrong delimiter, corrupt file, an
               empty day, no delivery for the run date
  quarantined  wrong types, null keys, duplicate keys, negative or absurd quantities, dates in the
               future or outside the file's day, a truncated last line, a key landed before
  warning      extra column (dropped), extreme outliers, late rows for a past day
"""

from __future__ import annotations

import io
from datetime import timedelta

import files_support as fs
import pandas as pd
import pytest
import reliability_support as rs
import yaml

from mlplatform import pipeline
from mlplatform.cli import format_summary
from mlplatform.errors import DataQualityError, SpecError
from mlplatform.publishing import read_manifest, read_published
from mlplatform.spec import FilesSourceSpec, FileTableSpec, SourceSpec, load_spec
from mlplatform.storage import Layout

pytestmark = pytest.mark.reliability

@pytest.fixture(scope="module")
def files_world(s3_server, tmp_path_factory):
    """Clean deliveries up to FIRST_RUN, then a full run for FIRST_RUN."""
    root = tmp_path_factory.mktemp("files-world")
    spec, settings, store = fs.make_spec(), rs.settings_for(root / "data"), rs.new_store(s3_server.client())
    fs.deliver_history(store, fs.FIRST_RUN)
    runs = rs.full_run(spec, fs.FIRST_RUN, settings, store)
    golden = rs.copy_data_dir(settings.data_dir, root / "golden")
    return {"spec": spec, "store": store, "golden": golden, "runs": runs, "objects": rs.bucket_contents(store)}


@pytest.fixture
def world(files_world, tmp_path):
    """A private copy: its own warehouse and bucket, plus the clean delivery of every table but the one
    a test corrupts (tests deliver NEXT_DAY's sales file themselves)."""
    settings = rs.settings_for(rs.copy_data_dir(files_world["golden"], tmp_path / "data"))
    store = rs.clone_bucket(files_world["store"])
    return {"spec": files_world["spec"], "settings": settings, "store": store,
            "objects": rs.bucket_contents(store), "raw": _raw(settings)}


def _raw(settings) -> pd.DataFrame:
    return rs.raw_rows(settings)


def _deliver(world, data: bytes, day=fs.NEXT_DAY, name: str = "part-000.csv") -> str:
    key = fs.deliver(world["store"], "retail_sales", day, data, name)
    world.setdefault("delivered", {})[key] = data
    return key


def _land(world) -> dict:
    return pipeline.land_raw(world["spec"], fs.NEXT_DAY, world["settings"], world["store"])


def _assert_blocked(world, key: str, *fragments: str) -> None:
    """Blocking: an error naming the file and the problem; nothing landed, quarantined or published."""
    with pytest.raises(DataQualityError) as failure:
        _land(world)
    message = str(failure.value)
    for fragment in (world["store"].uri(key), *fragments):
        assert fragment in message, (fragment, message)
    _assert_nothing_changed(world)


def _assert_nothing_changed(world) -> None:
    store = world["store"]
    assert _raw(world["settings"]).equals(world["raw"])                       # raw data intact
    expected = {**world["objects"], **world.get("delivered", {})}
    assert rs.bucket_contents(store) == expected                               # delivered file kept as is
    _assert_publication_valid(world)


def _assert_publication_valid(world) -> None:
    spec, store = world["spec"], world["store"]
    prefix = Layout(spec.name).forecasts(fs.FIRST_RUN)
    manifest = read_manifest(store, prefix)
    assert len(read_published(store, prefix)) == manifest["row_count"] > 0


def _quarantine(world, report: dict, reason: str, rows: int) -> pd.DataFrame:
    """The quarantined rows with ``reason``: in the report and in the object it names."""
    entry = next(q for q in report["quarantine"] if reason in "".join(q["reasons"]))
    frame = pd.read_parquet(io.BytesIO(world["store"].get_bytes(rs.key_of(world["store"], entry["uri"]))))
    matching = frame[frame["reason"].str.contains(reason, regex=False)]
    assert len(matching) == rows, (reason, entry["reasons"])
    assert (frame["source_file"] == entry["file"]).all()
    return matching


def _assert_landed_only_good_rows(world, report: dict, quarantined: int) -> None:
    raw = _raw(world["settings"])
    new = raw[pd.to_datetime(raw["sales_date"]).dt.date == fs.NEXT_DAY]
    assert report["rows_quarantined"] == quarantined
    assert len(new) == report["rows_by_table"]["retail_sales"] == fs.sales(fs.NEXT_DAY).shape[0] - quarantined
    assert (new["units_sold"] >= 0).all() and new[["store_id", "sku_id"]].notna().all().all()
    assert not raw.duplicated(["sales_date", "store_id", "sku_id"]).any()
    landing = {k: v for k, v in report.items() if not k.startswith("holiday_")}  # land_raw adds the holidays landed
    assert world["store"].get_json(f"{world['spec'].name}/landing/run_date={fs.NEXT_DAY}/report.json") == landing
    _assert_publication_valid(world)


def _bad_rows(column: str, values: list) -> pd.DataFrame:
    frame = fs.sales(fs.NEXT_DAY)
    frame = frame.assign(sales_date=frame["sales_date"].dt.strftime("%Y-%m-%d")).astype(object)
    for row, value in enumerate(values):
        frame.loc[row, column] = value
    return frame


# ----------------------------------------------------------------------------------------- blocking


def test_missing_column_blocks_naming_the_column_and_the_file(world):
    key = _deliver(world, fs.to_csv(fs.sales(fs.NEXT_DAY).drop(columns=["list_price"])))
    _assert_blocked(world, key, "missing column(s) 'list_price'")


def test_renamed_column_blocks_and_suggests_the_rename(world):
    key = _deliver(world, fs.to_csv(fs.sales(fs.NEXT_DAY).rename(columns={"units_sold": "units_sld"})))
    _assert_blocked(world, key, "'units_sold' (renamed to 'units_sld'?)")


def test_wrong_delimiter_blocks_and_names_the_delimiter_found(world):
    key = _deliver(world, fs.to_csv(fs.sales(fs.NEXT_DAY), sep=";"))
    _assert_blocked(world, key, "no ',' delimiter", "it seems to use ';'")


def test_wrong_encoding_blocks_naming_the_encoding(world):
    key = _deliver(world, fs.to_csv(fs.sales(fs.NEXT_DAY), encoding="utf-16"))
    _assert_blocked(world, key, "not valid utf-8 text")


def test_corrupt_file_blocks(world):
    key = _deliver(world, bytes(range(256)) * 8)
    _assert_blocked(world, key, "not valid utf-8 text")


def test_empty_day_blocks(world):
    key = _deliver(world, fs.to_csv(fs.sales(fs.NEXT_DAY).iloc[:0]))
    _assert_blocked(world, key, f"no valid row for {fs.NEXT_DAY}")


def test_no_delivery_for_the_run_date_blocks_as_not_ready(world):
    with pytest.raises(DataQualityError, match=f"no delivery of retail_sales for {fs.NEXT_DAY}"):
        _land(world)
    _assert_nothing_changed(world)


# -------------------------------------------------------------------------------------- quarantined


@pytest.mark.parametrize(("column", "values", "reason"), [
    ("units_sold", ["abc", "1.5", "1e"], "units_sold: not a valid integer"),
    ("unit_price", ["free", "n/a"], "unit_price: not a valid number"),
    ("store_id", [None, None], "store_id: null key"),
    ("units_sold", [-5, -1], "units_sold: below the minimum 0"),
    ("units_sold", [10**7], "units_sold: above the maximum 100000"),
    ("sales_date", [str(fs.NEXT_DAY + timedelta(days=3))], f"dated after the run date {fs.NEXT_DAY}"),
    ("sales_date", [str(fs.NEXT_DAY - timedelta(days=40))], f"not the delivery's day {fs.NEXT_DAY}"),
], ids=["wrong_type_integer", "wrong_type_number", "null_key", "negative", "absurd", "future_date",
        "date_outside_file_day"])
def test_bad_rows_are_quarantined_with_their_reason_and_the_rest_lands(world, column, values, reason):
    frame = _bad_rows(column, values)
    _deliver(world, fs.to_csv(frame))
    report = _land(world)
    rows = _quarantine(world, report, reason, len(values))
    assert set(rows["source_row"]) == {i + 2 for i in range(len(values))}  # line numbers in the file
    _assert_landed_only_good_rows(world, report, len(values))


def test_exact_copies_of_a_row_are_quarantined_and_the_original_lands(world):
    frame = fs.sales(fs.NEXT_DAY)
    _deliver(world, fs.to_csv(pd.concat([frame, frame.iloc[:2]], ignore_index=True)))
    report = _land(world)
    _quarantine(world, report, "exact copy of an earlier row", 2)
    raw = _raw(world["settings"])
    assert (pd.to_datetime(raw["sales_date"]).dt.date == fs.NEXT_DAY).sum() == len(frame)


def test_conflicting_rows_for_one_key_are_all_quarantined(world):
    frame = fs.sales(fs.NEXT_DAY)
    conflict = frame.iloc[:2].assign(units_sold=frame["units_sold"].iloc[:2] + 7)
    _deliver(world, fs.to_csv(pd.concat([frame, conflict], ignore_index=True)))
    report = _land(world)
    _quarantine(world, report, "conflicting rows for one key", 4)  # which of the two is right is unknown
    raw = _raw(world["settings"])
    assert (pd.to_datetime(raw["sales_date"]).dt.date == fs.NEXT_DAY).sum() == len(frame) - 2


def test_truncated_last_line_is_quarantined(world):
    data = fs.to_csv(fs.sales(fs.NEXT_DAY))
    _deliver(world, data[: data.rstrip(b"\n").rfind(b",")])  # the upload was cut inside the last row
    report = _land(world)
    _quarantine(world, report, "stockout_flag: missing value", 1)
    _assert_landed_only_good_rows(world, report, 1)


def test_a_redelivered_key_is_quarantined_not_landed_twice(world):
    _deliver(world, fs.to_csv(fs.sales(fs.NEXT_DAY)))
    _deliver(world, fs.to_csv(fs.sales(fs.NEXT_DAY).iloc[:3]), name="part-001.csv")
    report = _land(world)
    _quarantine(world, report, "already landed from an earlier delivery", 3)
    raw = _raw(world["settings"])
    assert (pd.to_datetime(raw["sales_date"]).dt.date == fs.NEXT_DAY).sum() == len(fs.sales(fs.NEXT_DAY))
    assert not raw.duplicated(["sales_date", "store_id", "sku_id"]).any()


# ----------------------------------------------------------------------------------------- warnings


def test_extra_column_is_dropped_with_a_warning(world):
    key = _deliver(world, fs.to_csv(fs.sales(fs.NEXT_DAY).assign(channel="web")))
    report = _land(world)
    assert len(report["warnings"]) == 1 and world["store"].uri(key) in report["warnings"][0]  # nothing else
    assert "extra column(s) ['channel']" in report["warnings"][0]
    _assert_landed_only_good_rows(world, report, 0)


def test_extreme_outlier_lands_with_a_warning(world):
    key = _deliver(world, fs.to_csv(_bad_rows("units_sold", [90000])))
    report = _land(world)
    assert len(report["warnings"]) == 1, report["warnings"]  # the outlier, and no false alarm
    assert world["store"].uri(key) in report["warnings"][0] and "extreme value(s) in units_sold" in report["warnings"][0]
    _assert_landed_only_good_rows(world, report, 0)


def test_late_rows_for_a_past_day_land_with_a_warning_to_rerun_that_day(s3_server, tmp_path):
    """Landing only (no dbt: a day with missing series would stop at the dbt gate, as it should): day D-1
    arrives without 8 of its rows, which come late, with day D's delivery."""
    spec, settings, store = fs.make_spec(), rs.settings_for(tmp_path / "data"), rs.new_store(s3_server.client())
    before, day = fs.NEXT_DAY - timedelta(days=1), fs.NEXT_DAY
    fs.deliver_history(store, fs.HISTORY_START)  # the dimensions (and the first day)
    for d in (fs.HISTORY_START + timedelta(days=1 + i) for i in range((before - fs.HISTORY_START).days - 1)):
        fs.deliver(store, "retail_sales", d, fs.to_csv(fs.sales(d)))
    fs.deliver(store, "retail_sales", before, fs.to_csv(fs.sales(before).iloc[8:]))
    pipeline.land_raw(spec, before, settings, store)

    fs.deliver(store, "retail_sales", day, fs.to_csv(fs.sales(day)))
    late = fs.deliver(store, "retail_sales", before, fs.to_csv(fs.sales(before).iloc[:8]), name="part-late.csv")
    report = pipeline.land_raw(spec, day, settings, store)
    assert any(store.uri(late) in w and f"8 late row(s) for {before}" in w and "rerun" in w
               for w in report["warnings"]), report["warnings"]
    assert report["rows_quarantined"] == 0
    raw = rs.raw_rows(settings)
    assert (pd.to_datetime(raw["sales_date"]).dt.date == before).sum() == len(fs.sales(before))


# ------------------------------------------------------------------- the run goes on without bad rows


def test_after_quarantine_the_run_publishes_without_the_bad_rows_and_the_summary_counts_them(world):
    """Quarantined rows that leave the day complete (an exact copy, a row dated in the future): the whole
    pipeline runs on and publishes, the bad rows never reach the features, and the summary counts them."""
    good = fs.sales(fs.NEXT_DAY)
    future = good.iloc[:1].assign(sales_date=pd.Timestamp(fs.NEXT_DAY + timedelta(days=5)))
    _deliver(world, fs.to_csv(pd.concat([good, good.iloc[3:4], future], ignore_index=True)))
    spec, store, settings = world["spec"], world["store"], world["settings"]
    calls = dict(pipeline.stage_calls(spec, fs.NEXT_DAY, settings, store))
    with rs.single_openmp_thread():
        for stage in rs.STAGES:
            calls[stage]()
    features, _, _ = pipeline.load_snapshot(spec, fs.NEXT_DAY, store)
    assert pd.to_datetime(features["sales_date"]).max().date() == fs.NEXT_DAY
    day_rows = features[pd.to_datetime(features["sales_date"]).dt.date == fs.NEXT_DAY]
    assert len(day_rows) == len(good)
    summary = pipeline.run_summary(spec, fs.NEXT_DAY, store)
    assert summary["landing"]["rows_quarantined"] == 2
    text = format_summary(summary)
    assert "2 quarantined" in text and "exact copy of an earlier row in the file x1" in text
    assert f"sales_date: dated after the run date {fs.NEXT_DAY} x1" in text
    assert len(read_published(store, Layout(spec.name).forecasts(fs.NEXT_DAY))) > 0


def test_quarantine_that_leaves_a_series_without_its_day_stops_at_the_dbt_gate(world):
    """A negative quantity is quarantined, so its series has no row for the day: the feature mart's
    completeness tests stop the run before anything is published (the previous partition stays)."""
    from mlplatform.errors import TransformError

    _deliver(world, fs.to_csv(_bad_rows("units_sold", [-3])))
    spec, store, settings = world["spec"], world["store"], world["settings"]
    assert pipeline.land_raw(spec, fs.NEXT_DAY, settings, store)["rows_quarantined"] == 1
    with pytest.raises(TransformError, match="fct_demand_features_units_sold_not_null"):
        pipeline.build_features(spec, fs.NEXT_DAY, settings, store)
    assert not store.list_keys(Layout(spec.name).forecasts(fs.NEXT_DAY) + "/")
    _assert_publication_valid(world)


# ------------------------------------------------------------------------------ injection in a spec


@pytest.mark.parametrize(("patch", "field"), [
    ({"inbox": "../../etc"}, "inbox"),
    ({"inbox": "inbox/demand; drop table raw.retail_sales"}, "inbox"),
    ({"tables": {"retail_sales; drop table x": None}}, "tables"),
    ({"tables": {"retail_sales": {"columns": {"units_sold'--": "integer"}}}}, "columns"),
])
def test_injection_in_a_files_spec_is_rejected_naming_the_field(tmp_path, patch, field):
    spec = fs.make_spec().model_dump(mode="json")
    files = spec["source"]["files"]
    for key, value in patch.items():
        if key == "tables":
            name, override = next(iter(value.items()))
            table = {**files["tables"]["retail_sales"], **(override or {})}
            files["tables"] = {name: table}
        else:
            files[key] = value
    path = tmp_path / "demand_forecast.yaml"
    path.write_text(yaml.safe_dump(spec))
    with pytest.raises(SpecError) as failure:
        load_spec(path, defaults={})
    assert str(path) in str(failure.value) and field in str(failure.value)


def test_contract_fields_must_name_declared_columns():
    with pytest.raises(ValueError, match="not among the declared columns"):
        FileTableSpec(kind="fact", columns={"d": "date"}, date_column="d", keys=["missing"])
    with pytest.raises(ValueError, match="needs at least one fact table"):
        SourceSpec(type="files", history_start=fs.HISTORY_START, files=FilesSourceSpec(
            inbox="x", tables={"t": FileTableSpec(kind="dimension", columns={"k": "string"}, keys=["k"])}))
