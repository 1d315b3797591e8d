"""Issue 12 §4: ``OUT/osteo.duckdb`` works wherever the output folder goes, from any DuckDB client, and
describes itself: every table, view and column carries its description as a DuckDB comment."""

import json
import shutil
import subprocess
import sys

import duckdb
import polars as pl
import pytest
from conftest import screen_synthetic, write_synthetic

from osteo_core.publish import folder as publish
from schemas.tables import CATALOG_TABLES, TABLE_DESCRIPTIONS, catalog_column_descriptions

VIEWS = (*CATALOG_TABLES, *publish.VIEWS)


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    folder = tmp_path_factory.mktemp("catalog")
    paths = write_synthetic(folder, 120, seed=31)
    screen_synthetic(paths, folder / "out", "2026-01-01")
    counts = {t: pl.read_parquet(publish.table_files(folder / "out" / "current", t)).height for t in CATALOG_TABLES}
    return folder, counts


def _view_counts(con: duckdb.DuckDBPyConnection, database: str = "") -> dict[str, int]:
    prefix = f"{database}." if database else ""
    return {name: con.execute(f"SELECT count(*) FROM {prefix}{name}").fetchone()[0] for name in VIEWS}


def test_the_catalog_keeps_working_after_the_folder_is_moved(published, tmp_path, monkeypatch):
    """Before: the views held absolute paths, and a moved folder failed with 'No files found'."""
    folder, counts = published
    moved = tmp_path / "elsewhere" / "osteo-out"
    shutil.copytree(folder / "out", moved, symlinks=True)  # a copy with the folder's own links, as cp -a makes
    shutil.move(str(moved), str(tmp_path / "renamed"))
    monkeypatch.chdir(tmp_path)  # a client whose working directory is neither folder
    with duckdb.connect(str(tmp_path / "renamed" / "osteo.duckdb"), read_only=True) as con:
        seen = _view_counts(con)
    assert {t: seen[t] for t in CATALOG_TABLES} == counts and seen["untreated_high_risk"] > 0
    with duckdb.connect() as con:  # attached under another name, as DBeaver or a notebook may do
        con.execute(f"ATTACH '{tmp_path / 'renamed' / 'osteo.duckdb'}' AS screen_copy (READ_ONLY)")
        assert _view_counts(con, "screen_copy") == seen


def test_the_catalog_holds_no_path(published):
    folder, _ = published
    with duckdb.connect(str(folder / "out" / "osteo.duckdb"), read_only=True) as con:
        sql = " ".join(r[0] for r in con.execute("SELECT sql FROM duckdb_views() WHERE NOT internal").fetchall())
    assert "read_parquet" not in sql and str(folder) not in sql


def test_every_table_view_and_column_is_described_in_duckdb_itself(published):
    folder, _ = published
    with duckdb.connect(str(folder / "out" / "osteo.duckdb"), read_only=True) as con:
        views = dict(con.execute("SELECT view_name, comment FROM duckdb_views() WHERE NOT internal").fetchall())
        columns = con.execute(
            "SELECT table_name, column_name, comment FROM duckdb_columns() WHERE schema_name = 'main' AND NOT internal"
        ).fetchall()
    assert views == {name: TABLE_DESCRIPTIONS[name] for name in VIEWS}
    known = [(t, c, comment) for t, c, comment in columns if c in catalog_column_descriptions(t)]
    assert {t for t, _, _ in known} == set(VIEWS)
    assert all(comment == catalog_column_descriptions(t)[c] for t, c, comment in known)
    described = {t for t, _, _ in columns} - {"medications", "fractures"}  # event exports may add their own columns
    assert all(comment for t, _, comment in columns if t in described)


def test_the_catalog_works_on_a_read_only_remount(published, tmp_path):
    """The output folder bind-mounted read-only at another path (as a shared drive would be)."""
    folder, counts = published
    mount = tmp_path / "mnt"
    mount.mkdir()
    script = (
        f"mount --bind {folder / 'out'} {mount} && mount -o remount,bind,ro {mount} && "
        f'cd / && {sys.executable} -c "import duckdb; '
        f"con = duckdb.connect('{mount / 'osteo.duckdb'}', read_only=True); "
        f"print(con.execute('SELECT count(*) FROM screening').fetchone()[0])\""
    )
    done = subprocess.run(
        ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert int(done.stdout.strip()) == counts["screening"]


def test_views_mode_keeps_a_tiny_catalog_of_views_over_the_run_folder(tmp_path, monkeypatch):
    """OSTEO_CATALOG=views: no copy of the rows (for registries where its time counts), comments still there,
    and the manifest says which kind of catalog the run has."""
    monkeypatch.setenv("OSTEO_CATALOG", "views")
    paths = write_synthetic(tmp_path, 40, seed=32)
    manifest = screen_synthetic(paths, tmp_path / "out", "2026-01-01")
    assert manifest["catalog"] == "views"
    with duckdb.connect(str(tmp_path / "out" / "osteo.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM duckdb_tables() WHERE NOT internal").fetchone()[0] == 0
        assert (
            con.execute("SELECT count(*) FROM screening").fetchone()[0]
            == pl.read_parquet(tmp_path / "out" / "screening.parquet").height
        )
        comment = con.execute(
            "SELECT comment FROM duckdb_columns() WHERE table_name = 'screening' AND column_name = 'who_category'"
        ).fetchone()[0]
    assert comment == catalog_column_descriptions("screening")["who_category"]


def test_a_copy_catalog_is_recorded_in_the_manifest(published):
    folder, _ = published
    assert json.loads((folder / "out" / "manifest.json").read_text())["catalog"] == "copy"
