"""Shared fixtures. Prefect runs on its real local engine, with a private home and no telemetry."""

from __future__ import annotations

import os
import tempfile

_PREFECT_HOME = tempfile.mkdtemp(prefix="osteo-prefect-")
os.environ["PREFECT_HOME"] = _PREFECT_HOME
os.environ.pop("PREFECT_API_URL", None)

from flows.logging_quiet import configure_prefect_env  # noqa: E402

configure_prefect_env()  # the product's own Prefect defaults, before anything imports Prefect

import datetime as dt  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import polars as pl  # noqa: E402
import pytest  # noqa: E402

from osteo_core.decide.rules import load_rules  # noqa: E402
from osteo_core.ingest.profiles import load_profile  # noqa: E402
from osteo_core.resources import shipped_toml  # noqa: E402
from schemas.scans import SCANS_COLUMNS, UNSPECIFIED_T  # noqa: E402

AS_OF = dt.date(2026, 1, 1)

# A valid postmenopausal woman's exam: each test changes only what it is about.
BASE_EXAM: dict[str, str] = {
    "patient_id": "P1",
    "exam_id": "E1",
    "exam_date": "2024-03-01",
    "sex": "F",
    "birth_date": "1950-06-15",
    "menopausal_status": "post",
    "spine_t": "-0.5",
    "total_hip_t": "-1.8",
    "femoral_neck_t": "-1.1",
}


def exam(**changes: Any) -> dict[str, str | None]:
    """One scans row as text; ``None`` means a blank cell."""
    row: dict[str, str | None] = dict(BASE_EXAM)
    row.update({k: (None if v is None else str(v)) for k, v in changes.items()})
    return row


def scans_frame(rows: list[dict[str, str | None]], source_file: str = "scans.csv") -> pl.DataFrame:
    """Text frame as the ingest stage produces it (all canonical columns, source columns)."""
    given = {k for r in rows for k in r}
    # an unsited T-score column is read only by a profile that says so: written only when a row gives it
    columns = [c for c in SCANS_COLUMNS if c != UNSPECIFIED_T or c in given] + sorted(given - set(SCANS_COLUMNS))
    frame = pl.DataFrame([{c: r.get(c) for c in columns} for r in rows], schema={c: pl.Utf8 for c in columns})
    return frame.with_columns(
        pl.lit(source_file).alias("source_file"), pl.int_range(1, frame.height + 1, dtype=pl.Int64).alias("source_row")
    )


def write_scans_csv(path: Path, rows: list[dict[str, str | None]]) -> Path:
    scans_frame(rows).drop("source_file", "source_row").write_csv(path)
    return path


def two_published_runs(folder: Path) -> tuple[Path, Path]:
    """An output folder with two published runs: one exam as of 2026-01-01, then two exams a week later.
    Returns the folder and the first run's folder (``current`` points at the second)."""
    from osteo_core.pipeline.stages import ScreenRequest, run_screen
    from osteo_core.publish import folder as publish

    out = folder / "out"
    one = write_scans_csv(folder / "one.csv", [exam()])
    run_screen(ScreenRequest(scans=[str(one)], out=str(out), as_of="2026-01-01"))
    first = publish.current_run(out)
    two = write_scans_csv(folder / "two.csv", [exam(), exam(exam_id="E2", patient_id="P2")])
    run_screen(ScreenRequest(scans=[str(two)], out=str(out), as_of="2026-01-08"))
    return out, first


@pytest.fixture(scope="session")
def standard_rules():
    return load_rules("standard")


@pytest.fixture(scope="session")
def generic_profile():
    return load_profile("generic")


@pytest.fixture(scope="session")
def bounds():
    return shipped_toml("validation/scans.toml")


