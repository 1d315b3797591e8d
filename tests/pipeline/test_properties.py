"""Invariants as hypothesis properties."""

import polars as pl
from conftest import AS_OF, exam, scans_frame
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from osteo_core.pipeline.stages import ScreenRequest, run_screen
from osteo_core.validate.scans import validate_scans

MESSY = {
    "sex": st.sampled_from(["F", "female", "M", "m", "x", "", "  "]),
    "exam_date": st.sampled_from(["2024-03-01", "2023-12-31", "2027-01-01", "1980-05-05", "2024-02-30", "", "soon"]),
    "birth_date": st.sampled_from(["1950-06-15", "1999-01-01", "2025-01-01", "", "06/15/1950"]),
    "age_years": st.sampled_from(["", "70", "17", "abc", "121"]),
    "femoral_neck_t": st.sampled_from(["-1.0", "-2.5", "\u22122.0", "", "-8", "x"]),
    "total_hip_t": st.sampled_from(["-1.8", "", "7.5"]),
    "spine_t": st.sampled_from(["", "-0.5"]),
    "weight_kg": st.sampled_from(["", "60", "10", "heavy"]),
    "frax_mof": st.sampled_from(["", "12", "12%", "150"]),
    "frax_hip": st.sampled_from(["", "1.5", "30"]),
    "current_smoker": st.sampled_from(["", "yes", "N", "maybe"]),
    "spine_levels": st.sampled_from(["", "L1-L4", "L3", "L9"]),
}

row_strategy = st.fixed_dictionaries(
    {
        "exam_id": st.sampled_from(["E1", "E2", "E3", "E4", "E5", "E6", ""]),
        "patient_id": st.sampled_from(["P1", "P2", ""]),
        **MESSY,
    }
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(row_strategy, min_size=1, max_size=25))
def test_every_row_is_valid_quarantined_or_a_duplicate(generic_profile, bounds, rows):
    rows = [exam(**{k: (v or None) if k in ("exam_id", "patient_id") else v for k, v in r.items()}) for r in rows]
    result = validate_scans(scans_frame(rows).lazy(), generic_profile, AS_OF, bounds)
    valid_rows = set(result.valid.get_column("source_row"))
    quarantined_rows = set(result.quarantine.get_column("source_row"))
    assert not valid_rows & quarantined_rows
    assert len(valid_rows) == result.valid.height
    assert len(quarantined_rows) == result.quarantined_rows
    assert result.rows_in == len(rows) == result.valid.height + result.quarantined_rows + result.duplicates
    # a duplicate is an exact copy of a row that stayed (valid or quarantined)
    kept_ids = set(result.valid.get_column("exam_id")) | set(result.quarantine.get_column("exam_id").drop_nulls())
    if result.duplicates:
        assert kept_ids
    # each exam id is valid at most once
    assert result.valid.get_column("exam_id").is_unique().all()


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(
    rows=st.lists(row_strategy, min_size=1, max_size=15),
    sep=st.sampled_from([",", ";", "\t"]),
    encoding=st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "cp1252", "latin-1"]),
    blank_after=st.lists(st.sampled_from(["", "  ", None]), min_size=16, max_size=16),
    newline=st.sampled_from(["\n", "\r\n"]),
)
def test_manifest_counts_add_up_for_messy_files(tmp_path_factory, rows, sep, encoding, blank_after, newline):
    """Every line of the file ends valid, quarantined, a duplicate, or a counted blank line."""
    folder = tmp_path_factory.mktemp("messy")
    frame = scans_frame([exam(**r) for r in rows]).drop("source_file", "source_row")
    header, *data = frame.write_csv(separator=sep).splitlines()
    lines, blanks = [header], 0
    for line, blank in zip(data, blank_after, strict=False):
        lines.append(line)
        if blank is not None:  # a blank (or white-space only) line after this row
            lines.append(blank)
            blanks += 1
    text = newline.join(lines) + newline
    (folder / "scans.csv").write_bytes(text.encode(encoding, errors="replace"))
    manifest = run_screen(
        ScreenRequest(
            scans=[str(folder / "scans.csv")], out=str(folder / "out"), as_of="2026-01-01", max_reject_rate=1.0
        )
    )
    counts = manifest["rows"]
    assert manifest["inputs"][0]["blank_lines"] == blanks
    assert counts["rows_in"] == len(rows) == counts["valid"] + counts["quarantined"] + counts["duplicate"]
    assert pl.read_parquet(folder / "out" / "screening.parquet").height == counts["valid"]
    quarantine = pl.read_parquet(folder / "out" / "quarantine.parquet")
    assert quarantine.select("source_file", "source_row").n_unique() == counts["quarantined"]


