"""Issue 29 §5: a roster's extra columns are routing columns whatever the scans profile (a FHIR export's too),
unless a profile names them; a column that would clash with a worklist column or option is exit 2, naming it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import sql_json

from osteo_core.cli import main
from osteo_core.resources import data_dir

SAMPLE = data_dir() / "samples" / "fhir_bulk_sample"
AS_OF = "2026-11-25"


def _roster(path: Path, extra: str) -> Path:
    patients = [json.loads(line) for line in (SAMPLE / "Patient.ndjson").read_text().splitlines()]
    sex = {"female": "F", "male": "M"}
    rows = [
        f"{p['id']},{sex[p['gender']]},{p['birthDate']},,2000-01-01,,{i % 3}-x,pcp-{i}" for i, p in enumerate(patients)
    ]
    path.write_text(
        f"patient_id,sex,birth_date,death_date,enrolled_from,enrolled_to,{extra},pcp_id\n" + "\n".join(rows) + "\n"
    )
    return path


def _screen(tmp_path: Path, roster: Path) -> int:
    folder = tmp_path / "export"
    if not folder.exists():
        shutil.copytree(SAMPLE, folder)
    args = ["screen", "--scans", str(folder), "--population", str(roster), "--out", str(tmp_path / "out")]
    return main([*args, "--as-of", AS_OF, "--max-reject-rate", "1"])


def test_a_fhir_export_with_a_roster_routes_by_its_columns(tmp_path, capsys, prefect_engine):
    assert _screen(tmp_path, _roster(tmp_path / "roster.csv", "clinic")) == 0
    assert "unmapped" not in capsys.readouterr().out
    routed = sql_json(capsys, tmp_path / "out", "SELECT DISTINCT clinic FROM worklist ORDER BY clinic")
    assert routed and all(r["clinic"].endswith("-x") for r in routed)
    capsys.readouterr()
    assert main(["worklist", "--out", str(tmp_path / "out"), "--clinic", "1-x", "--format", "json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed and {r["clinic"] for r in listed} == {"1-x"} and all(r["pcp_id"] for r in listed)


@pytest.mark.parametrize("name", ["gaps", "days_on_list", "format", "in_roster"])
def test_a_roster_column_that_would_clash_is_refused_naming_it(tmp_path, capsys, name, prefect_engine):
    assert _screen(tmp_path, _roster(tmp_path / "roster.csv", name)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"roster column '{name}'" in err and "roster.csv" in err
    assert not (tmp_path / "out").exists()
