"""`make evaluate` on a tiny configuration: one real dataset, one cut-off, end to end.

The harness starts its own S3 server and Airflow home, loads statsmodels' elec_equip into the warehouse,
runs the eval_elec_equip_monthly DAG for the cut-off with dag.test(), reads the published partition and
scores it beside statsforecast. This checks that it works and writes the documented schema, not how good
the model is (that is what the evaluation itself reports); it never overwrites bench/evaluation.json.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DATASET = "elec_equip_monthly"
METRICS = ("wape", "mase", "bias", "coverage_p10_p90")


@pytest.mark.timeout(600)
def test_evaluation_runs_the_real_dag_and_scores_it_beside_statsforecast(tmp_path):
    results_file = ROOT / "bench" / "evaluation.json"
    before = results_file.read_bytes() if results_file.exists() else None
    output = tmp_path / "evaluation.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MLPLATFORM_"))}
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "evaluate.py"), "--datasets", DATASET,
                           "--cutoffs", "1", "--quiet", "--output", str(output)],
                          env=env, cwd=ROOT, capture_output=True, text=True, timeout=580, check=False)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    results = json.loads(output.read_text())
    assert results["machine"]["cores"] >= 1 and results["method"]
    assert set(results) >= {DATASET, "machine", "method", "run"}

    data = results[DATASET]
    assert data["use_case"] == "eval_elec_equip_monthly" and data["horizon"] == 12 and len(data["cutoffs"]) == 1
    [run] = data["runs"]
    assert run["dag_state"] in ("success", "failed"), run
    assert set(data["targets_met"]) == {"p50_wape_at_most_best_reference", "coverage_p10_p90_within_75_85",
                                        "published_every_cutoff"}
    for method in ("seasonal_naive", "auto_ets"):
        assert data[method]["rows"] == 12, method  # one series x 12 months, every actual known
        assert all(math.isfinite(data[method][m]) for m in METRICS), data[method]
    if run["published"]:  # the platform's rows are exactly the references' rows
        assert run["model"]["version"] and data["platform"]["published_cutoffs"] == 1
        assert data["platform"]["rows"] == data["seasonal_naive"]["rows"] == data["auto_ets"]["rows"]
        assert all(math.isfinite(data["platform"][m]) for m in METRICS), data["platform"]
        assert math.isfinite(data["ratio_vs_best_reference"])
    else:  # a refused model is reported, not a crash
        assert run["error"] and data["platform"]["rows"] == 0 and not data["targets_met"]["published_every_cutoff"]
    assert (output.with_suffix(".md")).read_text().count("| elec_equip_monthly") == 4
    assert (results_file.read_bytes() if results_file.exists() else None) == before