meds_row = st.fixed_dictionaries(
    {
        "patient_id": st.sampled_from(["P1", "P2", ""]),
        "drug": st.sampled_from(["alendronate", "Alendronate", "PROLIA", "Xgeva", "aspirin", ""]),
        "event_date": st.sampled_from(["2025-01-01", "2025-01-02", "2027-01-01", "x", ""]),
        "days_supply": st.sampled_from(["", "30", "0", "abc"]),
    }
)


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(meds=st.lists(meds_row, min_size=1, max_size=20), copies=st.lists(st.integers(0, 19), max_size=6))
def test_medication_rows_are_valid_quarantined_or_duplicates(tmp_path_factory, meds, copies):
    """Exported twice or not, every medication row is accounted for exactly once."""
    rows = meds + [meds[i % len(meds)] for i in copies]
    assume(any(v.strip() for r in rows for v in r.values()))  # an export of blank lines only is refused (exit 2)
    folder = tmp_path_factory.mktemp("meds")
    pl.DataFrame(rows, schema={k: pl.Utf8 for k in rows[0]}).write_csv(folder / "meds.csv")
    scans = scans_frame([exam(patient_id="P1")]).drop("source_file", "source_row")
    scans.write_csv(folder / "scans.csv")
    manifest = run_screen(
        ScreenRequest(
            scans=[str(folder / "scans.csv")],
            meds=str(folder / "meds.csv"),
            out=str(folder / "out"),
            as_of="2026-01-01",
            max_reject_rate=1.0,
        )
    )
    counts = manifest["rows_by_input"]["meds"]
    blank = sum(all(not v.strip() for v in r.values()) for r in rows)  # an all-empty row is a blank line
    assert manifest["blank_lines"]["meds"] == blank
    assert counts["rows_in"] + blank == len(rows)
    assert counts["rows_in"] == counts["valid"] + counts["quarantined"] + counts["duplicate"]
    kept = [r for r in rows if any(v.strip() for v in r.values())]
    assert counts["duplicate"] >= len(kept) - len({tuple(r.values()) for r in kept})


SEVERITY = {"normal": 0, "osteopenia": 1, "osteoporosis": 2, "severe_osteoporosis": 3}
t_score = st.decimals(min_value=-7, max_value=7, places=2).map(str)


@settings(max_examples=50, deadline=None)
@given(
    scores=st.lists(t_score, min_size=4, max_size=4),
    site=st.integers(0, 3),
    drop=st.decimals(min_value=0, max_value=3, places=2),
    fracture=st.booleans(),
)
def test_lowering_a_t_score_never_gives_a_milder_category(screen_rows, scores, site, drop, fracture):
    names = ["spine_t", "total_hip_t", "femoral_neck_t", "radius33_t"]
    before = dict(zip(names, scores, strict=True))
    after = dict(before)
    after[names[site]] = str(max(-7, float(before[names[site]]) - float(drop)))
    flag = "true" if fracture else "false"
    frame = screen_rows(
        [
            exam(exam_id="E1", prior_fragility_fracture=flag, **before),
            exam(exam_id="E2", prior_fragility_fracture=flag, **after),
        ]
    )
    first, second = frame.sort("exam_id").get_column("who_category").to_list()
    assert SEVERITY[second] >= SEVERITY[first]


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(row_strategy, min_size=1, max_size=25))
def test_one_select_flags_exactly_the_rows_pandera_fails(generic_profile, bounds, rows):
    """The fast pass (every check in one select) and Pandera agree row by row, in both tiers, so the
    rows it lets through are rows Pandera would pass."""
    import pandera.polars as pa
    from pandera.config import ValidationDepth, config_context

    from osteo_core.validate.quarantine import passing_rows
    from osteo_core.validate.rows import with_row_numbers
    from osteo_core.validate.scans import normalise_text, parse_scans
    from schemas.input_checks import raw_scans_schema, typed_scans_schema

    rows = [exam(**{k: (v or None) if k in ("exam_id", "patient_id") else v for k, v in r.items()}) for r in rows]
    text = with_row_numbers(normalise_text(scans_frame(rows).lazy()))
    typed = parse_scans(text.lazy(), generic_profile).collect()
    tiers = (
        (raw_scans_schema(generic_profile.date_formats, generic_profile.words), text),
        (typed_scans_schema(AS_OF, bounds), typed),
    )
    for schema, frame in tiers:
        with config_context(validation_depth=ValidationDepth.SCHEMA_AND_DATA):
            try:
                schema.validate(frame, lazy=True)
                failing = set()
            except pa.errors.SchemaErrors as err:
                failing = set(err.failure_cases.get_column("index").drop_nulls().to_list())
        passes = passing_rows(schema, frame)
        assert passes is not None
        assert {i for i, ok in enumerate(passes) if not ok} == failing
        if frame is text:  # the text tier answered from the parsed values gives the same rows
            parsed = typed.select(c for c in typed.columns if c in text.columns and c not in ("age_years", "_row"))
            from_parsed = passing_rows(schema, frame, parsed)
            assert {i for i, ok in enumerate(from_parsed) if not ok} == failing
