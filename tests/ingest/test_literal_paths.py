"""Issue 30 §1: every path the product reads is read as exactly that file, never as a pattern.

Before, Polars (``scan_parquet``, ``read_parquet``, ``read_parquet_schema``, ``read_csv``) and DuckDB
(``read_parquet``) read a path holding ``[``, ``*`` or ``?`` as a glob: the screen's own files under an ``--out``
named ``out [1]*?`` were looked for in ``out 1ab`` (or not found), the ``--lsc`` file ``lsc[1].csv`` was
``lsc1.csv``, a marks file ``marks[1].csv`` was ``marks1.csv``, and DuckDB could not even write a catalog under a
folder with a ``?`` in its name. The ``--lsc`` file and a marks CSV are now read as an export is (delimiter,
encoding, BOM sniffed), with the screen's messages: a line number, never a cell.

Each screen here writes under ``BATCH``, a folder whose own name is a pattern.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import polars as pl
import pytest
from conftest import exam, sql_json, write_scans_csv

from osteo_core.cli import main
from osteo_core.errors import InputError
from osteo_core.gaps.lsc import load_device_lsc
from osteo_core.ingest.readers import sha256_of
from osteo_core.pipeline.request import estimated_rows
from osteo_core.pipeline.stages import ScreenRequest, run_screen
from osteo_core.publish import folder as publish
from osteo_core.publish import outreach
from osteo_core.resources import data_dir
from osteo_core.terminal_text import escape_controls

BATCH = "batch [1]*?"
AS_OF = "2026-01-01"
LATER = "2026-01-08"
HIGH_RISK = {"femoral_neck_t": "-2.8", "exam_date": "2025-10-01"}  # an untreated high-risk gap: a worklist row
UNTREATED = "untreated_high_risk"
KEY = "a-long-enough-research-key-for-tests"


def _rows(prefix: str, count: int, **changes: str) -> list[dict[str, str | None]]:
    """``count`` valid exams of distinct patients ``<prefix>0000``…, exam ids ``X<prefix>0000``…"""
    return [exam(patient_id=f"{prefix}{n:04d}", exam_id=f"X{prefix}{n:04d}", **changes) for n in range(count)]


def _published(out: Path, table: str) -> pl.DataFrame:
    return pl.read_parquet(publish.current_run(out) / f"{table}.parquet", glob=False)


def _patients(out: Path) -> set[str]:
    return set(_published(out, "screening").get_column("patient_id"))


@pytest.fixture
def batch(tmp_path: Path) -> Path:
    folder = tmp_path / BATCH
    folder.mkdir()
    return folder


# --- inputs -------------------------------------------------------------------------------------------------


def _scans_folder(folder: Path) -> dict[str, int]:
    """The issue's folder: four files whose names a glob would mix up, each with its own patients."""
    folder.mkdir()
    sizes = {"scans[1].csv": ("A", 100), "scans1.csv": ("B", 200), "sc*ans.csv": ("C", 3), "naïve scans.csv": ("D", 4)}
    for name, (prefix, count) in sizes.items():
        write_scans_csv(folder / name, _rows(prefix, count))
    return {name: count for name, (_, count) in sizes.items()}


def test_a_folder_scan_reads_every_file_once_as_itself_whatever_its_name(batch, capsys):
    """Before: "402 in = 199 valid + 2 quarantined + 201 duplicate", the bracketed file's rows lost."""
    folder = batch / "p5"
    sizes = _scans_folder(folder)
    out = batch / "out"
    assert main(["screen", "--scans", str(folder), "--out", str(out), "--as-of", AS_OF]) == 0, capsys.readouterr().err
    manifest = publish.published_manifest(out)
    read = {Path(entry["path"]).name: (entry["rows"], entry["sha256"]) for entry in manifest["inputs"]}
    assert read == {name: (count, sha256_of(folder / name)) for name, count in sizes.items()}
    assert manifest["rows"]["rows_in"] == sum(sizes.values()) == 307
    assert manifest["rows"]["valid"] == 307 and manifest["rows"]["duplicate"] == 0
    assert {p[0] for p in _patients(out)} == {"A", "B", "C", "D"} and len(_patients(out)) == 307


