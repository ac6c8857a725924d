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
