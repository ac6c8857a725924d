"""Identity of code, data and environment, so every published number can be traced back.

Fingerprints are content hashes, never wall-clock times: rerunning a date reproduces the same ids.
"""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
from functools import lru_cache
from pathlib import Path

from mlplatform import __version__
from mlplatform import constants as C

# What counts as "the code" of a pipeline: the package, the DAG wiring, the dbt project and the specs.
_SOURCE_GLOBS = (
    "include/mlplatform/**/*.py",
    "plugins/**/*.py",
    "dags/**/*.py",
    "include/use_cases/*.yaml",
    "include/expectations/*.json",
    "dbt_project/dbt_project.yml",
    "dbt_project/models/**/*",
    "dbt_project/macros/**/*",
    "dbt_project/seeds/**/*",
)


@lru_cache(maxsize=1)
def source_hash(root: Path = C.PROJECT_ROOT) -> str:
    """sha256 over the project's source files (path and content), independent of git."""
    digest = hashlib.sha256()
    files = sorted({p for pattern in _SOURCE_GLOBS for p in root.glob(pattern) if p.is_file()})
    for path in files:
        if "__pycache__" in path.parts:
            continue
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


@lru_cache(maxsize=1)
def git_commit(root: Path = C.PROJECT_ROOT) -> str | None:
    """HEAD commit when the project is a git checkout (containers may ship without .git)."""
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def code_version() -> dict:
    """Package version, git commit (if any) and the source hash; MLPLATFORM_CODE_VERSION can pin a release tag."""
    return {
        "package_version": __version__,
        "release": os.environ.get(C.ENV_CODE_VERSION),
        "git_commit": git_commit(),
        "source_hash": source_hash(),
    }


def library_versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    names = ("scikit-learn", "pandas", "numpy", "pyarrow", "dbt-core", "dbt-duckdb", "dbt-postgres", "great-expectations",
             "evidently", "apache-airflow")
    out = {"python": platform.python_version()}
    for name in names:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def combine(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()
