"""No credential is committed: a secret scan over every file git tracks.

Local credentials are generated into .local/ (git-ignored) by `mlplatform local init`; the compose file
reads them from an uncommitted .env. This test fails on anything that looks like a real key or an inline
password, naming the file and line (the matched value is not printed).
"""

from __future__ import annotations

import re
import subprocess

import pytest

from mlplatform import constants as C

pytestmark = pytest.mark.reliability

PATTERNS = {
    "AWS access key id": re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b"),
    "private key block": re.compile(r"-----BEGIN (RSA |EC |OPENSSH |DSA |)PRIVATE KEY-----"),
    "AWS secret access key": re.compile(r"aws_secret_access_key\s*[:=]\s*['\"]?[A-Za-z0-9/+=]{40}\b", re.I),
    # key = "value", key: 'value', "key": "value" (JSON); not an environment variable's NAME as value
    # (PASSWORD_VAR = "MLPLATFORM_PG_PASSWORD") nor psql's variable interpolation (PASSWORD :'var').
    "inline password": re.compile(
        r"(password|passwd|secret)['\"]?\s*(?:=|:(?!'))\s*['\"](?-i:(?![A-Z][A-Z0-9_]+['\"]))[^'\"$\s{<]{8,}['\"]",
        re.I),
    "credentials in a URL": re.compile(r"://[A-Za-z0-9_.-]+:[^@/\s$'\"{<]{8,}@"),
}


def _tracked_files() -> list[str]:
    out = subprocess.run(["git", "ls-files", "-z"], cwd=C.PROJECT_ROOT, capture_output=True, check=True)
    return [f for f in out.stdout.decode().split("\0") if f]


def scan(text: str) -> list[tuple[int, str]]:
    """(line number, pattern name) for every line that looks like it holds a secret."""
    hits = []
    for number, line in enumerate(text.splitlines(), start=1):
        hits.extend((number, name) for name, pattern in PATTERNS.items() if pattern.search(line))
    return hits


def test_the_scanner_finds_each_kind_of_secret():
    # Built at run time, so this file itself holds nothing that looks like a credential.
    fake = "".join(chr(ord("A") + i) for i in range(16))
    samples = [f"key = {'AK'}{'IA'}{fake}", "-----BEGIN " + "RSA PRIVATE" + " KEY-----",
               "aws_secret_access_key = " + fake.lower() * 2 + "x" * 8, "pass" + 'word: "' + fake.lower() + '"',
               "postgresql://airflow:" + fake.lower() + "@db/airflow"]
    assert [name for text in samples for _, name in scan(text)] == list(PATTERNS)
    assert scan('password: "${AIRFLOW_ADMIN_PASSWORD}"') == []  # a reference, not a value
    assert scan('ENV_PG_PASSWORD = "MLPLATFORM_PG_PASSWORD"') == []  # a variable's name
    assert scan("CREATE ROLE x LOGIN PASSWORD :'airflow_password';") == []  # psql interpolation
    assert [name for _, name in scan('{"pass' + 'word": "' + fake.lower() + '"}')] == ["inline password"]


def test_no_tracked_file_contains_a_credential():
    found, paths = [], _tracked_files()
    assert len(paths) > 100, "git ls-files listed too few files: is this a git checkout?"
    for path in paths:
        full = C.PROJECT_ROOT / path
        if not full.is_file() or full.stat().st_size > 2_000_000:
            continue
        try:
            text = full.read_text()
        except UnicodeDecodeError:
            continue  # binary
        found.extend(f"{path}:{line}: {name}" for line, name in scan(text))
    assert found == [], "possible secrets committed:\n" + "\n".join(found)