def test_a_bracketed_file_given_alone_is_read_and_recorded_as_itself(batch):
    """Before: "scan rows: 201 in", every exam from ``scans1.csv``, the manifest naming ``scans[1].csv``."""
    folder = batch / "p5"
    _scans_folder(folder)
    given = folder / "scans[1].csv"
    manifest = run_screen(ScreenRequest(scans=[str(given)], out=str(batch / "out"), as_of=AS_OF))
    [entry] = manifest["inputs"]
    assert (entry["path"], entry["rows"], entry["sha256"]) == (str(given), 100, sha256_of(given))
    assert manifest["rows"]["rows_in"] == 100 and manifest["rows"]["valid"] == 100
    assert {p[0] for p in _patients(batch / "out")} == {"A"}


def test_meds_fractures_and_roster_files_with_brackets_are_read_as_themselves(batch):
    folder = batch / "events [1]"
    folder.mkdir()
    scans = write_scans_csv(folder / "scans[1].csv", _rows("A", 3))
    texts = {
        "meds": ("patient_id,event_date,drug\n", "A{n:04d},2025-01-01,alendronate\n"),
        "fractures": ("patient_id,fracture_date,icd10\n", "A{n:04d},2024-01-01,S72.001A\n"),
        "population": ("patient_id,sex,birth_date\n", "A{n:04d},F,1950-06-15\n"),
    }
    given = {}
    for kind, (header, line) in texts.items():
        given[kind] = folder / f"{kind}[1].csv"
        given[kind].write_text(header + "".join(line.format(n=n) for n in range(2)), encoding="utf-8")
        # what a pattern would read instead: other rows, and for the roster patients the scans do not have
        (folder / f"{kind}1.csv").write_text(header + "".join(line.format(n=n) for n in range(5)), encoding="utf-8")
    manifest = run_screen(
        ScreenRequest(scans=[str(scans)], **{k: str(p) for k, p in given.items()}, out=str(batch / "out"), as_of=AS_OF)
    )
    read = {entry["input"]: (entry["path"], entry["rows"], entry["sha256"]) for entry in manifest["inputs"]}
    assert read == {"scans": (str(scans), 3, sha256_of(scans))} | {
        kind: (str(path), 2, sha256_of(path)) for kind, path in given.items()
    }
    assert all(manifest["rows_by_input"][kind]["rows_in"] == 2 for kind in given)


