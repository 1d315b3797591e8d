"""Issue 29 item 4: a T-score whose site the export does not state is quarantined (``site_stated``) unless the
profile says ``[scores] unsited_t = "use"``; then it gives the WHO category with ``lowest_t_site = 'unspecified'``
and never a BMD change. The shipped ``fhir_bulk_unsited_t`` profile turns it on for FHIR exports."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from conftest import exam, write_ndjson_export, write_scans_csv

from osteo_core.errors import InputError
from osteo_core.ingest.profiles import load_profile
from osteo_core.pipeline.stages import ScreenRequest, run_screen

AS_OF = "2026-11-25"
PATIENT = {"resourceType": "Patient", "id": "P1", "gender": "female", "birthDate": "1950-06-15"}
CPT = "http://www.ama-assn.org/go/cpt"
UNSITED = ("38265-5", "DXA [T-score] Bone density")  # Synthea's code and display: no site


def _observation(number: int, value: float, code: str = UNSITED[0], text: str | None = UNSITED[1], **more) -> dict:
    return {
        "resourceType": "Observation",
        "id": f"o{number}",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": code}], **({"text": text} if text else {})},
        "subject": {"reference": "Patient/P1"},
        "effectiveDateTime": more.pop("day", "2024-03-01"),
        "valueQuantity": {"value": value, "code": "{T-score}"},
        **more,
    }


def _screen(tmp_path: Path, observations: list[dict], profile: str = "fhir_bulk_unsited_t", name: str = "x"):
    folder = write_ndjson_export(tmp_path / f"export-{name}", Patient=[PATIENT], Observation=observations)
    out = tmp_path / f"out-{name}"
    request = ScreenRequest(scans=[str(folder)], out=str(out), as_of=AS_OF, max_reject_rate=1.0, profile=profile)
    manifest = run_screen(request)
    screening = pl.read_parquet(out / "screening.parquet") if (out / "screening.parquet").exists() else None
    return manifest, screening, pl.read_parquet(out / "quarantine.parquet"), out


def _lowest(screening: pl.DataFrame) -> list[tuple]:
    return screening.sort("exam_date").select("lowest_t_score", "lowest_t_site", "who_category").rows()


def test_an_unsited_t_score_is_quarantined_by_default_and_read_as_unspecified_when_the_profile_says_so(tmp_path):
    """Before: no profile could say "use it"; every Synthea DXA result was quarantined (exit 3)."""
    _, _, quarantine, _ = _screen(tmp_path, [_observation(1, -2.7)], profile="fhir_bulk", name="default")
    assert quarantine.filter(pl.col("column") == "measurement").get_column("check").to_list() == ["site_stated"]
    _, screening, quarantine, _ = _screen(tmp_path, [_observation(1, -2.7)], name="use")
    assert quarantine.is_empty()
    assert _lowest(screening) == [(-2.7, "unspecified", "osteoporosis")]
    assert screening.get_column("lowest_t_side").to_list() == [None]


def test_a_site_named_in_the_text_wins_and_two_sites_named_stay_quarantined(tmp_path):
    spine = _observation(1, -1.4, text="DXA [T-score] Bone density | Lumbar spine")
    _, screening, _, _ = _screen(tmp_path, [spine], name="spine")
    assert _lowest(screening) == [(-1.4, "spine", "osteopenia")]
    both = _observation(1, -1.4, text="DXA [T-score] Bone density | lumbar spine and femoral neck")
    _, _, quarantine, _ = _screen(tmp_path, [both], name="both")
    assert quarantine.filter(pl.col("column") == "measurement").get_column("check").to_list() == ["site_stated"]


def test_only_an_unsited_t_score_is_used_a_hip_code_without_neck_or_total_stays_quarantined(tmp_path):
    """38264-8 "DXA Hip [T-score]" says the hip: femoral neck or total hip is not known, never "unspecified"."""
    hip = _observation(1, -2.6, code="38264-8", text="DXA Hip [T-score] Bone density")
    _, _, quarantine, _ = _screen(tmp_path, [hip], name="hip")
    assert quarantine.filter(pl.col("column") == "measurement").get_column("check").to_list() == ["site_stated"]


@pytest.mark.parametrize(
    ("spine_t", "unsited_t", "expected"),
    [
        (-2.0, -2.0, (-2.0, "spine")),  # a tie: the stated site wins
        (-2.0, -2.6, (-2.6, "unspecified")),  # lower: the unsited T-score is the lowest
        (-2.6, -2.0, (-2.6, "spine")),
    ],
)
def test_an_unsited_t_score_is_the_lowest_only_when_lower_than_every_stated_site(
    tmp_path, spine_t, unsited_t, expected
):  # noqa: E501
    observations = [
        _observation(1, spine_t, code="38267-1", text=None),  # DXA Lumbar spine [T-score]
        _observation(2, unsited_t),
    ]
    _, screening, _, _ = _screen(tmp_path, observations)
    assert screening.select("lowest_t_score", "lowest_t_site").rows() == [expected]


def test_an_unsited_t_score_never_gives_a_bmd_change(tmp_path):
    """Two exams two years apart whose unsited T-score falls by 1.0: no significant_bmd_loss (no BMD, no site)."""
    observations = [_observation(1, -1.2, day="2022-01-10"), _observation(2, -2.2, day="2024-01-12")]
    _, screening, _, out = _screen(tmp_path, observations)
    assert _lowest(screening) == [(-1.2, "unspecified", "osteopenia"), (-2.2, "unspecified", "osteopenia")]
    gaps = pl.read_parquet(out / "care_gaps.parquet").get_column("gap").to_list()
    assert "significant_bmd_loss" not in gaps


def test_a_wide_export_reads_an_unspecified_t_column_only_with_a_profile_that_says_so(tmp_path):
    """Before: under generic an ``unspecified_t`` column was listed as unmapped, yet kept under its own name and read
    as the canonical column: the exam screened on it (osteoporosis) with no opt-in. Now it is refused, naming it."""
    row = exam(femoral_neck_t="", unspecified_t="-2.8")
    scans = write_scans_csv(tmp_path / "scans.csv", [row])
    with pytest.raises(InputError) as err:
        run_screen(ScreenRequest(scans=[str(scans)], out=str(tmp_path / "g"), as_of=AS_OF, max_reject_rate=1.0))
    assert str(scans) in str(err.value) and "column 'unspecified_t'" in str(err.value)
    assert "profile 'generic' does not" in str(err.value) and "-2.8" not in str(err.value)
    profile = tmp_path / "wide_unsited.toml"
    profile.write_text('[profile]\nname = "wide_unsited"\n[scores]\nunsited_t = "use"\n', encoding="utf-8")
    chosen = ScreenRequest(
        scans=[str(scans)], out=str(tmp_path / "u"), as_of=AS_OF, max_reject_rate=1.0, profile=str(profile)
    )
    run_screen(chosen)
    screening = pl.read_parquet(tmp_path / "u" / "screening.parquet")
    assert screening.select("lowest_t_score", "lowest_t_site").rows() == [(-2.8, "unspecified")]


@pytest.mark.parametrize(
    "text",
    [
        "DXA T-score left hip",  # a hip, not which region of it
        "DXA [T-score] Bone density | Hip",
        "femur T-score",
        "Total body T-score",  # not a diagnostic site
        "DXA [Z-score] Bone density",  # a Z-score under a T-score code
        "DXA [T-score] Bone density | left",  # a side: of what?
        "DXA [T-score] Bone density | 7771000",  # SNOMED left
    ],
)
def test_a_text_that_says_anything_of_where_keeps_an_unsited_t_score_quarantined(tmp_path, text):
    """Before (review): no site word was read as "unsited", so a hip, a femur, the total body, a Z-score display or
    a side alone became an ``unspecified`` T-score. Only a text that says nothing of where is unsited."""
    _, _, quarantine, _ = _screen(tmp_path, [_observation(1, -2.7, text=text)])
    assert quarantine.filter(pl.col("column") == "measurement").get_column("check").to_list() == ["site_stated"]


def test_a_profile_extends_a_shipped_profile_by_name_never_a_path(tmp_path):
    """Before (review): ``extends = "../../pyproject"`` read another file."""
    path = tmp_path / "mine.toml"
    for base in ("../../pyproject", str(tmp_path / "other"), "fhir_bulk.toml"):
        path.write_text(f'[profile]\nextends = "{base}"\n', encoding="utf-8")
        with pytest.raises(InputError, match="extends must name a shipped profile"):
            load_profile(str(path))


def test_every_date_of_one_instant_falls_on_one_local_day_in_the_profiles_time_zone(tmp_path):
    """Before (review): only Observations were read in the profile's time zone; a death, a fracture and a procedure
    at the same instant were cut from the date as written (the UTC day)."""
    instant = "2026-11-26T02:00:00Z"  # 25 November in New York
    patient = PATIENT | {"deceasedDateTime": instant}
    condition = {
        "resourceType": "Condition", "id": "c1", "subject": {"reference": "Patient/P1"}, "onsetDateTime": instant,
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "65966004"}]},
    }  # fmt: skip
    procedure = {
        "resourceType": "Procedure", "id": "p1", "status": "completed", "subject": {"reference": "Patient/P1"},
        "performedDateTime": instant, "code": {"coding": [{"system": CPT, "code": "77080"}]},
    }  # fmt: skip
    folder = write_ndjson_export(
        tmp_path / "export",
        Patient=[patient],
        Observation=[_observation(1, -2.7, code="38267-1", text=None, day="2024-03-01")],
        Condition=[condition],
        Procedure=[procedure],
    )
    out = tmp_path / "out"
    run_screen(ScreenRequest(scans=[str(folder)], out=str(out), as_of=AS_OF, max_reject_rate=1.0))
    run = out / "current"
    fracture_dates = pl.read_parquet(sorted(run.glob("fractures/*.parquet"))).get_column("fracture_date")
    procedure_dates = pl.read_parquet(sorted(run.glob("dxa_procedures/*.parquet"))).get_column("procedure_date")
    assert [str(d) for d in fracture_dates] == [str(d) for d in procedure_dates] == ["2026-11-25"]
    # dead on the as-of date in New York: no gap lists her (before: the UTC day, 26 November, after the as-of date)
    assert pl.read_parquet(out / "care_gaps.parquet").filter(pl.col("patient_id") == "P1").is_empty()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[headers]\n"Lowest T" = "unspecified_t"\n', "'unspecified_t' is read only with [scores] unsited_t = \"use\""),
        ('[scores]\nunsited_t = "maybe"\n', "[scores] unsited_t must be one of quarantine, use"),
        ('[scores]\nunsited = "use"\n', "unknown [scores] setting(s): unsited"),
        ('[profile]\nextends = "no_such_profile"\n', "[profile] extends must name a shipped profile"),
        ('[profile]\nextends = "fhir_bulk"\n[fhir]\ntime_zone = "Mars/Olympus"\n', "[fhir] time_zone must be an IANA"),
        ('[profile]\nextends = "fhir_bulk"\n[fhir]\nzone = "UTC"\n', "unknown [fhir] setting(s): zone"),
        ('[fhir]\ntime_zone = "UTC"\n', "[fhir] is for FHIR Bulk Data exports, read as long exports"),
    ],
)
def test_a_profile_that_cannot_say_what_it_means_is_refused_naming_the_setting(tmp_path, text, message):
    path = tmp_path / "mine.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InputError) as err:
        load_profile(str(path))
    assert message in str(err.value) and str(path) in str(err.value)


def test_a_users_fhir_profile_extends_a_shipped_one_and_its_time_zone_is_the_one_read(tmp_path):
    """The profile's settings reach the reader (before, the reader read fhir_bulk's file whatever was chosen):
    04:30 UTC on 2 March is 1 March in New York (fhir_bulk) and 2 March in UTC."""
    late = _observation(1, -2.7, code="38267-1", text=None, day="2024-03-02T04:30:00Z")
    path = tmp_path / "utc.toml"
    path.write_text('[profile]\nname = "utc"\nextends = "fhir_bulk"\n[fhir]\ntime_zone = "UTC"\n', encoding="utf-8")
    profile = load_profile(str(path))
    assert profile.long is not None and profile.long.loinc and profile.fhir.time_zone == "UTC"
    assert not profile.unsited_t
    _, new_york, _, _ = _screen(tmp_path, [late], profile="fhir_bulk", name="ny")
    _, utc, _, _ = _screen(tmp_path, [late], profile=str(path), name="utc")
    assert [str(d) for d in new_york.get_column("exam_date")] == ["2024-03-01"]
    assert [str(d) for d in utc.get_column("exam_date")] == ["2024-03-02"]


def test_explain_shows_the_unsited_t_score_it_used(tmp_path, capsys):
    """Before (review): the inputs listed no unsited score, yet the classification said "-2 at unspecified"."""
    from osteo_core.cli import main

    _, screening, _, out = _screen(tmp_path, [_observation(1, -2.7)])
    exam_id = screening.get_column("exam_id").item()
    capsys.readouterr()
    assert main(["explain", exam_id, "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "T-score at no stated site -2.7" in text and "and unspecified (the profile's unsited T-score)" in text
    assert "lowest T-score -2.7 at unspecified" in text
