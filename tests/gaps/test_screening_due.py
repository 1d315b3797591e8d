"""Population roster and the screening_due gap (docs/care_gaps.md, docs/inputs.md "Population roster"):
each age, death and enrolment edge, the roster's own checks and its row accounting."""

import datetime as dt

import polars as pl
import pytest
from conftest import exam, write_scans_csv
from hypothesis import given, settings
from hypothesis import strategies as st

from osteo_core import reference
from osteo_core.cli import main
from osteo_core.errors import InputError
from osteo_core.gaps.population import birthday, roster_patients, screening_due
from osteo_core.ingest.profiles import load_profile
from osteo_core.pipeline.stages import ScreenRequest, run_screen
from schemas import parsing

AS_OF = "2026-01-01"
COLUMNS = ["patient_id", "sex", "birth_date", "death_date", "enrolled_from", "enrolled_to", "clinic", "pcp_id"]
# patient_id, sex, birth_date, death_date, enrolled_from, enrolled_to — one coverage span per row
ROSTER = [
    ("AGE64", "F", "1961-01-02", None, None, None),  # turns 65 the day after the as-of date
    ("AGE65", "F", "1961-01-01", None, None, None),  # 65 on the as-of date
    ("DIED", "F", "1950-01-01", "2026-01-01", None, None),  # died on the as-of date
    ("ENDED", "F", "1950-01-01", None, "2000-01-01", "2025-12-31"),  # enrolment ended the day before
    ("ENDS", "F", "1950-01-01", None, "2000-01-01", "2026-01-01"),  # … and on the as-of date
    ("LATER", "F", "1950-01-01", None, "2026-01-02", None),  # enrolled from the day after
    ("JOINED", "F", "1950-01-01", None, "2010-01-01", "2019-12-31"),  # two spans, day after day
    ("JOINED", "F", "1950-01-01", None, "2020-01-01", None),
    ("BROKEN", "F", "1950-01-01", None, "2010-01-01", "2019-12-30"),  # a day without cover between them
    ("BROKEN", "F", "1950-01-01", None, "2020-01-01", None),
    ("SCANNED", "F", "1950-01-01", None, None, None),  # has a valid exam
    ("BADEXAM", "F", "1950-01-01", None, None, None),  # her only exam is quarantined
    ("MAN", "M", "1950-01-01", None, None, None),  # men are off by default
    ("CONFLICT", "F", "1950-01-01", None, None, None),  # two birth dates: both rows quarantined
    ("CONFLICT", "F", "1951-01-01", None, None, None),
    ("DUP", "F", "1950-01-01", None, None, None),  # the same row twice: one duplicate
    ("DUP", "F", "1950-01-01", None, None, None),
    ("BACKWARDS", "F", "1950-01-01", None, "2020-01-01", "2019-01-01"),  # span ends before it starts
    ("NOSEX", "X", "1950-01-01", None, None, None),  # unreadable sex
    ("HALFDEAD", "F", "1950-01-01", "2020-02-30", "2000-01-01", "2010-12-31"),  # unreadable death date …
    ("HALFDEAD", "F", "1950-01-01", None, "2011-01-01", None),  # … so this row must not say she is alive
]


def _roster_csv(path, rows):
    frame = pl.DataFrame(
        [(*r, f"clinic-{r[0]}", f"pcp-{r[0]}") for r in rows], schema=dict.fromkeys(COLUMNS, pl.Utf8), orient="row"
    )
    frame.write_csv(path)
    return path


def _screen(tmp_path, roster_rows=ROSTER, with_roster=True):
    scans = [
        exam(patient_id="SCANNED", exam_id="E1", birth_date="1950-01-01"),
        exam(patient_id="BADEXAM", exam_id="E2", birth_date="1950-01-01", spine_t="-99"),
        exam(patient_id="OUTSIDER", exam_id="E3", birth_date="1950-01-01"),
    ]
    request = ScreenRequest(
        scans=[str(write_scans_csv(tmp_path / "scans.csv", scans))],
        population=str(_roster_csv(tmp_path / "roster.csv", roster_rows)) if with_roster else None,
        out=str(tmp_path / "out"),
        as_of=AS_OF,
        max_reject_rate=0.5,  # one of three exams is quarantined on purpose
    )
    manifest = run_screen(request)
    run = tmp_path / "out" / "current"
    gaps = pl.read_parquet(run / "care_gaps.parquet")
    return manifest, gaps, run


