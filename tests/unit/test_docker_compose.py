"""The team deployment (docker-compose.yaml, .env.example, deploy/) checked by the real Compose parser.

No Docker engine is needed: `docker-compose config` interpolates and validates the file and prints the
resolved configuration, which these tests read. They cover the production topology (CeleryExecutor, Redis,
Postgres, SeaweedFS, a scalable worker), health checks, loopback-only ports, and that no secret is written
in the compose file: each is a required ${NAME:?...} with a placeholder in .env.example.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yaml"
ENV_EXAMPLE = ROOT / ".env.example"
INIT_DIR = ROOT / "deploy" / "postgres-init"

REQUIRED_SECRETS = (
    "POSTGRES_PASSWORD", "AIRFLOW_DB_PASSWORD", "MLPLATFORM_PG_PASSWORD", "S3_ACCESS_KEY", "S3_SECRET_KEY",
    "AIRFLOW_FERNET_KEY", "AIRFLOW_JWT_SECRET", "AIRFLOW_API_SECRET_KEY", "AIRFLOW_ADMIN_PASSWORD",
    "FLOWER_BASIC_AUTH",
)
OPTIONAL_SECRETS = ("MLPLATFORM_ALERT_WEBHOOK",)
AIRFLOW_SERVICES = ("airflow-init", "airflow-api-server", "airflow-scheduler", "airflow-dag-processor",
                    "airflow-triggerer", "airflow-worker", "flower")
EXPECTED_SERVICES = ("postgres", "redis", "seaweedfs", *AIRFLOW_SERVICES[:-1])
HEALTHCHECKS = {
    "postgres": "pg_isready",
    "redis": "redis-cli ping",
    "seaweedfs": "http://127.0.0.1:8333/healthz",
    "airflow-api-server": "curl -f http://localhost:8080/api/v2/monitor/health",
    "airflow-scheduler": "airflow jobs check --job-type SchedulerJob --local",
    "airflow-dag-processor": "airflow jobs check --job-type DagProcessorJob --local",
    "airflow-triggerer": "airflow jobs check --job-type TriggererJob --local",
    "airflow-worker": "celery --app airflow.providers.celery.executors.celery_executor.app inspect ping -d celery@",
    "flower": "curl -f http://localhost:5555/healthcheck",
}
INTERPOLATION = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)((?::?[-?])[^}]*)?\}")


def docker_compose() -> str:
    exe = shutil.which("docker-compose")
    if exe is None:
        pytest.fail("docker-compose is not installed: run `make install`, or "
                    "`apt-get install -y docker-compose` (Debian's package, v1.29)")
    return exe


def run_config(env_file: Path, home: Path) -> subprocess.CompletedProcess[str]:
    """`docker-compose config` with a clean environment: only env_file provides the variables."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "LANG": "C.UTF-8"}
    return subprocess.run([docker_compose(), "--env-file", str(env_file), "-f", str(COMPOSE_FILE), "config"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)


def env_example() -> dict[str, str]:
    values = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, sep, value = line.partition("=")
            assert sep, f".env.example: not KEY=VALUE: {line!r}"
            values[key.strip()] = value.strip()
    return values


def write_env(path: Path, values: dict[str, str]) -> Path:
    path.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    return path


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("compose-home")


@pytest.fixture(scope="module")
def config(home) -> dict:
    result = run_config(ENV_EXAMPLE, home)
    assert result.returncode == 0, f"docker-compose config failed:\n{result.stderr}"
    return yaml.safe_load(result.stdout)


@pytest.fixture(scope="module")
def services(config) -> dict:
    return config["services"]


def test_expected_services_exist(services):
    missing = set(EXPECTED_SERVICES) - set(services)
    assert not missing, f"services missing from docker-compose.yaml: {sorted(missing)}"
    assert services["postgres"]["image"].startswith("postgres:16")
    assert services["redis"]["image"].startswith("redis:7")
    assert services["seaweedfs"]["image"].startswith("chrislusf/seaweedfs:")
    assert services["flower"]["profiles"] == ["flower"], "flower is optional: only with --profile flower"


@pytest.mark.parametrize("name", AIRFLOW_SERVICES)
def test_airflow_services_share_the_production_settings(services, name):
    env = services[name]["environment"]
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__CELERY__BROKER_URL"] == "redis://redis:6379/0"
    assert re.fullmatch(r"postgresql\+psycopg2://airflow:[^@]+@postgres:5432/airflow",
                        env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
    assert re.fullmatch(r"db\+postgresql://airflow:[^@]+@postgres:5432/airflow",
                        env["AIRFLOW__CELERY__RESULT_BACKEND"])
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-api-server:8080/execution/"
    assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "False"
    assert env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"] == "admin:admin"
    assert env["MLPLATFORM_PROFILE"] == "production"
    assert env["MLPLATFORM_PG_HOST"] == "postgres"
    assert env["MLPLATFORM_DATA_DIR"] == "/opt/data"
    assert env["MLPLATFORM_S3_CONN_ID"] == "mlplatform_s3"
    assert env["MLPLATFORM_BUCKET"] == "mlplatform"
    connection = json.loads(env["AIRFLOW_CONN_MLPLATFORM_S3"])
    assert connection["conn_type"] == "aws"
    assert connection["extra"] == {"endpoint_url": "http://seaweedfs:8333", "region_name": "us-east-1",
                                   "config_kwargs": {"s3": {"addressing_style": "path"}}}
    for key in ("AIRFLOW__CORE__FERNET_KEY", "AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__API__SECRET_KEY",
                "MLPLATFORM_PG_PASSWORD"):
        assert env[key], f"{name}: {key} is empty"


def test_secrets_are_identical_across_airflow_services(services):
    """JWT/Fernet/API keys must match on every component, or tokens and encrypted fields break."""
    for key in ("AIRFLOW__CORE__FERNET_KEY", "AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__API__SECRET_KEY",
                "AIRFLOW_CONN_MLPLATFORM_S3", "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"):
        assert len({services[name]["environment"][key] for name in AIRFLOW_SERVICES}) == 1, key


def test_secrets_reach_only_the_services_that_need_them(services):
    assert set(services["airflow-init"]["environment"]) - set(services["airflow-scheduler"]["environment"]) \
        == {"AIRFLOW_ADMIN_PASSWORD"}
    for name, service in services.items():
        env = service.get("environment") or {}
        if name != "postgres":
            assert "POSTGRES_PASSWORD" not in env, name
        if name != "airflow-init":
            assert "AIRFLOW_ADMIN_PASSWORD" not in env, name
        if name != "flower":
            assert "AIRFLOW__CELERY__FLOWER_BASIC_AUTH" not in env, name


def healthcheck_command(service: dict) -> str:
    test = service["healthcheck"]["test"]
    if isinstance(test, str):
        return test
    return " ".join(part for part in test if part not in ("CMD", "CMD-SHELL"))


@pytest.mark.parametrize("name", sorted(HEALTHCHECKS))
def test_long_running_services_have_healthchecks(services, name):
    service = services[name]
    assert "healthcheck" in service and not service["healthcheck"].get("disable"), f"{name}: no healthcheck"
    assert HEALTHCHECKS[name] in healthcheck_command(service)
    assert service["restart"] == "unless-stopped"


def test_worker_ping_targets_its_own_celery_node(services):
    command = healthcheck_command(services["airflow-worker"])
    # Compose keeps `$$` escaped in its output; the container shell sees ${HOSTNAME}.
    assert re.search(r"celery@\$?\$\{HOSTNAME\}", command), command
    assert services["airflow-worker"]["command"] == ["airflow", "celery", "worker"]


def test_airflow_init_is_a_one_shot_that_migrates_sets_the_pool_and_the_password_file(services):
    init = services["airflow-init"]
    assert init["restart"] == "no"
    script = " ".join(init["command"])
    assert "airflow db migrate" in script
    assert "airflow pools set mlplatform_warehouse 1 " in script
    assert "AIRFLOW_ADMIN_PASSWORD" in script and "SIMPLE_AUTH_MANAGER_PASSWORDS_FILE" in script
    passwords_file = init["environment"]["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"]
    api_server = services["airflow-api-server"]
    assert api_server["environment"]["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"] == passwords_file
    shared = {volume_source(v) for v in mounts(init, Path(passwords_file).parent)}
    assert shared and shared == {volume_source(v) for v in mounts(api_server, Path(passwords_file).parent)}, \
        "the password file must be on a volume shared by airflow-init and the api-server"


def test_startup_order_uses_conditions(services):
    for name in AIRFLOW_SERVICES:
        depends = services[name]["depends_on"]
        assert depends["postgres"]["condition"] == "service_healthy", name
        assert depends["redis"]["condition"] == "service_healthy", name
        if name != "airflow-init":
            assert depends["airflow-init"]["condition"] == "service_completed_successfully", name
    assert services["airflow-worker"]["depends_on"]["airflow-api-server"]["condition"] == "service_healthy"


def test_worker_is_scalable(services):
    worker = services["airflow-worker"]
    for key in ("container_name", "ports", "hostname"):
        assert key not in worker, f"airflow-worker must not set {key}: --scale airflow-worker=N would clash"


def port_bindings(service: dict) -> list[tuple[str, str]]:
    """(host ip, published port) of each port: the short syntax of v1's output or v2's long syntax."""
    bindings = []
    for port in service.get("ports", []):
        if isinstance(port, dict):
            bindings.append((port.get("host_ip", ""), str(port.get("published", ""))))
        else:
            parts = str(port).split(":")
            bindings.append((parts[0] if len(parts) == 3 else "", parts[-2] if len(parts) >= 2 else ""))
    return bindings


def test_host_ports_bind_to_loopback_only(services):
    published = {}
    for name, service in services.items():
        for host_ip, host_port in port_bindings(service):
            assert host_ip == "127.0.0.1", f"{name}: port {host_port} is published on {host_ip or 'all interfaces'}"
            published[name] = host_port
    assert published == {"airflow-api-server": "8080", "seaweedfs": "8333", "flower": "5555"}


def volume_source(volume) -> str:
    return volume.get("source", "") if isinstance(volume, dict) else str(volume).split(":")[0]


def mounts(service: dict, target: Path) -> list:
    found = []
    for volume in service.get("volumes", []):
        mount_target = volume.get("target") if isinstance(volume, dict) else str(volume).split(":")[1]
        if mount_target == str(target):
            found.append(volume)
    return found


def test_postgres_runs_the_init_script_for_both_databases(config, services):
    postgres = services["postgres"]
    init_mounts = mounts(postgres, Path("/docker-entrypoint-initdb.d"))
    assert [Path(volume_source(v)) for v in init_mounts] == [INIT_DIR]
    scripts = sorted(INIT_DIR.glob("*.sh"))
    assert scripts and all(os.access(s, os.X_OK) for s in scripts)
    text = "".join(s.read_text() for s in scripts)
    for needle in ("CREATE DATABASE", "MLPLATFORM_PG_USER", "MLPLATFORM_PG_DBNAME", "AIRFLOW_DB_PASSWORD"):
        assert needle in text
    for key in ("AIRFLOW_DB_PASSWORD", "MLPLATFORM_PG_PASSWORD", "MLPLATFORM_PG_USER", "MLPLATFORM_PG_DBNAME"):
        assert postgres["environment"][key], key
    airflow_env = services["airflow-worker"]["environment"]
    for key in ("MLPLATFORM_PG_USER", "MLPLATFORM_PG_PASSWORD", "MLPLATFORM_PG_DBNAME"):
        assert airflow_env[key] == postgres["environment"][key], f"{key} differs between postgres and Airflow"
    subprocess.run(["bash", "-n", *map(str, scripts)], check=True, timeout=30)
    for volume in ("postgres-data", "redis-data", "seaweedfs-data", "airflow-logs", "airflow-auth"):
        assert volume in config["volumes"], f"named volume {volume} missing"


def test_seaweedfs_serves_the_bucket_with_the_keys_of_the_connection(services):
    seaweed = services["seaweedfs"]
    command = seaweed["command"] if isinstance(seaweed["command"], list) else seaweed["command"].split()
    assert command[0] == "mini" and "-bucket=mlplatform" in command and "-s3.port=8333" in command
    connection = json.loads(services["airflow-worker"]["environment"]["AIRFLOW_CONN_MLPLATFORM_S3"])
    assert seaweed["environment"]["AWS_ACCESS_KEY_ID"] == connection["login"]
    assert seaweed["environment"]["AWS_SECRET_ACCESS_KEY"] == connection["password"]


# --- no secret in docker-compose.yaml ------------------------------------------------------------------


def test_secrets_are_referenced_only_as_required_interpolations():
    text = COMPOSE_FILE.read_text()
    for name in REQUIRED_SECRETS + OPTIONAL_SECRETS:
        references = [m for m in INTERPOLATION.finditer(text) if m.group(1) == name]
        assert references, f"{name} is not used by docker-compose.yaml"
        for match in references:
            modifier = match.group(2) or ""
            if name in REQUIRED_SECRETS:
                assert modifier.startswith(":?"), f"{match.group(0)}: a secret must be required (${{{name}:?...}})"
            else:
                assert modifier in (":-", "-"), f"{match.group(0)}: an optional secret has no default value"
    # With every ${...} removed, a secret name may remain only as the key of an environment entry, or as
    # a script in a container reading that entry at run time (os.environ["NAME"]).
    stripped = INTERPOLATION.sub("", text)
    for lineno, line in enumerate(stripped.splitlines(), 1):
        for name in REQUIRED_SECRETS + OPTIONAL_SECRETS:
            rest = line.replace(f'os.environ["{name}"]', "")
            if re.search(rf"\b{name}\b", rest):
                assert re.fullmatch(rf"\s*{name}:\s*", rest), \
                    f"docker-compose.yaml:{lineno}: {name} outside a ${{{name}...}} reference: {line.strip()!r}"


def test_no_placeholder_secret_value_is_inlined():
    text = COMPOSE_FILE.read_text()
    example = env_example()
    assert "change-me" not in text
    for name in REQUIRED_SECRETS:
        value = example[name]
        assert "change-me" in value, f".env.example: {name} must be an obvious placeholder, not a usable secret"
        assert value not in text, f"the .env.example value of {name} is written in docker-compose.yaml"
        secret_part = value.split(":", 1)[-1]
        assert secret_part not in text


@pytest.mark.parametrize("name", REQUIRED_SECRETS)
@pytest.mark.parametrize("how", ["missing", "empty"])
def test_a_missing_secret_is_a_clear_error(tmp_path, home, name, how):
    values = env_example()
    if how == "missing":
        del values[name]
    else:
        values[name] = ""
    result = run_config(write_env(tmp_path / "incomplete.env", values), home)
    assert result.returncode != 0, f"docker-compose config accepted a {how} {name}"
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.endswith(f"set {name} in .env (see .env.example)"), result.stderr


def test_env_example_defines_every_variable_the_compose_file_uses():
    text = COMPOSE_FILE.read_text()
    used = {m.group(1) for m in INTERPOLATION.finditer(text)}
    bare = re.findall(r"(?<!\$)\$(?![{$])\w+", text)
    assert not bare, f"use ${{NAME}} (or $$ for the container's shell), not {bare}"
    missing = used - set(env_example())
    assert not missing, f".env.example lacks {sorted(missing)}"
    assert set(REQUIRED_SECRETS) | set(OPTIONAL_SECRETS) <= used


def test_env_example_explains_how_to_generate_secrets():
    text = ENV_EXAMPLE.read_text()
    assert 'python3 -c "import secrets;' in text
    assert "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())" in text


def gitignore_ignores(path: str) -> bool:
    """Whether a root-level file is ignored by the root .gitignore (last matching pattern wins)."""
    ignored = False
    for raw in (ROOT / ".gitignore").read_text().splitlines():
        pattern = raw.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").lstrip("/")
        if pattern.endswith("/"):
            continue  # directories only
        if fnmatch.fnmatchcase(path, pattern):
            ignored = not negate
    return ignored


def test_dotenv_is_git_ignored_and_the_example_is_not():
    assert gitignore_ignores(".env"), ".gitignore must ignore .env (it holds the real secrets)"
    assert not gitignore_ignores(".env.example"), ".env.example must stay committed"


def test_docker_build_context_excludes_secrets_and_local_state():
    patterns = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()}
    for needed in (".env", ".venv", ".local", ".airflow", ".git", "dbt_project/target"):
        assert needed in patterns, f".dockerignore must exclude {needed}"
    assert any("__pycache__" in p for p in patterns)


def test_dockerfile_runs_as_airflow_uid_50000_with_curl():
    text = (ROOT / "Dockerfile").read_text()
    assert "pip install -r requirements.txt -c constraints.txt" in text
    assert "pip install --no-deps -e ." in text and "dbt parse" in text
    assert re.search(r"useradd .*--uid 50000 .*airflow", text)
    assert re.search(r"^USER airflow$", text, re.MULTILINE)
    assert "--no-install-recommends curl" in text and "rm -rf /var/lib/apt/lists/*" in text
    assert "LABEL " in text


def test_bucket_policy_is_least_privilege():
    policy = json.loads((ROOT / "deploy" / "s3-bucket-policy.json").read_text())
    allowed = {"s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:ListBucket", "s3:AbortMultipartUpload"}
    granted = set()
    for statement in policy["Statement"]:
        assert statement["Effect"] == "Allow"
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        assert set(resources) <= {"arn:aws:s3:::mlplatform", "arn:aws:s3:::mlplatform/*"}, resources
        assert "*" not in json.dumps(statement["Principal"]), "the policy names one pipeline principal"
        granted |= set(actions)
    assert granted == allowed


# --- the Postgres init script, run for real ------------------------------------------------------------


def _psql(user: str, dbname: str, *sql: str) -> subprocess.CompletedProcess[str]:
    from postgres_support import PG_HOST, PG_PORT

    args = ["psql", "-h", PG_HOST, "-p", str(PG_PORT), "-U", user, "-d", dbname, "-X", "-q", "-A", "-t",
            "-v", "ON_ERROR_STOP=1"]
    for statement in sql:
        args += ["-c", statement]
    return subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.integration
def test_postgres_init_script_creates_least_privilege_roles(tmp_path):
    """deploy/postgres-init/ on the machine's PostgreSQL, with unique role and database names.

    The warehouse role can land and build in `raw`/`analytics`, and nothing else: no other database,
    no database or role creation, no dropping its database. The Airflow role owns its database only.
    """
    from postgres_support import PG_ADMIN_USER, PG_HOST, PG_PORT

    if shutil.which("psql") is None:
        pytest.fail("psql is not installed: apt-get install -y postgresql-client")
    suffix = os.urandom(4).hex()
    names = {"AIRFLOW_DB_USER": f"mlpt_af_{suffix}", "AIRFLOW_DB_NAME": f"mlpt_afdb_{suffix}",
             "MLPLATFORM_PG_USER": f"mlpt_wh_{suffix}", "MLPLATFORM_PG_DBNAME": f"mlpt_whdb_{suffix}"}
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PGHOST": PG_HOST, "PGPORT": str(PG_PORT),
           "POSTGRES_USER": PG_ADMIN_USER, "POSTGRES_DB": "postgres", **names,
           "AIRFLOW_DB_PASSWORD": "a'quote\"and;semicolon", "MLPLATFORM_PG_PASSWORD": "pw'" + suffix}
    af_user, af_db = names["AIRFLOW_DB_USER"], names["AIRFLOW_DB_NAME"]
    wh_user, wh_db = names["MLPLATFORM_PG_USER"], names["MLPLATFORM_PG_DBNAME"]
    try:
        for script in sorted(INIT_DIR.glob("*.sh")):
            result = subprocess.run([str(script)], env=env, capture_output=True, text=True, timeout=120,
                                    check=False)
            assert result.returncode == 0, result.stderr
        ok = _psql(wh_user, wh_db, "create schema if not exists raw", "create table raw.t (x int)",
                   "insert into raw.t values (1)", "create schema if not exists analytics",
                   "create view analytics.v as select * from raw.t", "create temp table scratch (x int)",
                   "select count(*) from analytics.v")
        assert ok.returncode == 0 and ok.stdout.strip() == "1", ok.stderr
        for user, dbname, statement, error in [
            (wh_user, wh_db, "create table public.t (x int)", "permission denied"),
            (wh_user, wh_db, f"create database mlpt_x_{suffix}", "permission denied"),
            (wh_user, wh_db, f"create role mlpt_x_{suffix}", "permission denied"),
            (wh_user, wh_db, f'drop database "{wh_db}"', "must be owner"),
            (wh_user, af_db, "select 1", "CONNECT privilege"),
            (af_user, wh_db, "select 1", "CONNECT privilege"),
        ]:
            denied = _psql(user, dbname, statement)
            assert denied.returncode != 0 and error in denied.stderr, (user, dbname, statement, denied.stderr)
        migrated = _psql(af_user, af_db, "create table public.alembic_probe (x int)", "drop table public.alembic_probe")
        assert migrated.returncode == 0, migrated.stderr
        roles = _psql(PG_ADMIN_USER, "postgres", "select string_agg(rolname || ':' || rolsuper || rolcreatedb || "
                      f"rolcreaterole, ',' order by rolname) from pg_roles where rolname in ('{af_user}', '{wh_user}')")
        assert roles.stdout.strip() == f"{af_user}:falsefalsefalse,{wh_user}:falsefalsefalse"
    finally:
        _psql(PG_ADMIN_USER, "postgres", f'drop database if exists "{af_db}" with (force)',
              f'drop database if exists "{wh_db}" with (force)', f'drop role if exists "{af_user}"',
              f'drop role if exists "{wh_user}"')
