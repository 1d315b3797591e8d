"""Issue 12: the shipped samples screen with their profiles and the default limits; a decimal comma can be
declared; a file that lacks required columns names the shipped profile that fits it."""

import csv
import io

import polars as pl
import pytest

from osteo_core.errors import InputError
from osteo_core.ingest.profiles import load_profile, shipped_profiles
from osteo_core.pipeline.stages import ScreenRequest, run_screen
from osteo_core.resources import data_dir, load_toml
from schemas import parsing

SAMPLES = data_dir() / "samples"
AS_OF = "2026-11-25"


def _screen(tmp_path, scans, profile, name="out", **options):
    out = tmp_path / name
    manifest = run_screen(ScreenRequest(scans=[str(scans)], out=str(out), as_of=AS_OF, profile=profile, **options))
    return manifest, pl.read_parquet(out / "screening.parquet"), pl.read_parquet(out / "quarantine.parquet")


@pytest.mark.parametrize(
    ("sample", "profile"),
    [
        ("densitometer_us_sample.csv", "densitometer_us"),
        ("densitometer_eu_sample.csv", "densitometer_eu"),
        ("dual_hip_dxa2_sample.csv", "dual_hip_dxa2"),
        ("ehr_loinc_long_sample.csv", "ehr_loinc_long"),
        ("dxa2_single_type_sample", "dxa2_single_type"),
    ],
)
def test_each_shipped_sample_screens_with_the_default_reject_limit(tmp_path, sample, profile):
    """The US sample was 8.33 % quarantined (2 of 24) and exited 3 under the default 5 % limit."""
    manifest, screening, quarantine = _screen(tmp_path, SAMPLES / sample, profile)
    assert manifest["status"] == "published"
    assert 0 < manifest["rows"]["quarantined"] and manifest["reject_rate"] <= ScreenRequest.max_reject_rate
    assert screening.height == manifest["rows"]["valid"] > 30
    assert quarantine.get_column("check").to_list()  # the deliberate bad rows are there to be seen


def test_every_shipped_profile_has_a_sample_that_uses_it():
    """A sample is a file, or a folder for an export of several files (a long export's tables); a profile that
    extends another with a choice of reading only (omop_unsited_t) may share its base's sample."""
    for name in shipped_profiles():
        if name != "generic":
            base = load_toml(data_dir() / "profiles" / f"{name}.toml")["profile"].get("extends")
            named = [n for n in (name, base) if n]
            assert any((SAMPLES / f"{n}_sample.csv").is_file() or (SAMPLES / f"{n}_sample").is_dir() for n in named), (
                name
            )


