"""Smoke run of the benchmark suite (`make bench` at tiny sizes): it works and writes the documented schema.

Benchmarks are not tests: this only checks that every figure is computed and has the fields of
bench/results.json; it writes to a temporary path and never touches bench/results.json.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
FIGURES = ("dag_parse", "scoring_throughput", "drift", "orchestration_overhead", "scale", "accuracy_wape")


@pytest.mark.timeout(900)
def test_bench_smoke_writes_every_figure_with_the_schema(tmp_path):
    results_file = ROOT / "bench" / "results.json"
    before = results_file.read_bytes() if results_file.exists() else None
    output = tmp_path / "results.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MLPLATFORM_"))}
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "run_benchmarks.py"), "--smoke", "--quiet",
                           "--output", str(output)], env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=880, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(output.read_text())
    machine = results["machine"]
    assert machine["cores"] >= 1 and machine["ram_gb"] > 0 and machine["cpu_model"]
    assert set(FIGURES) <= set(results["figures"])
    for name in FIGURES:
        figure = results["figures"][name]
        for key in ("value", "baseline", "ratio", "unit", "target", "method"):
            assert key in figure, f"{name} lacks {key}"
        assert "error" not in figure.get("details", {}), f"{name}: {figure['details'].get('error')}"
        assert isinstance(figure["value"], int | float) and isinstance(figure["ratio"], int | float), name
        assert figure["unit"] and figure["target"] and figure["method"], name
    assert (results_file.read_bytes() if results_file.exists() else None) == before
