"""No silent misreads, no silent loss (issue 10): each case below once gave a wrong screen with exit 0.

Headers that appear twice or map twice, 8-bit and UTF-16 encodings, columns nobody maps, header-only
exports, runs that shrink, blank lines, duplicated event rows, non-data files in a folder, nested Parquet
columns and workbook sheets.
"""

from __future__ import annotations

import codecs
import json
from pathlib import Path

import polars as pl
import pytest
from conftest import exam, scans_frame, write_scans_csv

from osteo_core.cli import main
from osteo_core.errors import InputError, ShrinkExceeded
from osteo_core.ingest.readers import header_key, sniff_encoding
from osteo_core.pipeline.stages import ScreenRequest, run_screen
from osteo_core.resources import data_dir

AS_OF = "2026-01-01"
SAMPLE = data_dir() / "samples" / "densitometer_us_sample.csv"


def _request(tmp_path: Path, *scans: Path, **options) -> ScreenRequest:
    return ScreenRequest(scans=[str(s) for s in scans], out=str(tmp_path / "out"), as_of=AS_OF, **options)


def _published(tmp_path: Path, table: str = "screening") -> pl.DataFrame:
    return pl.read_parquet(tmp_path / "out" / f"{table}.parquet")


def _rows(n: int, **changes) -> list[dict]:
    return [exam(exam_id=f"E{i}", patient_id=f"P{i}", **changes) for i in range(n)]


def _csv_text(rows: list[dict]) -> str:
    return scans_frame(rows).drop("source_file", "source_row").write_csv()


# --- duplicate headers --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "second",
    ["femoral_neck_t", "Femoral_Neck_T", " femoral_neck_t ", "FEMORAL_NECK_T"],
    ids=["literal", "case", "spaces", "upper"],
)
def test_a_header_twice_stops_the_run_naming_file_and_columns(tmp_path, second):
    text = _csv_text([exam(femoral_neck_t="-1.0")]).splitlines()
    header, row = text[0], text[1]
    path = tmp_path / "scans.csv"
    path.write_text(f"{header},{second}\n{row},-4.5\n")
    with pytest.raises(InputError, match="duplicate column header") as err:
        run_screen(_request(tmp_path, path))
    assert err.value.source == str(path)
    position = len(header.split(",")) + 1
    assert f"'femoral_neck_t' (column {header.split(',').index('femoral_neck_t') + 1})" in err.value.problem
    assert f"{second.strip()!r} (column {position})" in err.value.problem
    assert not (tmp_path / "out").exists()


def test_two_vendor_columns_mapped_to_one_canonical_column_stop_the_run(tmp_path):
    lines = SAMPLE.read_text(encoding="utf-8").splitlines()
    path = tmp_path / "vendor.csv"
    path.write_text("\n".join([lines[0] + ",femoral_neck_t"] + [line + ",-4.5" for line in lines[1:]]) + "\n")
    with pytest.raises(InputError, match="all map to 'femoral_neck_t'") as err:
        run_screen(_request(tmp_path, path, profile="densitometer_us"))
    assert "'NECK_TSCORE'" in err.value.problem and "'femoral_neck_t'" in err.value.problem


def test_duplicate_headers_in_xlsx_are_refused_too(tmp_path):
    import xlsxwriter

    path = tmp_path / "s.xlsx"
    book = xlsxwriter.Workbook(path)
    sheet = book.add_worksheet()
    header = [*exam().keys(), "femoral_neck_t"]
    for column, name in enumerate(header):
        sheet.write(0, column, name)
        sheet.write(1, column, {**exam(), "femoral_neck_t": "-1.1"}.get(name) if column < len(header) - 1 else "-4.5")
    book.close()
    with pytest.raises(InputError, match="duplicate column header"):
        run_screen(_request(tmp_path, path))


