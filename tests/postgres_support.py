"""Fresh PostgreSQL databases for tests: never the shared default databases.

The machine (and CI) runs PostgreSQL on 127.0.0.1:5432 with trust authentication. Each test that needs
Postgres gets a database of its own, created here and dropped afterwards (even when the test fails), so
runs never see each other's tables and nothing is left behind.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager

PG_HOST = os.environ.get("MLPLATFORM_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("MLPLATFORM_TEST_PG_PORT", "5432"))
PG_ADMIN_USER = os.environ.get("MLPLATFORM_TEST_PG_USER", "postgres")


def _admin_connection():
    import psycopg2

    con = psycopg2.connect(host=PG_HOST, port=PG_PORT, user=PG_ADMIN_USER, dbname="postgres",
                           connect_timeout=10)
    con.autocommit = True
    return con


def create_database(prefix: str) -> str:
    """Create an empty database named ``<prefix>_<random>`` and return its name."""
    name = f"{prefix}_{secrets.token_hex(4)}"
    con = _admin_connection()
    try:
        with con.cursor() as cur:
            cur.execute(f'create database "{name}"')
    finally:
        con.close()
    return name


def drop_database(name: str) -> None:
    """Drop ``name``, first ending any session still connected to it (a killed service may leave some)."""
    con = _admin_connection()
    try:
        with con.cursor() as cur:
            cur.execute("select pg_terminate_backend(pid) from pg_stat_activity "
                        "where datname = %s and pid <> pg_backend_pid()", [name])
            cur.execute(f'drop database if exists "{name}"')
    finally:
        con.close()


@contextmanager
def fresh_database(prefix: str) -> Iterator[str]:
    name = create_database(prefix)
    try:
        yield name
    finally:
        drop_database(name)


def warehouse_env(dbname: str) -> dict[str, str]:
    """The MLPLATFORM_PG_* variables that point the production profile's warehouse at ``dbname``."""
    return {"MLPLATFORM_PG_HOST": PG_HOST, "MLPLATFORM_PG_PORT": str(PG_PORT),
            "MLPLATFORM_PG_USER": PG_ADMIN_USER, "MLPLATFORM_PG_PASSWORD": "", "MLPLATFORM_PG_DBNAME": dbname}


def sqlalchemy_url(dbname: str) -> str:
    """Airflow metadata-DB URL for ``dbname``."""
    return f"postgresql+psycopg2://{PG_ADMIN_USER}@{PG_HOST}:{PG_PORT}/{dbname}"