def test_a_fhir_export_folder_named_like_a_pattern_is_read_as_itself(batch):
    """``export [1]*`` as a pattern is also ``export 1 (half)``, which holds only half the sample's results."""
    sample = data_dir() / "samples" / "fhir_bulk_sample"
    export = batch / "export [1]*"
    shutil.copytree(sample, export)
    decoy = batch / "export 1 (half)"
    shutil.copytree(sample, decoy)
    lines = (decoy / "Observation.ndjson").read_text(encoding="utf-8").splitlines(keepends=True)
    (decoy / "Observation.ndjson").write_text("".join(lines[: len(lines) // 2]), encoding="utf-8")
    plain = run_screen(ScreenRequest(scans=[str(sample)], out=str(batch / "plain"), as_of=AS_OF))
    manifest = run_screen(ScreenRequest(scans=[str(export)], out=str(batch / "out"), as_of=AS_OF))
    assert manifest["inputs_given"] == ["scans", "meds", "fractures"]
    assert [(Path(e["path"]).parent, e["rows"]) for e in manifest["inputs"]] == [
        (export, e["rows"]) for e in plain["inputs"]
    ]
    for table in ("screening", "care_gaps", "treatment_intervals"):
        assert _published(batch / "out", table).equals(_published(batch / "plain", table)), table


def test_the_partition_estimate_counts_a_bracketed_parquet_file_itself(tmp_path):
    """Automatic partitioning reads a Parquet file's row count from its metadata: of that file."""
    pl.DataFrame({"patient_id": [f"A{n}" for n in range(100)]}).write_parquet(tmp_path / "scans[1].parquet")
    pl.DataFrame({"patient_id": [f"B{n}" for n in range(200)]}).write_parquet(tmp_path / "scans1.parquet")
    assert estimated_rows(tmp_path / "scans[1].parquet") == 100


def test_names_with_a_quote_a_newline_and_non_ascii_are_read(batch):
    scans = write_scans_csv(batch / 'it\'s "q"\nnaïve [1].csv', _rows("A", 5))
    lsc = batch / "lsc 'q'\n[1].csv"
    lsc.write_text("device_id,site,lsc\nD1,femoral_neck,0.02\n", encoding="utf-8")
    manifest = run_screen(ScreenRequest(scans=[str(scans)], lsc=str(lsc), out=str(batch / "out"), as_of=AS_OF))
    assert [(e["path"], e["rows"]) for e in manifest["inputs"]] == [(str(scans), 5)]
    assert len(_patients(batch / "out")) == 5


# --- the output folder ----------------------------------------------------------------------------------------


def _screen(scans: Path, out: Path, as_of: str) -> int:
    return main(["screen", "--scans", str(scans), "--out", str(out), "--as-of", as_of])


def test_every_command_reads_its_own_output_folder_whose_name_is_a_pattern(tmp_path, capsys, monkeypatch):
    """``out [1]*?`` as a pattern is ``out 1ab``, which holds another published run (two other patients)."""
    sibling = tmp_path / "out 1ab"
    assert _screen(write_scans_csv(tmp_path / "other.csv", _rows("Z", 2, **HIGH_RISK)), sibling, AS_OF) == 0
    out = tmp_path / "out [1]*?"
    scans = write_scans_csv(tmp_path / "scans.csv", [exam(patient_id=p, exam_id=f"X-{p}", **HIGH_RISK) for p in "KLM"])
    assert _screen(scans, out, AS_OF) == 0
    first = publish.current_run(out)
    assert _screen(scans, out, LATER) == 0  # compared with the first run: its gaps are read back
    lifecycle = publish.published_manifest(out)["lifecycle"]
    assert lifecycle["base_run_id"] == first.name and lifecycle["persisting"] == 3 and lifecycle["new"] == 0
    capsys.readouterr()

    assert sql_json(capsys, out, "SELECT count(*) AS n FROM screening") == [{"n": 3}]
    assert main(["worklist", "mark", "K", UNTREATED, "--status", "contacted", "--out", str(out)]) == 0
    marks = tmp_path / "marks [1].csv"
    marks.write_text(f"patient_id;gap;status\nL;{UNTREATED};contacted\n", encoding="utf-8")
    (tmp_path / "marks 1.csv").write_text(f"patient_id;gap;status\nZ0000;{UNTREATED};contacted\n", encoding="utf-8")
    assert main(["worklist", "mark", "--file", str(marks), "--out", str(out)]) == 0, capsys.readouterr().err
    capsys.readouterr()
    assert main(["worklist", "--out", str(out), "--format", "json", "--by-gap"]) == 0
    listed = {(r["patient_id"], r["outreach_status"]) for r in json.loads(capsys.readouterr().out)}
    assert listed == {("K", "contacted"), ("L", "contacted"), ("M", None)}
    assert not (sibling / outreach.STORE).exists()

    assert main(["explain", "X-K", "--out", str(out)]) == 0
    assert "Exam X-K of 2025-10-01" in capsys.readouterr().out
    assert main(["explain", "XZ0000", "--out", str(out)]) == 2  # the sibling's exam is not this folder's

    # DuckDB reads a pattern that matches nothing as the literal path: give it a match, the sibling's run
    shutil.copytree(publish.current_run(sibling), sibling / publish.RUNS / publish.current_run(out).name)
    monkeypatch.setenv("OSTEO_RESEARCH_KEY", KEY)
    dest = tmp_path / "research [1]*?"
    assert main(["export-research", "--out", str(out), "--dest", str(dest)]) == 0, capsys.readouterr().err
    extract = json.loads((dest / "extract.json").read_text(encoding="utf-8"))
    assert extract["source_run"] == publish.current_run(out).name
    assert extract["tables"] == {t: _published(out, t).height for t in ("screening", "patients", "care_gaps")}
    assert extract["tables"]["screening"] == 3

    catalog = duckdb.connect(str(publish.current_run(out) / publish.CATALOG), read_only=True)
    try:
        assert catalog.execute("SELECT count(*) FROM screening").fetchall() == [(3,)]
    finally:
        catalog.close()


def test_an_output_folder_with_a_backslash_beside_a_bracket_is_written_and_read(tmp_path, capsys, monkeypatch):
    """DuckDB cannot name such a path at all (its glob splits at the backslash; its database path too): the
    catalog is written elsewhere and moved in, its tables read by Arrow; the research extract reads by Arrow."""
    out = tmp_path / "out\\[1]"
    assert _screen(write_scans_csv(tmp_path / "scans.csv", _rows("A", 4)), out, AS_OF) == 0, capsys.readouterr().err
    assert sql_json(capsys, out, "SELECT count(*) AS n FROM screening") == [{"n": 4}]
    monkeypatch.setenv("OSTEO_RESEARCH_KEY", KEY)
    dest = tmp_path / "research"
    assert main(["export-research", "--out", str(out), "--dest", str(dest)]) == 0, capsys.readouterr().err
    assert json.loads((dest / "extract.json").read_text(encoding="utf-8"))["tables"]["screening"] == 4


@pytest.mark.parametrize("name", ["run [1]*?", "run\\[1]"])
@pytest.mark.parametrize("copy", [True, False], ids=["copy", "views"])
def test_the_catalog_reads_its_own_run_folder_copied_or_as_views(tmp_path, name, copy):
    """``OSTEO_CATALOG=views`` names the files in its views: each as itself. A path DuckDB cannot name gets the
    copy instead of a view that would read nothing."""
    folder, decoy = tmp_path / name, tmp_path / "run 1ab"
    for where, rows in ((folder, 3), (decoy, 5)):
        where.mkdir()
        pl.DataFrame({"exam_id": [f"E{n}" for n in range(rows)]}).write_parquet(where / "screening.parquet")
    path = publish.write_catalog(folder, ["screening"], copy=copy)
    assert sorted(p.name for p in folder.iterdir()) == ["osteo.duckdb", "screening.parquet"]
    opened = shutil.copy(path, tmp_path / "catalog.duckdb")  # DuckDB itself cannot open a path with a backslash
    con = duckdb.connect(str(opened), read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM screening").fetchall() == [(3,)]
    finally:
        con.close()


# --- the --lsc file and marks files ----------------------------------------------------------------------------

LSC = [("D1", "femoral_neck", 0.02), ("Lunar-é", "spine", 0.03)]


def _lsc_text(separator: str = ",") -> str:
    lines = ["device_id", "site", "lsc"], *[(d, s, str(v)) for d, s, v in LSC]
    return "".join(separator.join(line) + "\r\n" for line in lines)


@pytest.mark.parametrize(
    "encoding, separator",
    [("utf-8", ","), ("utf-8", ";"), ("utf-8", "\t"), ("utf-8-sig", ","), ("cp1252", ";")],
    ids=["comma", "semicolon", "tab", "bom", "windows-1252"],
)
def test_the_lsc_file_is_read_as_itself_with_the_screens_sniffing(tmp_path, encoding, separator):
    """Before: ``lsc[1].csv`` read ``lsc1.csv``; a semicolon file had "required column(s) missing"; a
    Windows-1252 one "cannot be read (" and the reader's own words."""
    given = tmp_path / "lsc[1].csv"
    given.write_bytes(_lsc_text(separator).encode(encoding))
    (tmp_path / "lsc1.csv").write_text("device_id,site,lsc\nD9,spine,0.5\n", encoding="utf-8")
    assert load_device_lsc(str(given)).rows() == LSC


def test_an_lsc_file_that_cannot_be_read_or_holds_a_bad_value_names_the_line_never_a_cell(tmp_path):
    broken = tmp_path / "lsc \x1b\n[1].csv"
    broken.write_text('device_id,site,lsc\nSECRET-1,spine,0.02\n"SECRET-2,spine,0.03\n', encoding="utf-8")
    with pytest.raises(InputError) as caught:
        load_device_lsc(str(broken))
    assert str(caught.value) == escape_controls(
        f"{broken}: cannot be read as CSV (line 3: a quote opened there is never closed (a stray quote?))"
    )
    bad = tmp_path / "lsc.csv"
    bad.write_text("device_id,site,lsc\nSECRET-1,spine,0.02\nSECRET-2,spine,SECRET-3\n", encoding="utf-8")
    with pytest.raises(InputError) as caught:
        load_device_lsc(str(bad))
    assert str(caught.value).startswith(f"{bad} data row 2, column lsc: site must be one of ")
    assert "SECRET" not in str(caught.value)


@pytest.fixture(scope="module")
def marked_out(tmp_path_factory) -> Path:
    """A published run under an output folder named like a pattern: three untreated high-risk gaps."""
    folder = tmp_path_factory.mktemp("marks")
    scans = write_scans_csv(folder / "scans.csv", [exam(patient_id=p, exam_id=f"X-{p}", **HIGH_RISK) for p in "KLM"])
    out = folder / "out [1]*?"
    run_screen(ScreenRequest(scans=[str(scans)], out=str(out), as_of=AS_OF))
    return out


@pytest.mark.parametrize(
    "name, encoding, separator",
    [
        ("marks[1].csv", "utf-8", ","),
        ("marks.csv", "utf-8", ";"),
        ("marks.csv", "utf-8", "\t"),
        ("marks.csv", "utf-8-sig", ","),
        ("marks.csv", "cp1252", ";"),
        ("marks 'q'\nnaïve [1].csv", "utf-8", ","),
    ],
    ids=["brackets", "semicolon", "tab", "bom", "windows-1252", "quote-newline-non-ascii"],
)
def test_a_marks_csv_is_read_as_the_screen_reads_an_export(marked_out, tmp_path, capsys, name, encoding, separator):
    """Before: a semicolon marks CSV gave "missing column(s) patient_id, gap, status", a Windows-1252 one "not a
    readable CSV", and ``marks[1].csv`` read ``marks1.csv``."""
    note = f"rappelée ({tmp_path.name})"  # é: two bytes in UTF-8, one in Windows-1252
    lines = [("patient_id", "gap", "status", "note"), ("L", UNTREATED, "contacted", note)]
    marks = tmp_path / name
    marks.write_bytes("".join(separator.join(line) + "\n" for line in lines).encode(encoding))
    (tmp_path / "marks1.csv").write_text(f"patient_id,gap,status\nM,{UNTREATED},declined\n", encoding="utf-8")
    assert main(["worklist", "mark", "--file", str(marks), "--out", str(marked_out)]) == 0, capsys.readouterr().err
    latest = outreach.read_log(marked_out).marks.sort("mark").tail(1)
    assert latest.select("patient_id", "status", "note").rows() == [("L", "contacted", note)]


def test_a_marks_csv_with_a_stray_quote_names_the_line_never_a_cell(marked_out, tmp_path, capsys):
    marks = tmp_path / "marks \x1b[1].csv"
    marks.write_text(f'patient_id,gap,status\nL,{UNTREATED},contacted\n"M,{UNTREATED},contacted\n', encoding="utf-8")
    capsys.readouterr()
    assert main(["worklist", "mark", "--file", str(marks), "--out", str(marked_out)]) == 2
    err = capsys.readouterr().err
    assert (
        err
        == "osteo: "
        + escape_controls(
            f"{marks}: cannot be read as CSV (line 3: a quote opened there is never closed (a stray quote?))"
        )
        + "\n"
    )
