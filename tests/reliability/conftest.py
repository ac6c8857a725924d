"""One shared 'world' of real pipeline runs, and cheap private copies of it for the fault tests.

The world (session-scoped: it holds the only expensive steps, two trainings) is the backfill scenario:
a full run for CHAMPION_DATE, then a full run for the earlier BACKFILL_DATE, on a fresh DuckDB warehouse
and a fresh bucket of the real S3 server. It is never modified afterwards: every test that writes gets
``world_copy``, a copy of the warehouse directory plus a server-side copy of the bucket.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest
import reliability_support as rs

from mlplatform.settings import Settings
from mlplatform.spec import UseCaseSpec
from mlplatform.storage import ObjectStore


@dataclass(frozen=True)
class World:
    spec: UseCaseSpec
    settings: Settings
    store: ObjectStore
    golden_dir: Path                      # the data directory right after the two runs (read-only)
    runs: dict[date, dict[str, dict]]     # stage results per run date
    objects: dict[str, bytes]             # every object in the bucket right after the two runs


@dataclass(frozen=True)
class WorldCopy:
    spec: UseCaseSpec
    settings: Settings
    store: ObjectStore
    objects: dict[str, bytes]             # the copied bucket's objects when the copy was made


@pytest.fixture(scope="session")
def world(s3_server, tmp_path_factory) -> World:
    root = tmp_path_factory.mktemp("reliability-world")
    spec, settings = rs.make_spec(), rs.settings_for(root / "data")
    store = rs.new_store(s3_server.client())
    runs = {}
    for run_date in (rs.CHAMPION_DATE, rs.BACKFILL_DATE):
        runs[run_date] = rs.full_run(spec, run_date, settings, store)
    golden = rs.copy_data_dir(settings.data_dir, root / "golden")
    return World(spec, settings, store, golden, runs, rs.bucket_contents(store))


def copy_world(world: World, directory: Path) -> WorldCopy:
    """A private copy of the world: its own warehouse file and its own bucket with the same objects."""
    settings = rs.settings_for(rs.copy_data_dir(world.golden_dir, directory / "data"))
    store = rs.clone_bucket(world.store)
    return WorldCopy(world.spec, settings, store, rs.bucket_contents(store))


@pytest.fixture
def world_copy(world, tmp_path) -> WorldCopy:
    return copy_world(world, tmp_path)


@pytest.fixture(scope="module")
def module_world_copy(world, tmp_path_factory) -> WorldCopy:
    """One copy shared by a module's tests: their common set-up writes to it; the tests then only read
    it, or write objects no other test of the module looks at."""
    return copy_world(world, tmp_path_factory.mktemp("world-copy"))
