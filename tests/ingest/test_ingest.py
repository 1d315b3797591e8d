"""docs/inputs.md (scans): file types, separators, encodings, folders, profiles; source_file/source_row."""

from pathlib import Path

import polars as pl
import pytest
from conftest import exam, scans_frame

from osteo_core.errors import InputError
from osteo_core.pipeline.stages import ScreenRequest, run_screen
from osteo_core.resources import data_dir

ROWS = [
    exam(exam_id="E1", device_id="Genève-1"),
    exam(exam_id="E2", patient_id="P2", sex="male", menopausal_status=None, birth_date="1940-01-01"),
]


def _text(rows=ROWS) -> pl.DataFrame:
    return scans_frame(rows).drop("source_file", "source_row")


def _write_csv(path: Path, sep: str, encoding: str, rows=ROWS) -> Path:
    text = _text(rows).write_csv(separator=sep)
    path.write_bytes(text.encode(encoding))
    return path


def _screen(tmp_path: Path, *scans, **options):
    manifest = run_screen(
        ScreenRequest(scans=[str(s) for s in scans], out=str(tmp_path / "out"), as_of="2026-01-01", **options)
    )
    screening = pl.read_parquet(tmp_path / "out" / "screening.parquet")
    quarantine = pl.read_parquet(tmp_path / "out" / "quarantine.parquet")
    return manifest, screening, quarantine


@pytest.mark.parametrize("sep", [",", ";", "\t"])
@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "latin-1"])
def test_csv_separators_and_encodings(tmp_path, sep, encoding):
    path = _write_csv(tmp_path / "scans.csv", sep, encoding)
    manifest, screening, quarantine = _screen(tmp_path, path)
    assert quarantine.is_empty()
    assert screening.get_column("exam_id").to_list() == ["E1", "E2"]
    assert screening.get_column("sex").to_list() == ["F", "M"]
    assert manifest["rows"] == {"rows_in": 2, "valid": 2, "quarantined": 0, "duplicate": 0}


def test_latin1_text_survives_into_the_raw_layer(tmp_path):
    path = _write_csv(tmp_path / "scans.csv", ";", "latin-1")
    _screen(tmp_path, path)
    raw = pl.read_parquet(sorted((tmp_path / "out" / "current" / "raw" / "scans").rglob("*.parquet")))
    assert "Genève-1" in raw.get_column("device_id").to_list()


def test_parquet_and_xlsx(tmp_path):
    typed = _text().with_columns(pl.col("exam_date").str.to_date(), pl.col("spine_t").cast(pl.Float64))
    typed.write_parquet(tmp_path / "a.parquet")
    _text([exam(exam_id="E3", patient_id="P3")]).write_excel(tmp_path / "b.xlsx")
    manifest, screening, quarantine = _screen(tmp_path, tmp_path / "a.parquet", tmp_path / "b.xlsx")
    assert quarantine.is_empty()
    assert sorted(screening.get_column("exam_id")) == ["E1", "E2", "E3"]
    assert [i["rows"] for i in manifest["inputs"]] == [2, 1]
    assert all(len(i["sha256"]) == 64 for i in manifest["inputs"])


def test_xlsx_blank_rows_are_skipped_and_the_rest_keep_their_row_numbers(tmp_path):
    frame = _text([exam(exam_id="E1"), {c: None for c in exam()}, exam(exam_id="E3", sex="?")])
    frame.write_excel(tmp_path / "s.xlsx")
    manifest, screening, quarantine = _screen(tmp_path, tmp_path / "s.xlsx", max_reject_rate=1.0)
    assert screening.get_column("exam_id").to_list() == ["E1"]
    assert sorted(set(quarantine.get_column("source_row"))) == [3]
    assert manifest["inputs"][0]["blank_lines"] == 1
    assert manifest["rows"] == {"rows_in": 2, "valid": 1, "quarantined": 1, "duplicate": 0}


def test_folder_and_several_files_keep_source_file_and_row(tmp_path):
    folder = tmp_path / "exports"
    folder.mkdir()
    _write_csv(folder / "2024.csv", ",", "utf-8")
    _write_csv(folder / "2025.csv", ",", "utf-8", [exam(exam_id="E9", patient_id="P9", sex="?")])
    (folder / "README.md").write_text("not an export")
    extra = _write_csv(tmp_path / "late.csv", ",", "utf-8", [exam(exam_id="E7", patient_id="P7")])
    manifest, screening, quarantine = _screen(tmp_path, folder, extra, max_reject_rate=1.0)
    assert [Path(i["path"]).name for i in manifest["inputs"]] == ["2024.csv", "2025.csv", "late.csv"]
    assert sorted(screening.get_column("exam_id")) == ["E1", "E2", "E7"]
    q = quarantine.row(0, named=True)
    assert (Path(q["source_file"]).name, q["source_row"], q["column"], q["check"]) == (
        "2025.csv",
        1,
        "sex",
        "allowed_value",
    )


