"""The ``osteo`` command: exit codes, one-line errors, SQL, and end-to-end screens through Prefect."""

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from conftest import exam, sql_json, write_scans_csv

from osteo_core.cli import main
from osteo_core.resources import data_dir

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = data_dir() / "samples" / "densitometer_us_sample.csv"


def screen(tmp_path, *extra, scans=None):
    scans = scans or write_scans_csv(
        tmp_path / "scans.csv", [exam(exam_id=f"E{i}", patient_id=f"PID{i:04d}") for i in range(4)]
    )
    return main(["screen", "--scans", str(scans), "--out", str(tmp_path / "out"), "--as-of", "2026-01-01", *extra])


def _one_line_error(capsys, code, expected_code, *needles):
    err = capsys.readouterr().err
    assert code == expected_code
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--rules", "no_such_rules"], "unknown rule set"),
        (["--profile", "no_such_profile"], "unknown profile"),
        (["--as-of", "31/12/2025"], "--as-of"),
        (["--max-reject-rate", "1.5"], "--max-reject-rate"),
        (["--max-reject-rate", "lots"], "invalid float value"),
    ],
)
def test_unusable_arguments_exit_2_before_any_work(tmp_path, capsys, args, needle):
    _one_line_error(capsys, screen(tmp_path, *args), 2, needle)
    assert not (tmp_path / "out").exists()


def test_missing_file_exit_2_names_it(tmp_path, capsys):
    code = screen(tmp_path, scans=tmp_path / "nope.csv")
    _one_line_error(capsys, code, 2, "nope.csv", "file not found")


def test_user_rules_file_with_a_typo_exit_2_names_file_and_key(tmp_path, capsys):
    rules = (data_dir() / "rules" / "standard.toml").read_text().replace("normal_t_at_or_above", "normal_t_at_or_abov")
    (tmp_path / "mine.toml").write_text(rules)
    code = screen(tmp_path, "--rules", str(tmp_path / "mine.toml"))
    _one_line_error(capsys, code, 2, "mine.toml", "normal_t_at_or_abov")


def test_required_column_absent_exit_2_through_the_flow(tmp_path, capsys, prefect_engine):
    path = tmp_path / "scans.csv"
    path.write_text("patient_id,exam_id,sex,age_years,spine_t\nP1,E1,F,70,-1\n")
    _one_line_error(capsys, screen(tmp_path, scans=path), 2, "scans.csv", "exam_date")
    assert not (tmp_path / "out").exists()  # the run made --out: a failed run removes it again


def test_reject_rate_exit_3_keeps_published_outputs(tmp_path, capsys, prefect_engine):
    assert screen(tmp_path) == 0
    published = json.loads((tmp_path / "out" / "manifest.json").read_text())["run_id"]
    capsys.readouterr()
    bad = write_scans_csv(
        tmp_path / "bad.csv",
        [
            exam(exam_id="B1", patient_id="PID-SECRET-1", sex="?"),
            exam(exam_id="B2", spine_t="-9.5"),
            exam(exam_id="B3"),
        ],
    )
    code = screen(tmp_path, scans=bad)
    err = capsys.readouterr().err
    assert code == 3 and "Traceback" not in err
    first, heading, *checks = [line for line in err.splitlines() if line.strip()]
    assert "quarantine written to" in first and "max-reject-rate" in first
    assert heading.startswith("most frequent quarantine checks")
    # by column with counts, never the values or ids of the rows
    assert sorted(checks) == ["  scans sex: allowed_value — 1 row(s)", "  scans spine_t: in_range(-7, 7) — 1 row(s)"]
    assert "PID-SECRET" not in err and "-9.5" not in err
    assert json.loads((tmp_path / "out" / "manifest.json").read_text())["run_id"] == published