@pytest.mark.parametrize(
    ("written", "profile_header"),
    [
        ("FRAX - Major Osteoporotic Fracture (%)", "FRAX – Major Osteoporotic Fracture (%)"),
        ("FRAX — Hip Fracture (%)", "FRAX – Hip Fracture (%)"),
        ("frax\u00a0–\u00a0hip   fracture (%)", "FRAX – Hip Fracture (%)"),
        ("\u201cNECK_TSCORE\u201d", '"NECK_TSCORE"'),
        ("PARENT\u2019S HIP", "PARENT'S HIP"),
    ],
)
def test_headers_match_whatever_dash_quote_or_space_was_typed(written, profile_header):
    assert header_key(written) == header_key(profile_header)


def test_header_written_with_a_hyphen_still_maps_frax(tmp_path):
    text = SAMPLE.read_text(encoding="utf-8").replace("FRAX – ", "FRAX - ")
    (tmp_path / "hyphen.csv").write_text(text, encoding="utf-8")
    manifest = run_screen(_request(tmp_path, tmp_path / "hyphen.csv", profile="densitometer_us", max_reject_rate=0.1))
    assert _published(tmp_path).get_column("frax_mof_adjusted").is_not_null().sum() == 30
    assert manifest["inputs"][0]["unmapped_columns"] == ["REFERRING PHYSICIAN"]


# --- encodings ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"a,b\n1,caf\xc3\xa9\n", "utf-8"),
        (codecs.BOM_UTF8 + b"a,b\n1,2\n", "utf-8-sig"),
        (codecs.BOM_UTF16_LE + "a,b\n1,é\n".encode("utf-16-le"), "utf-16"),
        (codecs.BOM_UTF16_BE + "a,b\n1,é\n".encode("utf-16-be"), "utf-16"),
        (b"a,b\n1,FRAX \x96 hip\n", "cp1252"),  # en dash in Windows-1252
        (b"a,b\n1,\x93quoted\x94 caf\xe9\n", "cp1252"),
        (b"a,b\n1,caf\xe9\n", "latin-1"),  # no byte in 0x80-0x9F: both read the same
        (b"a,b\n1,caf\xe9 \x81\n", "latin-1"),  # 0x81 is undefined in Windows-1252
    ],
)
def test_sniff_encoding(tmp_path, data, expected):
    path = tmp_path / "f.csv"
    path.write_bytes(data)
    assert sniff_encoding(path) == expected


def test_c1_byte_after_the_first_megabytes_still_decides(tmp_path):
    path = tmp_path / "f.csv"
    path.write_bytes(b"a,b\n" + b"1,caf\xe9\n" * 700_000 + b"2,\x96\n")
    assert sniff_encoding(path) == "cp1252"


def test_windows_1252_export_of_the_sample_keeps_its_frax(tmp_path):
    """Excel on Windows writes the sample's en dashes as byte 0x96: the FRAX headers must still map."""
    text = SAMPLE.read_text(encoding="utf-8").replace("\u2212", "-")  # 1252 has no minus sign
    (tmp_path / "utf8.csv").write_text(text, encoding="utf-8")
    (tmp_path / "win.csv").write_bytes(text.replace("\n", "\r\n").encode("cp1252"))
    options = {"profile": "densitometer_us", "max_reject_rate": 0.1}
    run_screen(ScreenRequest(scans=[str(tmp_path / "utf8.csv")], out=str(tmp_path / "a"), as_of=AS_OF, **options))
    manifest = run_screen(
        ScreenRequest(scans=[str(tmp_path / "win.csv")], out=str(tmp_path / "b"), as_of=AS_OF, **options)
    )
    assert manifest["inputs"][0]["encoding"] == "windows-1252"
    a = pl.read_parquet(tmp_path / "a" / "screening.parquet")
    b = pl.read_parquet(tmp_path / "b" / "screening.parquet")
    assert b.get_column("frax_mof_adjusted").is_not_null().sum() == 30
    assert a.equals(b)


def test_utf16_export_is_read(tmp_path):
    path = tmp_path / "scans.csv"
    path.write_bytes(_csv_text(_rows(3, device_id="Genève")).encode("utf-16"))
    manifest = run_screen(_request(tmp_path, path))
    assert manifest["inputs"][0]["encoding"] == "utf-16 (BOM)"
    assert manifest["rows"]["valid"] == 3


