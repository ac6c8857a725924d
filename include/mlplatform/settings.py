"""Runtime settings, read from the environment in one place.

One setting, ``MLPLATFORM_PROFILE``, switches between the embedded default (DuckDB warehouse file,
local SeaweedFS) and production (Postgres warehouse, real S3). Credentials never live here: object
storage credentials come from the Airflow connection named by ``MLPLATFORM_S3_CONN_ID``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from mlplatform import constants as C
from mlplatform.errors import ConfigError


@dataclass(frozen=True)
class Settings:
    profile: str
    data_dir: Path
    duckdb_path: Path
    bucket: str
    s3_conn_id: str

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
    )