@pytest.fixture(scope="module")
def screened(tmp_path_factory):
    return _screen(tmp_path_factory.mktemp("roster"))


def test_screening_due_opens_at_each_edge_and_not_a_day_before(screened):
    _, gaps, _ = screened
    due = gaps.filter(pl.col("gap") == "screening_due")
    assert dict(due.select("patient_id", "since").iter_rows()) == {
        "AGE65": dt.date(2026, 1, 1),  # her 65th birthday
        "ENDS": dt.date(2015, 1, 1),  # 65th birthday after her enrolment began
        "JOINED": dt.date(2015, 1, 1),  # unbroken since 2010: the birthday is later
        "BROKEN": dt.date(2020, 1, 1),  # the enrolment covering the as-of date began in 2020
        "BADEXAM": dt.date(2015, 1, 1),  # a quarantined exam is no exam on record
        "DUP": dt.date(2015, 1, 1),
    }
    priorities = reference.care_gap_parameters()["priority"]
    assert due.get_column("priority").unique().to_list() == [priorities["screening_due"]]
    assert priorities["untreated_high_risk"] < priorities["screening_due"] < priorities["post_fracture_untreated"]
    assert due.get_column("exam_id").null_count() == due.height


def test_roster_rows_are_valid_quarantined_or_duplicate(screened):
    manifest, _, run = screened
    counts = manifest["rows_by_input"]["population"]
    assert counts == {"rows_in": 21, "valid": 14, "quarantined": 6, "duplicate": 1, "not_in_population": 1}
    quarantine = pl.read_parquet(run / "quarantine.parquet").filter(pl.col("input") == "population")
    found = {(r["patient_id"], r["column"], r["check"]) for r in quarantine.iter_rows(named=True)}
    assert found == {
        ("CONFLICT", "birth_date", "same_for_the_patient"),
        ("BACKWARDS", "enrolled_to", "not_before_enrolled_from"),
        ("NOSEX", "sex", "allowed_value"),
        ("HALFDEAD", "death_date", "is_date"),
        ("HALFDEAD", None, "other_row_of_patient_quarantined"),
    }
    assert quarantine.filter(pl.col("patient_id") == "CONFLICT").get_column("source_row").sort().to_list() == [14, 15]


def test_worklist_carries_the_roster_routing_columns(screened, capsys):
    from conftest import sql_json

    _, _, run = screened
    rows = sql_json(
        capsys, run.parent, "SELECT patient_id, gap, clinic, pcp_id FROM worklist WHERE patient_id = 'AGE65'"
    )
    assert rows == [{"patient_id": "AGE65", "gap": "screening_due", "clinic": "clinic-AGE65", "pcp_id": "pcp-AGE65"}]
    people = pl.read_parquet(sorted((run / "population").glob("*.parquet")))
    # issue 27: the dead are never enrolled, whatever their span says
    assert people.filter(pl.col("patient_id") == "DIED").select("alive", "enrolled").row(0) == (False, False)
    assert people.filter(pl.col("patient_id") == "ENDED").get_column("enrolled_since").to_list() == [None]


def test_without_a_roster_there_is_no_screening_due_and_the_worklist_still_answers(tmp_path, capsys):
    from conftest import sql_json

    manifest, gaps, run = _screen(tmp_path, with_roster=False)
    assert "screening_due" not in gaps.get_column("gap").to_list()
    assert manifest["rows_by_input"]["population"]["rows_in"] == 0
    rows = sql_json(capsys, run.parent, "SELECT count(*) AS n FROM worklist")
    assert rows == [{"n": gaps.height}]


def _patients(rows):
    frame = pl.DataFrame(
        rows,
        schema=dict.fromkeys(
            ["patient_id", "sex", "birth_date", "death_date", "enrolled_from", "enrolled_to"], pl.Utf8
        ),
        orient="row",
    ).with_columns(pl.col(c).str.to_date() for c in ("birth_date", "death_date", "enrolled_from", "enrolled_to"))
    return roster_patients(frame.lazy(), dt.date(2026, 1, 1), ())