@pytest.fixture(scope="session")
def prefect_engine():
    """One real local Prefect server for the session's engine-level tests."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=60):
        yield


@pytest.fixture(scope="session")
def screen_rows(standard_rules, generic_profile, bounds):
    """Text rows → (screening frame, validation result) through the real validation and rules."""
    from osteo_core.decide.screening import screen
    from osteo_core.validate.scans import validate_scans

    def run(rows, rules=standard_rules, as_of=AS_OF):
        result = validate_scans(scans_frame(rows).lazy(), generic_profile, as_of, bounds)
        assert result.quarantine.is_empty(), result.quarantine.to_dicts()
        return screen(result.valid.lazy(), rules).collect()

    return run


# headless Chromium as the report and notebook tests run it: no network of its own, nothing kept between runs
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


@pytest.fixture(scope="session")
def chromium() -> str:
    """Headless Chromium for the report test (``make browser`` installs it; ``make test`` runs that first)."""
    import shutil

    found = shutil.which("chromium") or shutil.which("chromium-browser")
    return found or pytest.fail("the report test needs Chromium: run `make browser` (or install chromium)")


def write_synthetic(
    folder: Path,
    patients: int,
    seed: int,
    fractures_per_exam: float = 0.3,
    roster: bool = False,
    recent_fractures: float = 0.0,
) -> dict[str, Path]:
    """Synthetic scans, medications and fractures exports (and with ``roster`` a population roster) as CSV
    files in ``folder``; ``recent_fractures``: that share of patients gets a fracture in the last two years
    (half of them treated after it), as the quality measures look for."""
    import polars as pl

    from osteo_core.demo import synthetic

    scans = synthetic.registry(patients, seed=seed)
    paths = {"scans": folder / "scans.csv", "meds": folder / "meds.csv", "fractures": folder / "fx.csv"}
    scans.write_csv(paths["scans"])
    recent, follow_up = synthetic.recent_fractures(scans, seed=seed, share=recent_fractures)
    pl.concat([synthetic.medications(scans, seed=seed), follow_up]).write_csv(paths["meds"])
    fractures = synthetic.fractures(scans, seed=seed, per_exam=fractures_per_exam)
    pl.concat([fractures, recent]).write_csv(paths["fractures"])
    if roster:
        paths["population"] = folder / "roster.csv"
        synthetic.roster(scans, seed=seed).write_csv(paths["population"])
    return paths


def screen_synthetic(
    paths: dict[str, Path], out: Path, as_of: str, dask_address: str | None = None, **options: Any
) -> dict[str, Any]:
    """Screen ``write_synthetic`` files: plainly (no Prefect), or with ``dask_address`` through the Prefect
    flow with its partitions on that Dask cluster."""
    from osteo_core.pipeline.stages import ScreenRequest, run_screen

    run = run_screen
    if dask_address:
        from flows.screen import run_flow

        run = lambda request: run_flow(request, dask_address=dask_address)  # noqa: E731
    return run(
        ScreenRequest(
            scans=[str(paths["scans"])],
            meds=str(paths["meds"]),
            fractures=str(paths["fractures"]),
            population=str(paths["population"]) if "population" in paths else None,
            out=str(out),
            as_of=as_of,
            **options,
        )
    )


def sql_json(capsys, out: Path, query: str) -> list[dict[str, Any]]:
    """Rows of ``osteo sql --format json`` (through the real CLI entry point)."""
    import json

    from osteo_core.cli import main

    capsys.readouterr()
    assert main(["sql", "--out", str(out), "--format", "json", query]) == 0
    return json.loads(capsys.readouterr().out)


def write_ndjson_export(folder: Path, **resources: list[dict]) -> Path:
    """A FHIR Bulk Data export folder: one ``<ResourceType>.ndjson`` per keyword, one resource per line."""
    import json

    folder.mkdir(parents=True, exist_ok=True)
    for kind, items in resources.items():
        (folder / f"{kind}.ndjson").write_text("".join(json.dumps(r) + "\n" for r in items), encoding="utf-8")
    return folder


def folder_digest(folder: Path) -> dict[str, str]:
    """Every entry under ``folder``: files by content, links by target, folders by name (nothing changed = equal)."""
    import hashlib

    found = {}
    for path in sorted(folder.rglob("*")):
        name = str(path.relative_to(folder))
        if path.is_symlink():
            found[name] = "-> " + str(path.readlink())
        elif path.is_file():
            found[name] = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            found[name] = "folder"
    return found


# a real PostgreSQL server for the OMOP tests, started once per session when a test asks for it (postgres_server.py)
from postgres_server import postgres_server  # noqa: E402,F401
from prefect_server import prefect_server  # noqa: E402,F401  (a real Prefect server, once per session)