def test_end_to_end_through_prefect_on_the_vendor_sample(tmp_path, capsys, caplog, prefect_engine):
    code = screen(tmp_path, "--profile", "densitometer_us", scans=SAMPLE)  # the README command: default limits
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "48 in = 46 valid + 2 quarantined + 0 duplicate" in out.out
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["rule_set"]["name"] == "standard" and manifest["profile"] == "densitometer_us"
    assert manifest["inputs"][0]["sha256"]
    assert (manifest["tables"]["screening"], manifest["tables"]["quarantine"]) == (46, 2)
    assert set(manifest["tables"]) == {
        "screening",
        "quarantine",
        "patients",
        "care_gaps",
        "treatment_intervals",
        "measure_members",
        "measure_summary",
        "closed_gaps",
    }
    assert manifest["measures"] is None  # no roster: no quality measures
    screening = pl.read_parquet(tmp_path / "out" / "screening.parquet")
    assert screening.height == 46 and screening.get_column("rule_set").unique().to_list() == ["standard@1.0.0"]
    # no patient identifier in anything logged or printed
    ids = set(pl.read_csv(SAMPLE, infer_schema=False).get_column("PATIENT ID"))
    logged = out.out + out.err + caplog.text
    assert not any(pid in logged for pid in ids)

    rows = sql_json(
        capsys, tmp_path / "out", "SELECT who_category, count(*) AS n FROM screening GROUP BY ALL ORDER BY n DESC"
    )
    assert sum(r["n"] for r in rows) == 46
    assert (
        main(
            [
                "sql",
                "--out",
                str(tmp_path / "out"),
                "--format",
                "csv",
                'SELECT "check", source_row FROM quarantine ORDER BY source_row',
            ]
        )
        == 0
    )
    assert capsys.readouterr().out.splitlines() == ["check,source_row", "is_date,6", '"in_range(-7, 7)",10']


def test_sql_error_is_one_line_and_catalog_is_read_only(tmp_path, capsys, prefect_engine):
    assert screen(tmp_path) == 0
    capsys.readouterr()
    assert main(["sql", "--out", str(tmp_path / "out"), "SELECT nope FROM screening"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("osteo: SQL error: Binder Error") and '"nope"' in err and "Traceback" not in err
    target = tmp_path / "out" / "x.csv"
    code = main(["sql", "--out", str(tmp_path / "out"), f"COPY (SELECT 1) TO '{target}'"])
    assert code == 2 and "Permission Error" in capsys.readouterr().err and not target.exists()
    assert main(["sql", "--out", str(tmp_path / "out"), "SELECT count(*) FROM screening"]) == 0


def test_installed_command_demo_runs_the_real_flow(tmp_path):
    """The README's first command, as a user runs it (its own ephemeral Prefect engine)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env["PREFECT_HOME"] = str(tmp_path / "prefect")
    osteo = Path(sys.executable).parent / "osteo"
    proc = subprocess.run(
        [str(osteo), "demo", "--patients", "300", "--out", str(tmp_path / "demo")],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert "valid +" in proc.stdout and "osteopenia" in proc.stdout
    assert "population roster rows:" in proc.stdout and "never scanned and due a first DXA:" in proc.stdout
    assert "work the list and record calls: osteo worklist --out" in proc.stdout
    # nothing on stderr: no Prefect INFO lines (they go to the run's own log), no "Error logging to API"
    assert proc.stderr == "", proc.stderr
    assert (tmp_path / "demo" / "osteo.duckdb").exists()
    # issue 27: the demo's roster has deaths and ended enrolments, and none of those patients is on the worklist
    listed = subprocess.run(
        [str(osteo), "worklist", "--out", str(tmp_path / "demo"), "--all", "--format", "json"],
        capture_output=True, text=True, env=env, timeout=120, check=True,
    )  # fmt: skip
    on_list = {row["patient_id"] for row in json.loads(listed.stdout)}
    roster = pl.read_csv(tmp_path / "demo" / "input" / "population.csv", infer_schema=False)
    dead = set(roster.filter(pl.col("death_date").is_not_null()).get_column("patient_id"))
    today = dt.date.today().isoformat()
    still = set(
        roster.filter(pl.col("enrolled_to").is_null() | (pl.col("enrolled_to") >= today)).get_column("patient_id")
    )
    left = set(roster.get_column("patient_id")) - still
    assert dead and left and on_list  # the roster has both, and the list is not empty
    assert on_list.isdisjoint(dead | left)
