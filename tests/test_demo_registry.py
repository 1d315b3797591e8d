"""Issue 32 §1: the demo's registry is alive up to its as-of date.

Before: ``osteo demo`` screened as of today a registry whose exams ran from 12 years earlier and dwindled to a
trickle two years before today (4,176 exams in its busiest year, 50 in its last), so 99 % of the scanned
patients were ``overdue_dxa``, no patient was on treatment (the last fills ended on the as-of date), every
denosumab lapse was years old, osteoporosis was as common in men as in women, and the demo's list started with
"untreated since 2012-01-03".

Here a demo-sized registry is drawn for a fixed as-of date, screened, and held to the shares the generator
states (``living_registry.DEMO_TARGETS``, each with its source); then the demo command itself prints its list.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest

from osteo_core.cli import main
from osteo_core.demo import living_registry
from osteo_core.pipeline.stages import ScreenRequest, run_screen
from osteo_core.publish.catalog import query

AS_OF = dt.date(2026, 3, 16)  # any day will do: the registry is anchored to the day it is screened on
PATIENTS = 5000
INPUTS = {"scans": "scans", "meds": "medications", "fractures": "fractures", "population": "population"}


@pytest.fixture(scope="module")
def screened(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("demo-registry")
    for name, frame in living_registry.demo_inputs(PATIENTS, AS_OF).items():
        frame.write_csv(folder / f"{name}.csv")
    paths = {kind: str(folder / f"{name}.csv") for kind, name in INPUTS.items()}
    run_screen(ScreenRequest(scans=[paths.pop("scans")], out=str(folder / "out"), as_of=AS_OF.isoformat(), **paths))
    return folder / "out"


def registry_numbers(out: Path, as_of: dt.date) -> dict[str, float]:
    """The shares ``DEMO_TARGETS`` names, of a published screen (patients "in care": scanned, and alive and
    enrolled on the as-of date, whom a gap can open for)."""
    day = f"DATE '{as_of.isoformat()}'"
    care = query(
        out,
        """SELECT count(*) AS n,
                  avg((p.patient_id IN (SELECT patient_id FROM care_gaps WHERE gap = 'overdue_dxa'))::int) AS overdue,
                  avg(p.on_treatment::int) AS treated,
                  avg(CASE WHEN p.who_category IN ('osteoporosis', 'severe_osteoporosis')
                      THEN p.on_treatment::int END) AS osteoporosis_treated
           FROM patients p JOIN population r USING (patient_id)
           WHERE p.latest_exam_id IS NOT NULL AND r.alive AND r.enrolled""",
    ).row(0, named=True)
    prevalence = dict(
        query(
            out,
            """SELECT s.sex, avg((s.who_category IN ('osteoporosis', 'severe_osteoporosis'))::int) AS share
               FROM screening s JOIN patients p ON s.exam_id = p.latest_exam_id
               WHERE s.who_category IS NOT NULL AND s.age_years >= 50 GROUP BY s.sex""",
        ).rows()
    )
    volume = query(
        out,
        f"""SELECT count(*) FILTER (WHERE exam_date > {day} - INTERVAL 365 DAY) AS last_year,
                   count(*) / (date_diff('day', min(exam_date), {day}) / 365.25) AS mean_year
            FROM screening""",
    ).row(0, named=True)
    return {
        "overdue_dxa_share": care["overdue"],
        "on_treatment_share": care["treated"],
        "osteoporosis_treated_share": care["osteoporosis_treated"],
        "women_osteoporosis_share": prevalence["F"],
        "men_osteoporosis_share": prevalence["M"],
        "women_to_men_osteoporosis": prevalence["F"] / max(prevalence["M"], 1e-9),
        "last_year_exam_volume": volume["last_year"] / volume["mean_year"],
    }


@pytest.mark.parametrize("name", sorted(living_registry.DEMO_TARGETS))
def test_a_screen_of_the_demo_shows_the_shares_the_generator_states(screened, name):
    low, high, means = living_registry.DEMO_TARGETS[name]
    value = registry_numbers(screened, AS_OF)[name]
    assert low <= value <= high, f"{name} = {value:.3f}, not in [{low}, {high}]: {means}"


def test_the_generator_states_each_share_with_its_source():
    """The shares a health system would check are stated, each saying what it means and where it comes from."""
    stated = {
        "women", "women_t_at_50", "men_t_at_50", "women_t_loss_per_year", "men_t_loss_per_year",
        "rescan_years_osteopenia", "not_back_after_exam", "leave_per_year", "treat_osteoporosis",
        "treat_after_fracture", "stop_early", "denosumab_stop_early", "fracture_rate", "export_lag_days",
    }  # fmt: skip
    assert stated <= set(living_registry.DEMO_SHAPE), stated - set(living_registry.DEMO_SHAPE)
    for name, shape in living_registry.DEMO_SHAPE.items():
        assert shape.means.strip() and shape.source.strip(), name
    assert all(means.strip() for _, _, means in living_registry.DEMO_TARGETS.values())


def test_exams_run_to_a_few_weeks_before_the_as_of_date_with_the_same_volume_every_year(screened):
    """Before: the last exam two years before the as-of date, the yearly volume falling from 4,176 to 50."""
    first, last = query(screened, "SELECT min(exam_date) AS a, max(exam_date) AS b FROM screening").row(0)
    assert AS_OF - dt.timedelta(days=28) <= last < AS_OF
    assert first >= AS_OF - dt.timedelta(days=round(12 * 365.25) + 1)
    # each whole year back from the as-of date holds about the same number of exams
    years = query(
        screened,
        f"""SELECT back, count(*) AS exams FROM (SELECT date_diff('day', exam_date, DATE '{AS_OF}') // 365 AS back
            FROM screening) WHERE back < 11 GROUP BY back ORDER BY back""",
    ).get_column("exams")
    mean = years.mean()
    assert years.len() == 11 and years.min() >= 0.8 * mean and years.max() <= 1.2 * mean, years.to_list()


def test_lapses_and_fractures_happen_every_year_up_to_the_as_of_date(screened):
    """Before: 586 of the 600 denosumab lapses began before 2020, and fractures dwindled to a trickle, then the
    recent ones the measures need were added on top."""
    lapses = query(
        screened,
        f"""SELECT count(*) FILTER (WHERE since > DATE '{AS_OF}' - INTERVAL 365 DAY) AS last_year,
                   count(*) FILTER (WHERE since > DATE '{AS_OF}' - INTERVAL 1095 DAY) AS three_years, count(*) AS n
            FROM care_gaps WHERE gap = 'denosumab_lapse'""",
    ).row(0, named=True)
    assert lapses["last_year"] >= 5 and lapses["three_years"] >= 0.3 * lapses["n"], lapses
    fractures = query(
        screened,
        f"""SELECT back, count(*) AS n FROM (SELECT date_diff('day', fracture_date, DATE '{AS_OF}') // 365 AS back
            FROM fractures WHERE fracture_date < DATE '{AS_OF}') WHERE back < 10 GROUP BY back ORDER BY back""",
    ).get_column("n")
    assert fractures.len() == 10 and fractures.min() >= 0.6 * fractures.mean(), fractures.to_list()


def test_the_demo_prints_recent_actionable_patients_first(tmp_path, capsys, prefect_engine):
    """The demo's list of untreated high-risk patients starts with those scanned in the last weeks, most recent
    first (as the worklist orders a gap). Before: oldest first, "untreated since 2012-01-03"."""
    assert main(["demo", "--patients", "1500", "--out", str(tmp_path / "demo")]) == 0
    printed = capsys.readouterr().out
    listed = printed.split("untreated high-risk patients", 1)[1]
    since = [dt.date.fromisoformat(d) for d in re.findall(r"untreated_high_risk\s+\S+\s+(\d{4}-\d\d-\d\d)", listed)]
    today = dt.date.today()
    assert len(since) == 15 and since == sorted(since, reverse=True), since
    assert today - dt.timedelta(days=60) <= since[-1] <= since[0] < today, since
    assert "most recent first" in listed
