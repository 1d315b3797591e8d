"""Issue 6: the de-identified research extract, `osteo sql` for people, and Prefect run artifacts."""

import io
import json

import polars as pl
import pytest
from conftest import exam, write_scans_csv

from osteo_core.cli import main
from osteo_core.demo import synthetic
from osteo_core.pipeline.stages import ScreenRequest, run_screen

KEY = "a-research-key-of-decent-length"


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pub")
    scans = synthetic.registry(150, seed=9)
    scans = pl.concat(
        [scans, scans.head(1).with_columns(pl.lit("XOLD").alias("exam_id"), pl.lit("1920-01-15").alias("birth_date"))]
    )
    scans.write_csv(folder / "scans.csv")
    synthetic.medications(scans, seed=9).write_csv(folder / "meds.csv")
    synthetic.fractures(scans, seed=9, per_exam=0.3).write_csv(folder / "fx.csv")
    run_screen(
        ScreenRequest(
            scans=[str(folder / "scans.csv")],
            meds=str(folder / "meds.csv"),
            fractures=str(folder / "fx.csv"),
            out=str(folder / "out"),
            as_of="2026-07-01",
        )
    )
    return folder, scans


def _extract(published, dest, monkeypatch, key=KEY):
    folder, _ = published
    monkeypatch.setenv("OSTEO_RESEARCH_KEY", key)
    assert main(["export-research", "--out", str(folder / "out"), "--dest", str(dest)]) == 0
    return {t: pl.read_parquet(dest / f"{t}.parquet") for t in ("screening", "patients", "care_gaps")}


def test_extract_holds_no_identifier_exam_id_device_or_full_date(published, tmp_path, monkeypatch):
    _, scans = published
    tables = _extract(published, tmp_path / "x", monkeypatch)
    blob = b"".join(p.read_bytes() for p in (tmp_path / "x").iterdir())
    text = "\n".join(str(row) for frame in tables.values() for row in frame.rows())
    for pid in scans.get_column("patient_id").unique().to_list():
        assert pid.encode() not in blob and pid not in text
    for value in scans.get_column("birth_date").drop_nulls().unique().to_list()[:300]:
        assert value not in text
    for value in scans.get_column("exam_id").to_list()[:300] + scans.get_column("device_id").unique().to_list():
        assert value not in text
    import re

    assert not re.search(r"\d{4}-\d{2}-\d{2}", text)
    for frame in tables.values():
        assert "patient_id" not in frame.columns and "exam_id" not in frame.columns
        assert "patient_pseudonym" in frame.columns
    assert tables["screening"].get_column("age_years").max() == 90  # the 1920 birth date: over 89 → 90


def test_same_key_same_pseudonyms_other_key_other_ones(published, tmp_path, monkeypatch):
    first = _extract(published, tmp_path / "a", monkeypatch)["patients"].get_column("patient_pseudonym")
    again = _extract(published, tmp_path / "b", monkeypatch)["patients"].get_column("patient_pseudonym")
    other = _extract(published, tmp_path / "c", monkeypatch, key=KEY + "!")["patients"].get_column("patient_pseudonym")
    assert first.to_list() == again.to_list()
    assert not set(first) & set(other)


def test_pseudonym_is_hmac_sha256_of_the_patient_id(published, tmp_path, monkeypatch):
    import hashlib
    import hmac

    folder, _ = published
    tables = _extract(published, tmp_path / "h", monkeypatch)
    first_patient = pl.read_parquet(folder / "out" / "patients.parquet").get_column("patient_id")[0]
    expected = hmac.new(KEY.encode(), first_patient.encode(), hashlib.sha256).hexdigest()
    assert tables["patients"].get_column("patient_pseudonym")[0] == expected


def test_extract_refuses_without_a_key(published, tmp_path, monkeypatch, capsys):
    folder, _ = published
    monkeypatch.delenv("OSTEO_RESEARCH_KEY", raising=False)
    assert main(["export-research", "--out", str(folder / "out"), "--dest", str(tmp_path / "n")]) == 2
    assert "OSTEO_RESEARCH_KEY" in capsys.readouterr().err
    assert not (tmp_path / "n").exists()


def test_sql_tables_lists_columns_with_descriptions(capsys):
    assert main(["sql", "--tables", "--format", "csv"]) == 0
    listing = capsys.readouterr().out
    for needle in (
        "screening,,,",
        "care_gaps,,,",
        "untreated_high_risk,,,",
        "eligibility_reasons",
        "Osteoporosis-drug coverage on the as-of date",
    ):
        assert needle in listing


def test_sql_parquet_format(published, capsysbinary):
    folder, _ = published
    assert (
        main(
            [
                "sql",
                "--out",
                str(folder / "out"),
                "--format",
                "parquet",
                "SELECT who_category, count(*) AS n FROM screening GROUP BY ALL",
            ]
        )
        == 0
    )
    frame = pl.read_parquet(io.BytesIO(capsysbinary.readouterr().out))
    assert frame.columns == ["who_category", "n"] and frame.get_column("n").sum() > 0


def test_flow_publishes_count_artifacts_without_identifiers(tmp_path, prefect_engine):
    from prefect.artifacts import Artifact

    from flows.screen import run_flow

    scans = write_scans_csv(tmp_path / "scans.csv", [exam(patient_id="SECRET-PID-1", femoral_neck_t="-2.7")])
    run_flow(ScreenRequest(scans=[str(scans)], out=str(tmp_path / "out"), as_of="2026-01-01"))
    summary = Artifact.get("screen-summary")
    counts = Artifact.get("screen-counts")
    assert "Exams per WHO category" in summary.data and "| osteoporosis | 1 |" in summary.data
    assert "untreated_high_risk" in summary.data
    rows = json.loads(counts.data) if isinstance(counts.data, str) else counts.data
    assert {"measure": "rows_scans_valid", "count": 1} in rows
    assert "SECRET-PID-1" not in summary.data and "SECRET-PID-1" not in json.dumps(rows)
