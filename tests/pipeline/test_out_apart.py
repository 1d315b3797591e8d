"""Issue 30 item 4: the output folder and the input folders are kept apart. Before: ``--out`` equal to the
``--scans`` folder was accepted once, and the second screen failed with "p2/care_gaps.parquet: required column(s)
missing", without saying that the output's own files had been read as input."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import exam, write_scans_csv

from osteo_core.cli import main

AS_OF = "2026-01-01"


def _screen(scans: Path, out: Path, *more: str) -> int:
    return main(["screen", "--scans", str(scans), "--out", str(out), "--as-of", AS_OF, *more])


@pytest.mark.parametrize("where", ["same", "inside"])
def test_an_out_folder_that_is_or_is_inside_an_input_folder_is_refused_before_anything_is_read(tmp_path, capsys, where):
    folder = tmp_path / "p2"
    folder.mkdir()
    write_scans_csv(folder / "scans.csv", [exam()])
    out = folder if where == "same" else folder / "results"
    assert _screen(folder, out) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(folder) in err and str(out) in err
    assert "the --scans folder" in err and "published tables as input" in err
    assert sorted(p.name for p in folder.iterdir()) == ["scans.csv"]  # nothing written


def test_an_input_folder_inside_the_out_folder_is_refused_naming_both(tmp_path, capsys):
    out = tmp_path / "out"
    meds = out / "meds"
    meds.mkdir(parents=True)
    (meds / "meds.csv").write_text("patient_id,event_date,drug\nP1,2025-01-01,alendronate\n", encoding="utf-8")
    scans = write_scans_csv(tmp_path / "scans.csv", [exam()])
    assert _screen(scans, out, "--meds", str(meds)) == 2
    err = capsys.readouterr().err
    assert f"the --meds folder {meds} is inside {out}" in err
    assert not (out / "runs").exists()


def test_a_single_input_file_kept_inside_the_out_folder_is_allowed_as_the_demo_keeps_its_inputs(tmp_path, capsys):
    out = tmp_path / "out"
    (out / "input").mkdir(parents=True)
    scans = write_scans_csv(out / "input" / "scans.csv", [exam()])
    assert _screen(scans, out) == 0
    assert _screen(scans, out) == 0  # the second screen reads the same file, never the published tables


def test_a_file_name_with_a_newline_or_escape_is_named_on_one_line_with_the_characters_escaped(tmp_path, capsys):
    missing = tmp_path / "scans\n\x1b[31mred.csv"
    assert _screen(missing, tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "\x1b" not in err
    assert "scans\\n\\x1b[31mred.csv: file not found" in err
