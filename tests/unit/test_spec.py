"""Use-case specs: valid ones load into typed config; invalid ones are rejected naming file, field and fix."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mlplatform import constants as C
from mlplatform.errors import SpecError
from mlplatform.spec import get_spec, load_all_specs, load_defaults, load_spec, quantile_column


@pytest.fixture
def spec_dir(tmp_path: Path) -> Path:
    """A copy of the shipped specs that a test may break."""
    import shutil

    target = tmp_path / "use_cases"
    shutil.copytree(C.USE_CASES_DIR, target)
    return target


def _rewrite(path: Path, **changes) -> None:
    data = yaml.safe_load(path.read_text())
    for dotted, value in changes.items():
        node = data
        *parents, leaf = dotted.split("__")
        for key in parents:
            node = node.setdefault(key, {})
        if value is None:
            node.pop(leaf, None)
        else:
            node[leaf] = value
    path.write_text(yaml.safe_dump(data))


def test_shipped_demand_spec_loads_with_defaults_merged():
    spec = get_spec("demand_forecast")
    assert spec.kind == "forecast"
    assert spec.forecast.horizon == 14
    assert spec.backtest.season_length == 7  # from _defaults.yaml
    assert spec.quantile_columns == ["p10", "p50", "p90"]
    assert spec.suite_path.is_file()


def test_spec_fingerprint_is_stable_and_changes_with_content(spec_dir):
    a = load_spec(spec_dir / "demand_forecast.yaml", load_defaults(spec_dir))
    assert a.fingerprint() == get_spec("demand_forecast").fingerprint()
    _rewrite(spec_dir / "demand_forecast.yaml", forecast__horizon=7)
    b = load_spec(spec_dir / "demand_forecast.yaml", load_defaults(spec_dir))
    assert a.fingerprint() != b.fingerprint()


@pytest.mark.parametrize(("changes", "field", "hint"), [
    ({"forecast__horizn": 3}, "forecast.horizn", "unknown field"),
    ({"forecast__horizon": "soon"}, "forecast.horizon", "valid integer"),
    ({"owner": None}, "owner", "required field is missing"),
    ({"model__quantiles": [0.1, 0.9]}, "model.quantiles", "must include 0.5"),
    ({"kind": "clustering"}, "kind", "forecast"),
    ({"modle": {}}, "modle", "did you mean 'model'"),
    ({"backtest__fold_stpe": 3}, "backtest.fold_stpe", "did you mean 'fold_step'"),
    ({"source__generator": "../../etc"}, "source.generator", "should match pattern"),
    ({"features__target": "units; drop table x"}, "features.target", "should match pattern"),
    ({"tabular": {"label_delay_days": 30}}, "<top level>", "takes no 'tabular'"),
])
def test_invalid_spec_error_names_file_field_and_fix(spec_dir, changes, field, hint):
    path = spec_dir / "demand_forecast.yaml"
    _rewrite(path, **changes)
    with pytest.raises(SpecError) as info:
        load_spec(path, load_defaults(spec_dir))
    message = str(info.value)
    assert str(path) in message and f"'{field}'" in message and hint in message


def test_name_must_match_file_name(spec_dir):
    path = spec_dir / "demand_forecast.yaml"
    _rewrite(path, name="other_name")
    with pytest.raises(SpecError, match="must equal the file name"):
        load_spec(path, load_defaults(spec_dir))


def test_missing_suite_file_is_named(spec_dir):
    path = spec_dir / "demand_forecast.yaml"
    _rewrite(path, validation__suite="nope.json")
    with pytest.raises(SpecError, match=r"validation\.suite.*nope\.json"):
        load_spec(path, load_defaults(spec_dir))


def test_yaml_syntax_error_is_reported_with_file(spec_dir):
    path = spec_dir / "demand_forecast.yaml"
    path.write_text("name: [unclosed\n")
    with pytest.raises(SpecError, match="not valid YAML") as info:
        load_spec(path)
    assert str(path) in str(info.value)


def test_one_bad_spec_does_not_hide_the_others(spec_dir):
    (spec_dir / "broken.yaml").write_text("name: broken\n")
    specs, errors = load_all_specs(spec_dir)
    assert {"demand_forecast", "revenue_forecast", "credit_risk"} <= {s.name for s in specs}
    assert list(errors) == [spec_dir / "broken.yaml"]


def test_copying_a_spec_under_a_new_name_gives_a_new_valid_use_case(spec_dir):
    text = (spec_dir / "demand_forecast.yaml").read_text().replace("name: demand_forecast", "name: demand_copy")
    (spec_dir / "demand_copy.yaml").write_text(text)
    specs, errors = load_all_specs(spec_dir)
    names = {s.name for s in specs}
    assert not errors and {"demand_forecast", "demand_copy"} <= names and len(names) == len(specs)


def test_unknown_use_case_lists_known_ones():
    with pytest.raises(SpecError, match="known use cases: .*demand_forecast"):
        get_spec("no_such_case")


def test_quantile_column_names():
    assert [quantile_column(q) for q in (0.05, 0.1, 0.5, 0.9, 0.975)] == ["p05", "p10", "p50", "p90", "p98"]


def test_classification_spec_needs_a_tabular_section_and_a_fitting_metric(spec_dir):
    path = spec_dir / "credit_risk.yaml"
    _rewrite(path, backtest__metric="wape")
    with pytest.raises(SpecError, match="does not apply to kind 'classification'"):
        load_spec(path, load_defaults(spec_dir))


def test_every_kind_and_frequency_is_accepted_by_the_schema(spec_dir):
    for kind, freq in (("forecast", "weekly"), ("forecast", "monthly"), ("forecast", "quarterly")):
        path = spec_dir / "demand_forecast.yaml"
        _rewrite(path, kind=kind, frequency=freq)
        assert load_spec(path, load_defaults(spec_dir)).frequency == freq
    spec = load_spec(spec_dir / "credit_risk.yaml", load_defaults(spec_dir))
    assert spec.kind == "classification" and spec.gate_metric == "log_loss" and spec.horizon == 0
    # Group fairness is a classification measure: a regression spec drops it.
    _rewrite(spec_dir / "credit_risk.yaml", kind="regression", backtest__metric="mae", features__target="exposure_at_default",
             fairness=None)
    assert load_spec(spec_dir / "credit_risk.yaml", load_defaults(spec_dir)).gate_metric == "mae"


# --- schedule from the frequency (issue 13) -----------------------------------------------------------------

def _load(spec_dir: Path, name: str = "demand_forecast"):
    return load_spec(spec_dir / f"{name}.yaml", load_defaults(spec_dir))


@pytest.mark.parametrize(("frequency", "lag", "cron"), [
    ("daily", None, "@daily"), ("weekly", 1, "0 0 * * 2"), ("monthly", None, "0 0 1 * *"),
    ("monthly", 3, "0 0 4 * *"), ("quarterly", 20, "0 0 21 1,4,7,10 *"),
])
def test_the_schedule_derives_from_the_frequency_and_publication_lag(spec_dir, frequency, lag, cron):
    _rewrite(spec_dir / "demand_forecast.yaml", frequency=frequency, publication_lag_days=lag)
    spec = _load(spec_dir)
    assert spec.schedule == cron and spec.publication_lag_days == (lag or 0)


def test_an_explicit_schedule_wins_including_none(spec_dir):
    _rewrite(spec_dir / "demand_forecast.yaml", frequency="monthly", schedule="0 6 15 * *")
    assert _load(spec_dir).schedule == "0 6 15 * *"
    path = spec_dir / "demand_forecast.yaml"
    path.write_text(path.read_text() + "\nschedule: null\n")
    assert _load(spec_dir).schedule is None  # manual runs only (e.g. the evaluation use cases)


@pytest.mark.parametrize(("changes", "hint"), [
    ({"frequency": "monthly", "publication_lag_days": 40}, "more than 26"),
    ({"frequency": "daily", "publication_lag_days": 2}, "weekly, monthly and quarterly use cases only"),
    ({"frequency": "monthly", "publication_lag_days": -1}, "greater than or equal to 0"),
    ({"frequency": "monthly", "publication_lag_days": 5, "schedule": "@daily"}, "remove one of the two"),
])
def test_a_publication_lag_that_cannot_apply_names_the_field(spec_dir, changes, hint):
    path = spec_dir / "demand_forecast.yaml"
    _rewrite(path, **changes)
    with pytest.raises(SpecError) as info:
        _load(spec_dir)
    assert str(path) in str(info.value) and "'publication_lag_days'" in str(info.value) and hint in str(info.value)


# --- holidays from the holidays package --------------------------------------------------------------------

def test_the_holiday_calendar_defaults_to_us_and_names_its_key(spec_dir):
    assert _load(spec_dir, "credit_risk").holidays.key == "US"  # no section: the default
    assert get_spec("demand_forecast").holidays.model_dump() == {"country": "US", "subdivision": None}


@pytest.mark.parametrize(("holidays", "field", "hint"), [
    ({"country": "XX"}, "holidays.country", "not a country code the holidays package supports"),
    ({"country": "us"}, "holidays.country", "did you mean 'US'"),
    ({"country": "US", "subdivision": "ZZ"}, "holidays", "'ZZ' is not a subdivision of 'US'"),
    ({"country": "DE"}, "holidays", "simulates the US holidays"),  # a generator source lifts US holidays
])
def test_an_unknown_or_mismatched_holiday_calendar_names_file_and_field(spec_dir, holidays, field, hint):
    path = spec_dir / "demand_forecast.yaml"
    _rewrite(path, holidays=holidays)
    with pytest.raises(SpecError) as info:
        _load(spec_dir)
    message = str(info.value)
    assert str(path) in message and f"'{field}'" in message and hint in message


def test_a_warehouse_source_may_use_any_supported_calendar(spec_dir):
    _rewrite(spec_dir / "demand_forecast.yaml", holidays={"country": "GB", "subdivision": "ENG"},
             source={"type": "warehouse", "table": "raw.pos_sales", "date_column": "sales_date",
                     "history_start": "2023-01-01"})
    assert _load(spec_dir).holidays.key == "GB-ENG"


# --- champion_min_rows sized to the use case ---------------------------------------------------------------

def test_champion_min_rows_defaults_to_a_share_of_folds_horizon_and_series(spec_dir):
    _rewrite(spec_dir / "demand_forecast.yaml", forecast__horizon=28, backtest__fold_step=14)
    spec = _load(spec_dir)
    assert spec.backtest.champion_min_rows is None
    rows, rule = spec.champion_min_rows_for(1)  # 1 series x 28 x 3 folds = 84 rows at most: 100 never met
    assert rows == 7 and "3 folds x horizon 28 x 1 series / 12" in rule
    assert spec.champion_min_rows_for(48)[0] == 100  # capped
    assert spec.champion_min_rows_for(None)[0] == 100  # series count unknown
    assert _load(spec_dir, "credit_risk").champion_min_rows_for(400)[0] == 100  # tabular kinds keep 100
    _rewrite(spec_dir / "demand_forecast.yaml", backtest__champion_min_rows=50)
    assert _load(spec_dir).champion_min_rows_for(1) == (50, "backtest.champion_min_rows 50")


def test_an_unreachable_champion_min_rows_is_refused_at_load_when_the_series_count_is_known(spec_dir):
    path = spec_dir / "demand_forecast.yaml"  # retail_sales with 4 stores x 12 SKUs: 48 series
    _rewrite(path, backtest__champion_min_rows=3 * 14 * 48 + 1)
    with pytest.raises(SpecError) as info:
        _load(spec_dir)
    assert str(path) in str(info.value) and "'backtest'" in str(info.value)
    assert "champion_min_rows 2017 can never be met" in str(info.value) and "= 2016 rows" in str(info.value)
    _rewrite(path, backtest__champion_min_rows=2016)
    assert _load(spec_dir).backtest.champion_min_rows == 2016
    # an external table's series count is unknown at load: training checks it on the data instead
    _rewrite(path, backtest__champion_min_rows=5000, source={"type": "warehouse", "table": "raw.pos_sales",
                                                            "date_column": "sales_date", "history_start": "2023-01-01"})
    assert _load(spec_dir).backtest.champion_min_rows == 5000