def test_utf16_without_byte_order_mark_is_refused_not_misread(tmp_path):
    path = tmp_path / "scans.csv"
    path.write_bytes(_csv_text(_rows(2)).encode("utf-16-le"))
    with pytest.raises(InputError, match="NUL bytes"):
        run_screen(_request(tmp_path, path))


# --- columns nobody maps ------------------------------------------------------------------------------


def test_unmapped_columns_are_listed_in_manifest_and_summary(tmp_path, capsys, prefect_engine):
    path = tmp_path / "scans.csv"
    scans_frame(_rows(3, referring="Dr X", femoral_neck_tscore="-3.1")).drop("source_file", "source_row").write_csv(
        path
    )
    code = main(["screen", "--scans", str(path), "--out", str(tmp_path / "out"), "--as-of", AS_OF])
    out = capsys.readouterr().out
    assert code == 0
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["inputs"][0]["unmapped_columns"] == ["femoral_neck_tscore", "referring"]
    assert "unmapped columns in scans.csv (kept in the raw layer, not used): femoral_neck_tscore, referring" in out


# --- no silent loss -----------------------------------------------------------------------------------


def _screen_ok(tmp_path: Path, rows: list[dict]) -> dict:
    return run_screen(_request(tmp_path, write_scans_csv(tmp_path / "first.csv", rows)))


@pytest.mark.parametrize("body", ["", "\r\n\r\n", ",,,\n"], ids=["header-only", "blank-lines", "empty-cells"])
def test_an_export_with_no_rows_is_exit_2_and_leaves_the_published_screen(tmp_path, capsys, body):
    _screen_ok(tmp_path, _rows(5))
    before = _published(tmp_path)
    empty = tmp_path / "empty.csv"
    empty.write_text(_csv_text(_rows(1)).splitlines()[0] + "\n" + body)
    code = main(["screen", "--scans", str(empty), "--out", str(tmp_path / "out"), "--as-of", AS_OF])
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip() == f"osteo: {empty}: no rows: the scans export has a header but no data"
    assert _published(tmp_path).equals(before)
    assert len(list((tmp_path / "out" / "runs").iterdir())) == 1  # the failed run left nothing


def test_one_empty_file_among_several_is_published_and_named(tmp_path):
    """A month with no exams is possible; the file is listed with 0 rows and the summary says so."""
    from osteo_core.cli.summary import input_notes

    folder = tmp_path / "exports"
    folder.mkdir()
    write_scans_csv(folder / "2025-10.csv", _rows(3))
    (folder / "2025-11.csv").write_text(_csv_text(_rows(1)).splitlines()[0] + "\n")
    manifest = run_screen(_request(tmp_path, folder))
    assert [entry["rows"] for entry in manifest["inputs"]] == [3, 0]
    assert "no data rows in 2025-11.csv (scans): check the export is complete" in input_notes(manifest)


def test_a_folder_of_empty_files_is_no_rows(tmp_path):
    folder = tmp_path / "exports"
    folder.mkdir()
    for month in ("10", "11"):
        (folder / f"2025-{month}.csv").write_text(_csv_text(_rows(1)).splitlines()[0] + "\n")
    with pytest.raises(InputError, match="no rows") as err:
        run_screen(_request(tmp_path, folder))
    assert err.value.source == str(folder)


def test_empty_medications_export_is_refused_too(tmp_path):
    meds = tmp_path / "meds.csv"
    meds.write_text("patient_id,drug,event_date\n")
    with pytest.raises(InputError, match="no rows: the meds export"):
        run_screen(_request(tmp_path, write_scans_csv(tmp_path / "s.csv", _rows(2)), meds=str(meds)))