def test_men_are_screened_from_their_own_age_only_when_the_setting_says_so():
    people = _patients([("M69", "M", "1956-06-01", None, None, None), ("M70", "M", "1955-06-01", None, None, None)])
    exams = pl.LazyFrame(schema={"patient_id": pl.Utf8, "exam_date": pl.Date})
    params = reference.care_gap_parameters()
    off = screening_due(people, exams, dt.date(2026, 1, 1), params).collect()
    assert off.height == 0
    on = params | {"screening_due": params["screening_due"] | {"include_men": True}}
    due = screening_due(people, exams, dt.date(2026, 1, 1), on).collect()
    assert due.select("patient_id", "since").rows() == [("M70", dt.date(2025, 6, 1))]


@settings(max_examples=80, deadline=None)
@given(st.dates(dt.date(1900, 1, 1), dt.date(1990, 12, 31)), st.dates(dt.date(1960, 1, 1), dt.date(2060, 12, 31)))
def test_the_birthday_of_an_age_is_the_day_completed_years_reach_it(birth, day):
    frame = pl.DataFrame({"birth": [birth], "day": [day]})
    row = frame.select(
        (parsing.completed_years(pl.col("birth"), pl.col("day")) >= 65).alias("aged"),
        (pl.col("day") >= birthday(pl.col("birth"), 65)).alias("on_or_after"),
    ).row(0)
    assert row[0] == row[1]


def test_a_29_february_birthday_is_1_march_in_a_common_year():
    frame = pl.DataFrame({"birth": [dt.date(1960, 2, 29)]})
    assert frame.select(birthday(pl.col("birth"), 65)).item() == dt.date(2025, 3, 1)
    assert frame.select(birthday(pl.col("birth"), 64)).item() == dt.date(2024, 2, 29)


def test_a_roster_without_a_required_column_is_refused_before_any_work(tmp_path, capsys):
    scans = write_scans_csv(tmp_path / "scans.csv", [exam()])
    (tmp_path / "roster.csv").write_text("patient_id,sex\nP1,F\n")
    code = main(
        ["screen", "--scans", str(scans), "--population", str(tmp_path / "roster.csv"), "--out", str(tmp_path / "o")]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err == [f"osteo: {tmp_path / 'roster.csv'}: required column(s) missing: birth_date"]


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ('routing = ["sex"]', "must be a plain name not used by the screen"),
        ('routing = ["clinic name"]', "must be a plain name not used by the screen"),
        ('routing = ["source_row"]', "must be a plain name not used by the screen"),
        ('routing = ["hidden"]', "must be a plain name not used by the screen"),  # the worklist's own column
        ('routing = ["status"]', "must be a plain name not used by the screen"),  # care_gaps' status
        ('routing = ["format"]', "must be a plain name not used by the screen"),  # osteo worklist --format
        ('routing = ["alive"]', "must be a plain name not used by the screen"),
        ('routing = ["_from"]', "must be a plain name not used by the screen"),
        ("routing = 3", "must be a list of column names"),
        ('route = ["clinic"]', "unknown [population] setting(s): route"),
    ],
)
def test_profile_routing_names_are_checked(tmp_path, setting, message):
    path = tmp_path / "p.toml"
    path.write_text(f'[profile]\nname = "p"\n\n[population]\n{setting}\n')
    with pytest.raises(InputError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        load_profile(str(path))


def test_a_roster_longer_than_the_scans_sets_the_partition_count(tmp_path, monkeypatch):
    """A health system's roster lists every member, most never scanned: partitions are sized by it too."""
    from osteo_core.pipeline import request as request_module
    from osteo_core.pipeline.resolve import resolve

    monkeypatch.setattr(request_module, "ROWS_PER_PARTITION", 4)
    scans = write_scans_csv(tmp_path / "scans.csv", [exam(exam_id=f"E{i}") for i in range(4)])
    roster = _roster_csv(tmp_path / "roster.csv", ROSTER)  # 21 rows
    # the estimate counts lines (the header too): 5 lines of scans, 22 of roster, 4 rows per partition
    out = str(tmp_path / "out")
    assert resolve(ScreenRequest(scans=[str(scans)], out=out)).partitions == 2
    assert resolve(ScreenRequest(scans=[str(scans)], population=str(roster), out=out)).partitions == 6