def test_vendor_profile_sample_file(tmp_path):
    sample = data_dir() / "samples" / "densitometer_us_sample.csv"
    manifest, screening, quarantine = _screen(tmp_path, sample, profile="densitometer_us", max_reject_rate=1.0)
    assert manifest["profile"] == "densitometer_us"
    assert manifest["rows"]["rows_in"] == 48
    assert manifest["rows"]["valid"] == 46
    assert sorted(quarantine.select("source_row", "column", "check").rows()) == [
        (6, "exam_date", "is_date"),
        (10, "femoral_neck_t", "in_range(-7, 7)"),
    ]
    assert set(screening.get_column("sex")) <= {"F", "M"}
    assert screening.get_column("lowest_t_score").null_count() == 0


def test_user_profile_file(tmp_path):
    profile = tmp_path / "clinic.toml"
    profile.write_text(
        '[profile]\nname = "clinic"\n[formats]\ndates = ["%d.%m.%Y"]\n'
        '[headers]\n"Pat-Nr" = "patient_id"\n"Untersuchung" = "exam_id"\n"Datum" = "exam_date"\n'
        '"Geschlecht" = "sex"\n[values.sex]\n"w" = "F"\n'
    )
    frame = _text([exam(exam_date="01.03.2024", sex="w")]).rename(
        {"patient_id": "Pat-Nr", "exam_id": "Untersuchung", "exam_date": "Datum", "sex": "Geschlecht"}
    )
    frame.write_csv(tmp_path / "s.csv", separator=";")
    manifest, screening, quarantine = _screen(tmp_path, tmp_path / "s.csv", profile=str(profile))
    assert quarantine.is_empty() and manifest["profile"] == "clinic"
    assert screening.select("sex", "exam_date").rows()[0][0] == "F"


@pytest.mark.parametrize(
    ("toml", "problem"),
    [
        ('[headers]\n"X" = "not_a_column"\n', "unknown column 'not_a_column'"),
        ("[colums]\n", "unknown profile section"),
        ('[values.sex]\n"w" = "woman"\n', "unknown value 'woman'"),
        ("[headers\n", "not valid TOML"),
    ],
)
def test_bad_user_profile_is_an_input_error(tmp_path, toml, problem):
    (tmp_path / "p.toml").write_text(toml)
    path = _write_csv(tmp_path / "s.csv", ",", "utf-8")
    with pytest.raises(InputError, match=problem) as err:
        _screen(tmp_path, path, profile=str(tmp_path / "p.toml"))
    assert str(tmp_path / "p.toml") in str(err.value)


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        (lambda p: p.write_text(""), "empty"),
        (
            lambda p: p.write_text("patient_id,exam_id,exam_date\nP1,E1,2024-01-01\n"),
            r"required column\(s\) missing: sex",
        ),
        (
            lambda p: p.write_text('patient_id,exam_id,exam_date,sex,age_years\nP1,"E1,2024-01-01,F,70\n'),
            "cannot be read",
        ),
        (lambda p: p.write_text("a,b\n1,2,3\n"), "cannot be read|required column"),
    ],
)
def test_unusable_files_name_the_file(tmp_path, make, problem):
    path = tmp_path / "scans.csv"
    make(path)
    with pytest.raises(InputError, match=problem) as err:
        _screen(tmp_path, path)
    assert err.value.source == str(path)
    assert not (tmp_path / "out").exists()  # nothing half-made is left behind, not even the new --out


def test_corrupt_parquet_is_an_input_error_naming_the_file(tmp_path):
    path = tmp_path / "scans.parquet"
    path.write_bytes(b"not a parquet file at all")
    with pytest.raises(InputError, match="cannot be read as a Parquet file") as err:
        _screen(tmp_path, path)
    assert err.value.source == str(path)


def test_missing_age_source_is_a_missing_column(tmp_path):
    _text().drop("birth_date", "age_years").write_csv(tmp_path / "s.csv")
    with pytest.raises(InputError, match="birth_date or age_years"):
        _screen(tmp_path, tmp_path / "s.csv")


def test_unknown_extra_columns_are_kept_raw_and_ignored(tmp_path):
    _text([exam(referring_doctor="Dr X")]).write_csv(tmp_path / "s.csv")
    _, screening, _ = _screen(tmp_path, tmp_path / "s.csv")
    raw = pl.read_parquet(sorted((tmp_path / "out" / "current" / "raw" / "scans").rglob("*.parquet")))
    assert "referring_doctor" in raw.columns and "referring_doctor" not in screening.columns