def test_a_run_that_shrinks_below_half_is_refused_and_keeps_the_published_run(tmp_path):
    _screen_ok(tmp_path, _rows(10))
    published = json.loads((tmp_path / "out" / "manifest.json").read_text())["run_id"]
    small = write_scans_csv(tmp_path / "small.csv", _rows(4))
    with pytest.raises(ShrinkExceeded, match="4 valid exams against 10") as err:
        run_screen(_request(tmp_path, small))
    assert err.value.exit_code == 3
    assert json.loads((tmp_path / "out" / "manifest.json").read_text())["run_id"] == published
    refused = [p for p in (tmp_path / "out" / "runs").iterdir() if p.name != published]
    refused_manifest = json.loads((refused[0] / "manifest.json").read_text())
    assert (refused_manifest["status"], refused_manifest["refused_because"]) == ("rejected", "max_shrink")
    assert (refused[0] / "quarantine.parquet").exists()


@pytest.mark.parametrize(("valid", "published"), [(5, True), (4, False)])
def test_shrink_boundary_is_exactly_half(tmp_path, valid, published):
    _screen_ok(tmp_path, _rows(10))
    request = _request(tmp_path, write_scans_csv(tmp_path / "next.csv", _rows(valid)))
    if published:
        assert run_screen(request)["rows"]["valid"] == 5
    else:
        with pytest.raises(ShrinkExceeded):
            run_screen(request)


def test_max_shrink_1_accepts_any_fall_and_the_cli_says_how(tmp_path, capsys, prefect_engine):
    _screen_ok(tmp_path, _rows(10))
    small = write_scans_csv(tmp_path / "small.csv", _rows(1))
    args = ["screen", "--scans", str(small), "--out", str(tmp_path / "out"), "--as-of", AS_OF]
    assert main(args) == 3
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "--max-shrink 1 accepts" in err  # nothing quarantined
    bad = write_scans_csv(tmp_path / "bad.csv", [*_rows(1), exam(exam_id="X", patient_id="Q", sex="?")])
    assert (
        main(
            ["screen", "--scans", str(bad), "--out", str(tmp_path / "out"), "--as-of", AS_OF, "--max-reject-rate", "1"]
        )
        == 3
    )
    lines = capsys.readouterr().err.strip().splitlines()
    assert "--max-shrink 1 accepts" in lines[0]
    assert lines[1:] == [
        "most frequent quarantine checks (input column: check — rows):",
        "  scans sex: allowed_value — 1 row(s)",
    ]
    assert main([*args, "--max-shrink", "1"]) == 0
    assert _published(tmp_path).height == 1


def test_blank_lines_are_skipped_and_counted_not_quarantined(tmp_path):
    """An Excel export's trailing CRLF lines once made a clean 11-row file trip the 5 % reject limit."""
    path = tmp_path / "scans.csv"
    lines = _csv_text(_rows(11)).splitlines()
    path.write_text("\r\n".join(lines[:4] + ["", ",,,"] + lines[4:] + ["", "  ", ""]) + "\r\n")
    manifest = run_screen(_request(tmp_path, path))
    assert manifest["rows"] == {"rows_in": 11, "valid": 11, "quarantined": 0, "duplicate": 0}
    assert manifest["inputs"][0]["blank_lines"] == 5
    assert manifest["blank_lines"] == {"scans": 5, "meds": 0, "fractures": 0, "population": 0, "dxa_procedures": 0}
    # rows after the blank lines keep the line numbers they have in the file
    raw = pl.read_parquet(sorted((tmp_path / "out" / "current" / "raw" / "scans").rglob("*.parquet")))
    assert sorted(raw.get_column("source_row")) == [1, 2, 3, 6, 7, 8, 9, 10, 11, 12, 13]


def test_a_fracture_exported_twice_is_one_fracture(tmp_path):
    """Under aace2020 two copies of one fracture once made 'multiple fractures' and anabolic_referral."""
    scans = write_scans_csv(tmp_path / "s.csv", [exam(total_hip_t="-2.6", femoral_neck_t="-2.6")])
    fractures = tmp_path / "fx.csv"
    fractures.write_text(
        "patient_id,fracture_date,site,icd10\nP1,2021-05-01,wrist,\nP1,2021-05-01,wrist,\n"
        "P1,2021-05-01,,S52.501A\n"  # the same wrist fracture coded, not typed: one event
    )
    manifest = run_screen(_request(tmp_path, scans, fractures=str(fractures), rules="aace2020"))
    expected = {"rows_in": 3, "valid": 2, "quarantined": 0, "duplicate": 1, "fracture_events": 2}
    assert manifest["rows_by_input"]["fractures"] == expected
    screening = _published(tmp_path)
    assert screening.get_column("recommendation").to_list() == ["oral_bisphosphonate"]
    assert "very_high_risk_multiple_fractures" not in screening.get_column("eligibility_reasons").to_list()[0]


