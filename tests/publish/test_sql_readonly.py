"""`osteo sql` and the notebook's connection read the published tables and nothing else.

Each attack runs through the real CLI entry point against a real published screen. It must fail as a one-line
``osteo: SQL error: ...`` (exit 2), and afterwards every published file is byte-identical and no file has appeared
in the output folder or beside it.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest
from conftest import screen_synthetic, write_synthetic

from osteo_core.cli import main


def _tree(folder: Path) -> dict[str, str]:
    """Every path under ``folder`` (symlinks followed) -> SHA-256 of its bytes, ``dir`` or ``link -> target``."""
    found: dict[str, str] = {}
    for root, dirs, files in os.walk(folder, followlinks=True):
        for name in dirs:
            path = Path(root, name)
            found[str(path.relative_to(folder))] = f"link -> {os.readlink(path)}" if path.is_symlink() else "dir"
        for name in files:
            path = Path(root, name)
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            found[str(path.relative_to(folder))] = digest + (f" via {os.readlink(path)}" if path.is_symlink() else "")
    return found


@pytest.fixture(scope="module")
def published(tmp_path_factory) -> dict[str, Any]:
    base = tmp_path_factory.mktemp("sql-readonly")
    inputs = base / "inputs"
    inputs.mkdir()
    out = base / "out"
    screen_synthetic(write_synthetic(inputs, 300, seed=11), out, "2026-01-01")
    outside = base / "outside"  # a sibling folder a user can write to: nothing may land here either
    outside.mkdir()
    pl.DataFrame({"secret": ["not for sql"]}).write_parquet(outside / "other.parquet")
    duckdb.connect(str(outside / "other.duckdb")).close()
    run = (out / "current").resolve()
    return {"base": base, "out": out, "run": run, "outside": outside}


def _state(published: dict[str, Any]) -> dict[str, str]:
    return _tree(published["base"])


ATTACKS = {
    "copy_over_published": "COPY (SELECT * FROM screening WHERE who_category = 'normal') TO '{out}/screening.parquet'",
    "copy_over_published_no_tmp": "COPY (SELECT * FROM screening LIMIT 1) TO '{out}/screening.parquet' "
    "(FORMAT parquet, USE_TMP_FILE false)",
    "copy_over_run_folder_file": "COPY (SELECT * FROM screening LIMIT 1) TO '{run}/screening.parquet' "
    "(FORMAT parquet, USE_TMP_FILE false)",
    "copy_over_manifest": "COPY (SELECT 1 AS x) TO '{out}/manifest.json' (FORMAT csv, USE_TMP_FILE false)",
    "copy_patients_outside": "COPY patients TO '{outside}/patients.csv'",
    "copy_relative_path": "COPY patients TO 'patients-leak.csv'",
    "export_database": "EXPORT DATABASE '{outside}/export'",
    "read_text_system_file": "SELECT * FROM read_text('/etc/passwd')",
    "read_text_shadow": "SELECT * FROM read_text('/etc/shadow')",
    "read_csv_system_file": "SELECT * FROM read_csv('/etc/passwd', sep = ':')",
    "read_blob_system_file": "SELECT * FROM read_blob('/etc/passwd')",
    "sniff_csv_system_file": "SELECT * FROM sniff_csv('/etc/passwd')",
    "glob_root": "SELECT * FROM glob('/root/*')",
    "read_parquet_outside": "SELECT * FROM read_parquet('{outside}/other.parquet')",
    "read_parquet_unpublished_run_file": "SELECT count(*) FROM read_parquet('{run}/exams/part-000.parquet')",
    "attach_new_file": "ATTACH '{outside}/new.duckdb' AS x",
    "attach_existing_file": "ATTACH '{outside}/other.duckdb' AS x",
    "attach_published_catalog": "ATTACH '{out}/osteo.duckdb' AS pub",
    "install_extension": "INSTALL httpfs",
    "force_install_extension": "FORCE INSTALL httpfs",
    "install_community_extension": "INSTALL h3 FROM community",
    "load_extension": "LOAD httpfs",
    "set_external_access_on": "SET enable_external_access = true",
    "unlock_configuration": "SET lock_configuration = false",
    "reset_lock_configuration": "RESET lock_configuration",
    "reset_external_access": "RESET enable_external_access",
    "set_allowed_paths": "SET allowed_paths = ['/etc/passwd']",
    "set_allowed_directories": "SET allowed_directories = ['/']",
    "enable_filesystems": "SET disabled_filesystems = ''",
    "allow_community_extensions": "SET allow_community_extensions = true",
    "set_temp_directory": "SET temp_directory = '{outside}/spill'",
    "set_threads": "SET threads = 1",
    "query_log_file": "SET log_query_path = '{outside}/queries.log'",
    "persistent_secret": "CREATE PERSISTENT SECRET leak (TYPE s3, KEY_ID 'a', SECRET 'b')",
}


@pytest.mark.parametrize("sql", ATTACKS.values(), ids=ATTACKS.keys())
def test_attack_is_refused_and_nothing_changes(published, capsys, monkeypatch, sql):
    monkeypatch.chdir(published["outside"])  # a relative path lands beside the output, where the check sees it
    monkeypatch.setenv("HOME", str(published["outside"]))  # so do DuckDB's ~/.duckdb extensions and secrets
    before = _state(published)
    capsys.readouterr()
    query = sql.format(out=published["out"], run=published["run"], outside=published["outside"])
    code = main(["sql", "--out", str(published["out"]), query])
    captured = capsys.readouterr()
    assert code == 2, "the statement ran"  # its output is not shown: it may hold system files or patient rows
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("osteo: SQL error:"), captured.err[:300]
    assert "Traceback" not in captured.err and captured.out == ""
    assert _state(published) == before


def test_read_only_connection_from_python_refuses_copy(published):
    """The notebook's way in: ``connect_read_only`` reads the tables and nothing else."""
    from osteo_core.publish.catalog import connect_read_only

    before = _state(published)
    con = connect_read_only(published["out"])
    try:
        assert con.execute("SELECT count(*) FROM screening").fetchone()[0] > 0
        for sql in (
            f"COPY (SELECT * FROM screening LIMIT 1) TO '{published['out']}/screening.parquet' (USE_TMP_FILE false)",
            f"ATTACH '{published['out']}/osteo.duckdb' AS pub",
            "SET enable_external_access = true",
            "SET lock_configuration = false",
        ):
            with pytest.raises((duckdb.PermissionException, duckdb.InvalidInputException)):
                con.execute(sql)
        names = {r[0] for r in con.sql("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()}
        assert {"screening", "patients", "care_gaps", "medications", "fractures", "untreated_high_risk"} <= names
    finally:
        con.close()
    assert _state(published) == before


def test_read_only_connection_keeps_the_run_it_opened(published, tmp_path):
    """``current`` is resolved once: a screen published meanwhile does not mix into an open connection."""
    import shutil

    from osteo_core.publish.catalog import connect_read_only

    out = tmp_path / "out"
    shutil.copytree(published["run"], out / "runs" / "a", symlinks=True)
    shutil.copytree(published["run"], out / "runs" / "b", symlinks=True)
    newer = pl.read_parquet(out / "runs" / "b" / "screening.parquet").head(5)
    newer.write_parquet(out / "runs" / "b" / "screening.parquet")
    (out / "current").symlink_to(Path("runs") / "a", target_is_directory=True)
    con = connect_read_only(out)
    try:
        n = con.execute("SELECT count(*) FROM screening").fetchone()[0]
        (out / ".next").symlink_to(Path("runs") / "b", target_is_directory=True)
        os.replace(out / ".next", out / "current")
        assert con.execute("SELECT count(*) FROM screening").fetchone()[0] == n > 5
    finally:
        con.close()
    again = connect_read_only(out)
    try:
        assert again.execute("SELECT count(*) FROM screening").fetchone()[0] == 5
    finally:
        again.close()


def test_session_objects_die_with_the_session(published, capsys, monkeypatch):
    """DDL reaches only the connection's own in-memory catalog: the next query sees the published tables again."""
    monkeypatch.chdir(published["outside"])
    before = _state(published)
    for sql in ("DROP VIEW screening", "CREATE TABLE t AS SELECT 1", "ATTACH ':memory:' AS scratch"):
        main(["sql", "--out", str(published["out"]), sql])
    assert _sql(capsys, published["out"], "--format", "csv", "SELECT count(*) > 0 AS ok FROM screening") == "ok\ntrue\n"
    assert _state(published) == before


def test_no_published_screen_is_an_input_error(tmp_path, capsys):
    assert main(["sql", "--out", str(tmp_path), "SELECT 1"]) == 2
    err = capsys.readouterr().err
    assert "no published screen here" in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def _sql(capsys, out: Path, *args: str) -> str:
    capsys.readouterr()
    assert main(["sql", "--out", str(out), *args]) == 0
    return capsys.readouterr().out


def test_selects_over_the_published_tables_work(published, capsys):
    out = published["out"]
    before = _state(published)
    screening = pl.read_parquet(out / "screening.parquet")
    lines = _sql(capsys, out, "--format", "csv", "SELECT count(*) AS n FROM screening").splitlines()
    assert lines == ["n", str(screening.height)]
    gaps = pl.read_parquet(out / "care_gaps.parquet").filter(pl.col("gap") == "untreated_high_risk").height
    csv = _sql(capsys, out, "--format", "csv", "SELECT count(*) AS n, count(DISTINCT sex) FROM untreated_high_risk")
    assert csv.splitlines()[1].split(",")[0] == str(gaps)
    events = _sql(
        capsys,
        out,
        "--format",
        "csv",
        "SELECT (SELECT count(*) FROM medications) AS meds, (SELECT count(*) FROM fractures) AS fx",
    )
    meds, fx = (int(v) for v in events.splitlines()[1].split(","))
    assert meds > 0 and fx > 0
    table = _sql(capsys, out, "SELECT who_category, count(*) AS n FROM screening GROUP BY ALL ORDER BY ALL")
    assert "who_category" in table
    assert _state(published) == before


def test_csv_output_matches_the_parquet_file(published, capsys):
    out = published["out"]
    text = _sql(capsys, out, "--format", "csv", "SELECT exam_id, who_category FROM screening ORDER BY exam_id")
    expected = pl.read_parquet(out / "screening.parquet").select("exam_id", "who_category").sort("exam_id")
    assert text == expected.write_csv()


def test_a_query_can_be_held_to_the_run_its_caller_resolved(tmp_path):
    """``osteo measures`` reads the summary and the manifest of one run: a run published between the two
    lookups no longer mixes them (the query is held to the run resolved first)."""
    from conftest import two_published_runs

    from osteo_core.publish.catalog import query

    out, first = two_published_runs(tmp_path)
    assert query(out, "SELECT count(*) AS n FROM screening").item() == 2
    assert query(out, "SELECT count(*) AS n FROM screening", run=first).item() == 1