def test_european_sample_reads_decimal_commas_as_the_canonical_export_would(tmp_path):
    """The same exams written the European way and the canonical way give the same screening table.

    Before: a semicolon export with ``88,0`` was 99.7 % quarantined; a decimal comma could not be declared."""
    profile = load_profile("densitometer_eu")
    text = (SAMPLES / "densitometer_eu_sample.csv").read_text(encoding="utf-8")
    rows = list(csv.reader(io.StringIO(text), delimiter=";"))
    canonical = [[profile.canonical_name(h) or h for h in rows[0]]]
    reverse_sex = {"w": "F", "m": "M"}
    reverse_meno = {"prämenopausal": "pre", "perimenopausal": "peri", "postmenopausal": "post", "unbekannt": ""}
    for row in rows[1:]:
        out = []
        for column, cell in zip(canonical[0], row, strict=True):
            if column in ("exam_date", "birth_date") and cell:
                day, month, year = cell.split(".")
                cell = f"{year}-{month}-{day}"
            elif column == "sex":
                cell = reverse_sex[cell]
            elif column == "menopausal_status":
                cell = reverse_meno[cell]
            else:
                cell = cell.replace(",", ".")
            out.append(cell)
        canonical.append(out)
    plain = tmp_path / "canonical.csv"
    with plain.open("w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows(canonical)
    _, european, eu_quarantine = _screen(tmp_path, SAMPLES / "densitometer_eu_sample.csv", "densitometer_eu", "eu")
    _, generic, generic_quarantine = _screen(tmp_path, plain, "generic", "generic")
    assert european.height == generic.height > 30
    assert european.drop("rule_set").equals(generic.drop("rule_set"))
    assert european.get_column("lowest_t_score").null_count() < european.height
    assert eu_quarantine.select("source_row", "check").rows() == generic_quarantine.select("source_row", "check").rows()


def test_without_the_decimal_declaration_the_same_cells_are_quarantined_not_misread(tmp_path):
    text = (data_dir() / "profiles" / "densitometer_eu.toml").read_text(encoding="utf-8")
    dot_profile = tmp_path / "dot.toml"
    dot_profile.write_text(text.replace('decimal = ","', 'decimal = "."'), encoding="utf-8")
    manifest, screening, quarantine = _screen(
        tmp_path, SAMPLES / "densitometer_eu_sample.csv", str(dot_profile), max_reject_rate=1.0
    )
    assert screening.is_empty() and manifest["rows"]["quarantined"] == manifest["rows"]["rows_in"]
    assert "is_number" in set(quarantine.get_column("check"))


@pytest.mark.parametrize(
    ("cell", "comma", "dot"),
    [
        ("88,5", 88.5, None),
        ("-1,2", -1.2, None),
        ("\u22121,2", -1.2, None),
        ("0,812", 0.812, None),
        ("17,8%", 17.8, None),
        ("88.5", 88.5, 88.5),  # a typed (Parquet, XLSX) number is rendered with a dot
        ("88", 88.0, 88.0),
        ("1.234,5", None, None),  # both marks: never guessed
        ("1,2,3", None, None),
        (",", None, None),
        ("abc", None, None),
    ],
)
def test_number_with_a_decimal_comma(cell, comma, dot):
    frame = pl.DataFrame({"v": [cell]})
    assert frame.select(parsing.number(pl.col("v"), ",")).item() == comma
    assert frame.select(parsing.number(pl.col("v"))).item() == dot


def test_integer_with_a_decimal_comma():
    frame = pl.DataFrame({"v": ["30", "30,0", "30,5"]})
    assert frame.select(parsing.integer(pl.col("v"), ",")).to_series().to_list() == [30, 30, None]


def test_a_profile_with_an_unknown_decimal_mark_is_refused(tmp_path):
    path = tmp_path / "p.toml"
    path.write_text('[profile]\nname = "p"\n[formats]\ndecimal = ";"\n', encoding="utf-8")
    with pytest.raises(InputError, match=r"\[formats\] decimal must be one of"):
        load_profile(str(path))


def test_missing_columns_name_the_shipped_profile_that_fits(tmp_path):
    """Before: 'required column(s) missing' with no hint that densitometer_us matches every header."""
    with pytest.raises(InputError) as err:
        _screen(tmp_path, SAMPLES / "densitometer_us_sample.csv", "generic")
    problem = err.value.problem
    assert "required column(s) missing" in problem
    assert "shipped profile 'densitometer_us' (40 of 41 columns): try --profile densitometer_us" in problem
    assert not (tmp_path / "out").exists()


def test_missing_columns_give_no_hint_when_no_shipped_profile_fits_better(tmp_path):
    path = tmp_path / "scans.csv"
    path.write_text("patient_id,exam_id,whatever\nP1,E1,x\n", encoding="utf-8")
    with pytest.raises(InputError) as err:
        _screen(tmp_path, path, "generic")
    assert "required column(s) missing" in err.value.problem and "try --profile" not in err.value.problem


def test_the_both_hips_sample_screens_as_its_one_hip_equivalent(tmp_path):
    """Issue 13: the dual-hip sample gives the same screening as the same exams exported with one value per
    site, the lower hip's, except that ``lowest_t_side`` says which hip that was."""
    sample = SAMPLES / "dual_hip_dxa2_sample.csv"
    profile = load_profile("dual_hip_dxa2")
    both = pl.read_csv(sample, infer_schema=False)
    both = both.rename({c: profile.canonical_name(c) or c for c in both.columns})
    lower = {}
    for site in ("total_hip", "femoral_neck"):
        for kind in ("t", "z"):
            left, right = pl.col(f"left_{site}_{kind}"), pl.col(f"right_{site}_{kind}")
            value = lambda c: c.cast(pl.Float64, strict=False)  # noqa: E731
            right_lower = left.is_null() | (right.is_not_null() & (value(right) < value(left)))
            lower[f"{site}_{kind}"] = pl.when(right_lower).then(right).otherwise(left)
    one_hip = both.with_columns(**lower).drop(c for c in both.columns if c.startswith(("left_", "right_")))
    one_hip.write_csv(tmp_path / "one_hip.csv")
    _, sided, _ = _screen(tmp_path, sample, "dual_hip_dxa2", "both")
    _, unsided, _ = _screen(tmp_path, tmp_path / "one_hip.csv", "generic", "one")
    assert sided.drop("lowest_t_side").equals(unsided.drop("lowest_t_side"))
    assert unsided.get_column("lowest_t_side").null_count() == unsided.height
    # each hip row's side is the hip whose value is the lowest T-score, row by row
    by_exam = both.select("exam_id", *(pl.col(c) for c in both.columns if c.startswith(("left_", "right_"))))
    hip_rows = sided.filter(pl.col("lowest_t_site").is_in(["total_hip", "femoral_neck"])).join(by_exam, on="exam_id")
    assert set(hip_rows.get_column("lowest_t_side")) == {"left", "right"}
    for row in hip_rows.iter_rows(named=True):
        left, right = (float(row[f"{side}_{row['lowest_t_site']}_t"]) for side in ("left", "right"))
        assert row["lowest_t_side"] == ("left" if left <= right else "right"), row["exam_id"]