def test_a_fracture_on_another_day_still_counts_twice(tmp_path):
    scans = write_scans_csv(tmp_path / "s.csv", [exam(total_hip_t="-2.6", femoral_neck_t="-2.6")])
    fractures = tmp_path / "fx.csv"
    fractures.write_text("patient_id,fracture_date,site\nP1,2021-05-01,wrist\nP1,2021-09-01,wrist\n")
    run_screen(_request(tmp_path, scans, fractures=str(fractures), rules="aace2020"))
    assert _published(tmp_path).get_column("recommendation").to_list() == ["anabolic_referral"]


def test_identical_medication_rows_are_counted_as_duplicates(tmp_path):
    scans = write_scans_csv(tmp_path / "s.csv", _rows(1))
    meds = tmp_path / "meds.csv"
    meds.write_text(
        "patient_id,drug,event_date,days_supply\n"
        "P0,Prolia,2025-06-01,\nP0,PROLIA,2025-06-01,\nP0,prolia,2025-06-01,183\nP0,alendronate,2025-06-01,\n"
    )
    manifest = run_screen(_request(tmp_path, scans, meds=str(meds)))
    assert manifest["rows_by_input"]["meds"] == {"rows_in": 4, "valid": 3, "quarantined": 0, "duplicate": 1}


# --- folders, explicit files, sheets, nested columns --------------------------------------------------


def test_folder_scan_reads_data_files_and_lists_what_it_skipped(tmp_path, capsys, prefect_engine):
    folder = tmp_path / "exports"
    folder.mkdir()
    write_scans_csv(folder / "a.csv", _rows(2))
    (folder / "README.txt").write_text("exported by the densitometer team\n")
    (folder / "notes.docx").write_bytes(b"PK\x03\x04 not data")
    code = main(["screen", "--scans", str(folder), "--out", str(tmp_path / "out"), "--as-of", AS_OF])
    out = capsys.readouterr().out
    assert code == 0
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["skipped_files"] == {"scans": [str(folder / "README.txt"), str(folder / "notes.docx")]}
    assert "skipped in the scans folder (not a data file): README.txt, notes.docx" in out


@pytest.mark.parametrize("name", ["export.txt", "export.dat", "EXPORT"])
def test_a_file_named_explicitly_is_read_whatever_its_extension(tmp_path, name):
    path = write_scans_csv(tmp_path / name, _rows(2))
    assert run_screen(_request(tmp_path, path))["rows"]["valid"] == 2


def test_explicit_parquet_without_extension_is_sniffed(tmp_path):
    path = tmp_path / "export"
    scans_frame(_rows(2)).drop("source_file", "source_row").write_parquet(path)
    assert run_screen(_request(tmp_path, path))["inputs"][0]["format"] == "parquet"


def test_gzipped_csv_in_a_folder_is_read(tmp_path):
    import gzip

    folder = tmp_path / "exports"
    folder.mkdir()
    (folder / "scans.csv.gz").write_bytes(gzip.compress(_csv_text(_rows(3)).encode("cp1252")))
    manifest = run_screen(_request(tmp_path, folder))
    assert manifest["rows"]["valid"] == 3 and manifest["inputs"][0]["format"] == "csv.gz"


@pytest.mark.parametrize(
    "nested",
    [pl.Series("tags", [["a"], ["b"]]), pl.Series("extra", [{"x": 1}, {"x": 2}])],
    ids=["list", "struct"],
)
def test_nested_parquet_column_is_named(tmp_path, nested):
    path = tmp_path / "scans.parquet"
    scans_frame(_rows(2)).drop("source_file", "source_row").with_columns(nested).write_parquet(path)
    with pytest.raises(InputError, match=f"column\\(s\\) '{nested.name}' hold lists or records") as err:
        run_screen(_request(tmp_path, path))
    assert err.value.source == str(path)


