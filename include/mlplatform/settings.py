"""Runtime settings, read from the environment in one place.

One setting, ``MLPLATFORM_PROFILE``, switches between the embedded default (DuckDB warehouse file,
local SeaweedFS) and production (Postgres warehouse from the ``MLPLATFORM_PG_*`` variables, real S3). Credentials never live here: object
storage credentials come from the Airflow connection named by ``MLPLATFORM_S3_CONN_ID``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from mlplatform import constants as C
from mlplatform.errors import ConfigError


@dataclass(frozen=True)
class PostgresParams:
    """The production warehouse connection (the same MLPLATFORM_PG_* variables dbt's profile reads).

    The password is kept out of ``repr`` so settings can be logged without leaking it.
    """

    host: str = "localhost"
    port: int = 5432
    user: str = "mlplatform"
    dbname: str = "warehouse"
    password: str = field(default="", repr=False)

    def dbt_env(self) -> dict[str, str]:
        """The variables dbt_project/profiles.yml reads for its ``postgres`` target."""
        return {C.ENV_PG_HOST: self.host, C.ENV_PG_PORT: str(self.port), C.ENV_PG_USER: self.user,
                C.ENV_PG_PASSWORD: self.password, C.ENV_PG_DBNAME: self.dbname}

    def describe(self) -> str:
        """Where the warehouse is, for error messages (never the password)."""
        return f"postgres://{self.user}@{self.host}:{self.port}/{self.dbname}"


@dataclass(frozen=True)
class Settings:
    profile: str
    data_dir: Path
    duckdb_path: Path
    bucket: str
    s3_conn_id: str
    pg: PostgresParams = field(default_factory=PostgresParams)

    def __post_init__(self) -> None:
        if self.profile not in C.PROFILES:
            raise ConfigError(
                f"{C.ENV_PROFILE}={self.profile!r} is not a known profile; use one of {', '.join(C.PROFILES)}"
            )
        if not self.bucket:
            raise ConfigError(f"{C.ENV_BUCKET} is empty; set it to the object-storage bucket name")

    @property
    def dbt_target(self) -> str:
        """dbt target in dbt_project/profiles.yml that matches the profile."""
        return "duckdb" if self.profile == C.PROFILE_EMBEDDED else "postgres"

    @property
    def warehouse_location(self) -> str:
        """The warehouse this profile uses, for messages and run summaries."""
        return str(self.duckdb_path) if self.profile == C.PROFILE_EMBEDDED else self.pg.describe()


def _pg_params(env: dict[str, str]) -> PostgresParams:
    port = env.get(C.ENV_PG_PORT) or "5432"
    if not port.isdigit():
        raise ConfigError(f"{C.ENV_PG_PORT}={port!r} is not a port number")
    return PostgresParams(host=env.get(C.ENV_PG_HOST) or "localhost", port=int(port),
                          user=env.get(C.ENV_PG_USER) or "mlplatform",
                          dbname=env.get(C.ENV_PG_DBNAME) or "warehouse",
                          password=env.get(C.ENV_PG_PASSWORD, ""))


def load_settings(env: dict[str, str] | None = None) -> Settings:
    """Build Settings from ``env`` (default: the process environment)."""
    env = dict(os.environ if env is None else env)
    data_dir = Path(env.get(C.ENV_DATA_DIR) or C.DEFAULT_DATA_DIR).resolve()
    return Settings(
        profile=env.get(C.ENV_PROFILE, C.PROFILE_EMBEDDED),
        data_dir=data_dir,
        duckdb_path=Path(env.get(C.ENV_DUCKDB_PATH) or data_dir / "warehouse.duckdb").resolve(),
        bucket=env.get(C.ENV_BUCKET, C.DEFAULT_BUCKET),
        s3_conn_id=env.get(C.ENV_S3_CONN_ID, C.DEFAULT_S3_CONN_ID),
        pg=_pg_params(env),
    )
