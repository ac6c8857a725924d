"""DAG integrity: every DAG file imports, every DAG is well-formed, and parsing stays cheap."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mlplatform import constants as C

DAGS_DIR = C.PROJECT_ROOT / "dags"
HEAVY = ["pandas", "numpy", "sklearn", "evidently", "great_expectations", "boto3", "duckdb", "pyarrow", "dbt"]


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import BundleDagBag

    return BundleDagBag(dag_folder=DAGS_DIR, bundle_path=DAGS_DIR, bundle_name="dags-folder")


def test_dag_files_import_without_errors(dagbag):
    assert dagbag.import_errors == {}, "\n".join(f"{k}: {v}" for k, v in dagbag.import_errors.items())


def test_every_use_case_spec_has_a_dag(dagbag):
    from mlplatform.spec import spec_paths

    expected = {p.stem for p in spec_paths()}
    assert expected and expected <= set(dagbag.dag_ids)


def _spec_names() -> list[str]:
    from mlplatform.spec import spec_paths

    return [p.stem for p in spec_paths()]


@pytest.mark.parametrize("dag_id", _spec_names())
def test_dag_has_tags_owner_retries_and_docs(dagbag, dag_id):
    dag = dagbag.dags[dag_id]
    assert dag.tags and "mlplatform" in dag.tags
    assert dag.doc_md and "score_and_publish" in dag.doc_md
    for t in dag.tasks:
        assert t.owner and t.owner != "airflow", f"{t.task_id} has no owner"
        assert t.retries >= 1, f"{t.task_id} has no retries"


def test_demand_dag_chains_the_stages_and_branches_on_retraining(dagbag, tmp_path):
    from mlplatform.pipeline import stage_calls
    from mlplatform.settings import load_settings
    from mlplatform.spec import get_spec

    dag = dagbag.dags["demand_forecast"]
    t = dag.get_task
    # dbt source freshness as of the run date; a warning takes the visible freshness_warning path
    assert t("check_freshness").upstream_task_ids == {"land_raw"}
    assert t("check_freshness").downstream_task_ids == {"sources_fresh", "freshness_warning"}
    assert type(t("check_freshness")).__name__ == "_BranchPythonDecoratedOperator"
    assert t("build_features").upstream_task_ids == {"sources_fresh", "freshness_warning"}
    assert t("build_features").trigger_rule == "none_failed_min_one_success"
    assert t("validate_features").downstream_task_ids == {"monitor_drift", "evaluate_accuracy"}
    assert t("decide_retrain").upstream_task_ids == {"monitor_drift", "evaluate_accuracy"}
    assert t("decide_retrain").downstream_task_ids == {"train_model", "keep_champion"}
    assert t("score_and_publish").upstream_task_ids == {"train_model", "keep_champion"}
    assert t("score_and_publish").trigger_rule == "none_failed_min_one_success"
    assert type(t("decide_retrain")).__name__ == "_BranchPythonDecoratedOperator"
    # `mlplatform run` and the benchmarks run the same stages in the same order without Airflow
    settings = load_settings({"MLPLATFORM_DATA_DIR": str(tmp_path)})
    order = [task.task_id for task in dag.topological_sort()
             if task.task_id not in ("keep_champion", "sources_fresh", "freshness_warning")]
    names = [name for name, _ in stage_calls(get_spec("demand_forecast"), None, settings, None)]
    assert sorted(names) == sorted(order) and names.index("decide_retrain") < names.index("train_model")
    assert t("land_raw").pool == C.WAREHOUSE_POOL
    assert t("build_features").pool == C.WAREHOUSE_POOL
    assert t("check_freshness").pool == C.WAREHOUSE_POOL
    assert "model_version" in dag.params


def test_published_forecasts_are_an_asset_and_the_rollup_consumer_is_scheduled_on_it(dagbag):
    from mlplatform.spec import load_all_specs

    specs, _ = load_all_specs()
    with_rollups = [s.name for s in specs if s.publish.rollups]
    for spec in specs:
        [outlet] = dagbag.dags[spec.name].get_task("score_and_publish").outlets
        assert outlet.name == f"{spec.name}_forecasts" and outlet.uri == f"x-mlplatform://{spec.name}/forecasts"
        assert outlet.extra["s3_prefix"].endswith(f"/{spec.name}/forecasts/")
    for name in with_rollups:
        consumer = dagbag.dags[f"{name}__rollups"]
        assert [a.name for a in consumer.timetable.asset_condition.objects] == [f"{name}_forecasts"]


def test_the_rollback_dag_is_manual_and_asks_for_use_case_version_and_reason(dagbag):
    dag = dagbag.dags["mlplatform_model_rollback"]
    assert type(dag.timetable).__name__ == "NullTimetable"  # schedule=None: only triggered by hand
    assert set(dag.params) == {"use_case", "version", "reason"}


def test_a_spec_copied_under_a_new_name_gets_its_own_valid_dag(tmp_path: Path):
    specs = tmp_path / "use_cases"
    shutil.copytree(C.USE_CASES_DIR, specs)
    text = (C.USE_CASES_DIR / "demand_forecast.yaml").read_text()
    (specs / "demand_forecast_eu.yaml").write_text(text.replace("name: demand_forecast", "name: demand_forecast_eu"))
    result = _parse_in_subprocess({"MLPLATFORM_USE_CASES_DIR": str(specs)})
    assert result["errors"] == {}
    assert {"demand_forecast", "demand_forecast_eu"} <= set(result["dag_ids"])


def _parse_in_subprocess(extra_env: dict[str, str] | None = None) -> dict:
    """Parse the dags folder in a fresh interpreter; report DAG ids, errors and what got imported."""
    code = textwrap.dedent(f"""
        import json, sys, time
        from airflow.dag_processing.dagbag import BundleDagBag
        start = time.perf_counter()
        bag = BundleDagBag(dag_folder={str(DAGS_DIR)!r}, bundle_path={str(DAGS_DIR)!r},
                           bundle_name="dags-folder")
        print(json.dumps({{"dag_ids": sorted(bag.dag_ids), "errors": {{k: str(v) for k, v in bag.import_errors.items()}},
                          "heavy": sorted(m for m in {HEAVY!r} if m in sys.modules),
                          "seconds": time.perf_counter() - start}}))
    """)
    env = {**os.environ, **(extra_env or {})}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120,
                         check=True)
    return {**json.loads(out.stdout.strip().splitlines()[-1]), "stderr": out.stderr}


def test_parsing_imports_no_heavy_library():
    result = _parse_in_subprocess()
    assert result["errors"] == {}
    assert result["heavy"] == [], f"DAG parsing imported heavy modules: {result['heavy']}"
    # A generous guard against work at parse time (a `dbt ls` alone takes ~3 s); `make bench` measures it.
    assert result["seconds"] < 5


def test_a_bad_spec_is_reported_and_the_other_dags_still_load(tmp_path: Path):
    specs = tmp_path / "use_cases"
    shutil.copytree(C.USE_CASES_DIR, specs)
    (specs / "broken_case.yaml").write_text("name: broken_case\nkind: forecast\nforecast: {horizon: soon}\n")
    text = (C.USE_CASES_DIR / "demand_forecast.yaml").read_text()
    (specs / "typo_case.yaml").write_text(text.replace("name: demand_forecast", "name: typo_case")
                                          .replace("horizon: 14", "horizon: 14\n  horizn: 7"))
    result = _parse_in_subprocess({"MLPLATFORM_USE_CASES_DIR": str(specs)})
    assert "demand_forecast" in result["dag_ids"]
    assert "broken_case" not in result["dag_ids"] and "typo_case" not in result["dag_ids"]
    [error] = [e for f, e in result["errors"].items() if f.endswith("use_case_spec_check.py")]
    assert "broken_case.yaml" in error and "forecast.horizon" in error and "source" in error
    assert "typo_case.yaml" in error and "field 'forecast.horizn'" in error and "did you mean 'horizon'" in error