def _workbook(path: Path, sheets: dict[str, list[dict]]) -> Path:
    import xlsxwriter

    book = xlsxwriter.Workbook(path)
    for name, rows in sheets.items():
        sheet = book.add_worksheet(name)
        columns = list(rows[0]) if rows else ["note"]
        for c, column in enumerate(columns):
            sheet.write(0, c, column)
            for r, row in enumerate(rows, start=1):
                if row.get(column) is not None:
                    sheet.write(r, c, row[column])
    book.close()
    return path


def test_xlsx_other_sheets_are_listed_and_sheet_chooses(tmp_path, capsys, prefect_engine):
    path = _workbook(tmp_path / "s.xlsx", {"Exams": _rows(2), "Notes": [], "Exams 2025": _rows(3)})
    code = main(["screen", "--scans", str(path), "--out", str(tmp_path / "out"), "--as-of", AS_OF])
    out = capsys.readouterr().out
    assert code == 0
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["inputs"][0]["sheet"] == "Exams"
    assert manifest["inputs"][0]["other_sheets"] == ["Notes", "Exams 2025"]
    assert "sheets not read in s.xlsx (read 'Exams'; choose with --sheet): Notes, Exams 2025" in out
    args = ["screen", "--scans", str(path), "--out", str(tmp_path / "out2"), "--as-of", AS_OF]
    assert main([*args, "--sheet", "Exams 2025"]) == 0
    assert pl.read_parquet(tmp_path / "out2" / "screening.parquet").height == 3
    capsys.readouterr()
    assert main([*args, "--sheet", "Exams 2026"]) == 2
    assert "no sheet named 'Exams 2026' (sheets: Exams, Notes, Exams 2025)" in capsys.readouterr().err


def test_partition_estimate_reads_gzip_and_sniffed_parquet(tmp_path):
    """Partitioning sizes itself from the rows a file holds, whatever its compression or extension."""
    import gzip

    from osteo_core.demo import synthetic
    from osteo_core.pipeline.request import estimated_rows

    scans = synthetic.registry(4000, seed=3)
    scans.write_csv(tmp_path / "a.csv")
    (tmp_path / "a.csv.gz").write_bytes(gzip.compress((tmp_path / "a.csv").read_bytes()))
    scans.write_parquet(tmp_path / "export")  # Parquet without an extension: exact, from the metadata
    assert estimated_rows(tmp_path / "export") == scans.height
    for name in ("a.csv", "a.csv.gz"):
        assert abs(estimated_rows(tmp_path / name) - scans.height) < scans.height * 0.1


@pytest.mark.parametrize(
    ("header", "problem"),
    [
        ("patient_id,exam_id,exam_date\n", "required column(s) missing: sex, birth_date or age_years"),
        ("patient_id,exam_id,exam_date,sex,age_years,Sex\n", "duplicate column header(s): 'sex' (column 4)"),
    ],
)
def test_header_problems_are_said_before_the_engine_starts(tmp_path, header, problem):
    """A missing or repeated column is reported in about a second: Prefect is never imported."""
    import subprocess
    import sys

    path = tmp_path / "scans.csv"
    path.write_text(header + "P1,E1,2024-01-01,F,70,F\n")
    script = (
        "import sys; from osteo_core.cli import main; "
        f"code = main(['screen', '--scans', {str(path)!r}, '--out', {str(tmp_path / 'out')!r}]); "
        "print(code, 'prefect' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.stdout.split() == ["2", "False"]
    assert problem in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


# --- found in review: headers, encodings and inputs that must not crash or mislead ------------------


def test_a_file_without_header_row_names_missing_columns_not_its_data(tmp_path, capsys):
    path = tmp_path / "scans.csv"
    path.write_text("P77,E1,2024-05-01,F,2024-05-01,-2.6\nP78,E2,2024-05-02,F,1950-01-01,-1.0\n")
    code = main(["screen", "--scans", str(path), "--out", str(tmp_path / "out"), "--as-of", AS_OF])
    err = capsys.readouterr().err
    assert code == 2 and "required column(s) missing: patient_id" in err
    assert "P77" not in err and "2024-05-01" not in err


def test_a_quoted_header_spanning_two_lines_is_read(tmp_path):
    text = _csv_text(_rows(2)).replace("total_hip_t", '"total_hip_t"', 1)
    header, *rows = text.splitlines()
    path = tmp_path / "scans.csv"
    path.write_text(header + ',"BMD\n(g/cm2)"\n' + "\n".join(r + ",0.8" for r in rows) + "\n")
    manifest = run_screen(_request(tmp_path, path))
    assert manifest["rows"]["valid"] == 2
    assert manifest["inputs"][0]["unmapped_columns"] == ["BMD\n(g/cm2)"]


def test_old_mac_line_endings_are_one_line_exit_2(tmp_path, capsys):
    path = tmp_path / "scans.csv"
    path.write_text(_csv_text(_rows(2)).replace("\n", "\r"))
    code = main(["screen", "--scans", str(path), "--out", str(tmp_path / "out"), "--as-of", AS_OF])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and err.startswith(f"osteo: {path}:")


def test_a_file_mixing_utf8_and_windows_1252_is_refused_not_garbled(tmp_path):
    path = tmp_path / "scans.csv"
    good = _csv_text(_rows(2, device_id="José")).encode("utf-8")
    path.write_bytes(good + _csv_text(_rows(1, device_id="Genève")).splitlines()[1].encode("cp1252") + b"\n")
    with pytest.raises(InputError, match="mixes UTF-8 text with bytes of another encoding"):
        run_screen(_request(tmp_path, path))


@pytest.mark.parametrize("name", ["_row", "_partition", "source_row"])
def test_reserved_column_names_are_refused(tmp_path, name):
    header, row = _csv_text(_rows(1)).splitlines()
    path = tmp_path / "scans.csv"
    path.write_text(f"{header},{name}\n{row},x\n")
    with pytest.raises(InputError, match=f"column name\\(s\\) '{name}' are reserved"):
        run_screen(_request(tmp_path, path))


def test_medication_and_fracture_counts_are_in_the_summary():
    from osteo_core.cli.summary import input_notes

    counts = {"rows_in": 100, "valid": 80, "quarantined": 20, "duplicate": 0}
    notes = input_notes({"max_reject_rate": 0.05, "rows_by_input": {"meds": counts, "fractures": {"rows_in": 0}}})
    assert notes == [
        "medication rows: 100 in = 80 valid + 20 quarantined + 0 duplicate  (20% quarantined: check the quarantine "
        "table)"
    ]


def test_a_failure_after_publishing_keeps_the_published_run(tmp_path):
    _screen_ok(tmp_path, _rows(3))
    (tmp_path / "out" / "history.jsonl").unlink()
    (tmp_path / "out" / "history.jsonl").mkdir()  # the trend file cannot be written
    manifest = run_screen(_request(tmp_path, write_scans_csv(tmp_path / "next.csv", _rows(4))))
    current = (tmp_path / "out" / "current").resolve()
    assert current.name == manifest["run_id"] and (current / "screening.parquet").exists()
    assert _published(tmp_path).height == 4


@pytest.mark.parametrize(
    ("cells", "blank"),
    [
        ({"patient_id": None, "drug": None, "note": None}, True),
        ({"patient_id": " ", "drug": "", "note": "\t"}, True),
        ({"patient_id": None, "drug": "alendronate", "note": None}, False),  # the anchor blank, the row not
        ({"patient_id": "P1", "drug": None, "note": None}, False),
    ],
)
def test_blank_row(cells, blank):
    from osteo_core.ingest.readers import blank_row

    frame = pl.DataFrame([cells], schema={k: pl.Utf8 for k in cells})
    assert frame.select(blank_row(list(cells), anchor="patient_id")).item() is blank
    assert frame.select(blank_row(list(cells))).item() is blank
