"""The care gaps (docs/care_gaps.md): one declaration per gap, from which the care-gap step, the table and column
descriptions (and so the DuckDB comments), the docs pages and the command line take the gap's name and words.
Plain data, no engine: ``osteo --help`` reads it.

What a gap's numbers are is data, never written here: ``data/reference/care_gaps.toml`` holds each gap's priority
(``[priority]``), its windows (its own section, named as the gap) and the evidence that closes it (``[lifecycle]``);
``osteo_core.reference.care_gap_parameters`` checks that file against these declarations when it reads it. Each
gap's finder is in ``osteo_core.gaps`` (``care_gaps.FINDERS``).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Gap:
    name: str  # care_gaps.gap, and its section of care_gaps.toml
    # docs/care_gaps.md's "opens when": {key} is the value of that key of the gap's section, as str.format reads it
    opens_when: str
    parameters: bool = True  # care_gaps.toml has a section of this gap's windows (named as the gap)
    exam: bool = True  # care_gaps.exam_id names the exam the gap refers to (False: always null)
    view: bool = False  # the catalog has a view of its own: its gaps joined to the patient's latest screening row
    # {key} of ``opens_when`` that is a yes/no setting of the section: (the words when yes, the words when no)
    switches: dict[str, tuple[str, str]] = field(default_factory=dict)
    # closed_gaps: the key of its section giving the days before ``since`` from which a drug event closes it
    # (treatment_started; a gap of [lifecycle] treatment_closes without one counts from its since)
    treatment_from: str | None = None
    # closed_gaps: the key of its section giving the years after which its since has left the look-back (window_passed)
    window: str | None = None

    def opens(self, section: dict) -> str:
        """The "opens when" words with the numbers of the gap's section of care_gaps.toml."""
        values = dict(section)
        for key, (yes, no) in self.switches.items():
            values[key] = (yes if section[key] else no).format(**section)
        return self.opens_when.format(**values)


DENOSUMAB_LAPSE = Gap(
    "denosumab_lapse",
    "the last osteoporosis denosumab dose + {months_after_dose} calendar months + {grace_days} days is before the"
    " as-of date, and no bisphosphonate followed it",
    exam=False,
)
UNTREATED_HIGH_RISK = Gap(
    "untreated_high_risk",
    "the patient's latest exam is `eligible` and no osteoporosis drug was given from {lookback_days} days before"
    " that exam to the as-of date",
    view=True,
    treatment_from="lookback_days",
)
SCREENING_DUE = Gap(
    "screening_due",
    "only with a population roster (`--population`): a patient of sex `{sex}` aged {min_age_years} or more on the"
    " as-of date{include_men}, alive and enrolled on that date, with no DXA on record (no valid exam, and no"
    " completed DXA procedure of a FHIR export: `dxa_procedures`); `since` is the birthday of that age or the start"
    " of the unbroken enrolment covering the as-of date, whichever is later",
    exam=False,
    switches={
        "include_men": (
            "; men from {men_min_age_years} too (`include_men`, on)",
            "; men from {men_min_age_years} when `include_men` is set (off: USPSTF finds the evidence for men"
            " insufficient)",
        )
    },
)
POST_FRACTURE_UNTREATED = Gap(
    "post_fracture_untreated",
    "a fragility fracture in the last {lookback_years} calendar years (at {min_age_years} or older where the age is"
    " known: from the fracture row's birth date, else the latest exam's, else the roster's) has no DXA and no"
    " treatment within {window_days} days after it, nor treatment in the {prior_treatment_days} days before",
    exam=False,
    treatment_from="prior_treatment_days",
    window="lookback_years",
)
SIGNIFICANT_BMD_LOSS = Gap(
    "significant_bmd_loss",
    "the two latest exams on the same device lost at least the least significant change at spine, total hip or"
    " femoral neck (default LSC, as a share of the earlier BMD: spine {spine:g}, total_hip {total_hip:g},"
    " femoral_neck {femoral_neck:g}; the spine only with at least {min_spine_vertebrae} vertebrae). Exports of both"
    " hips compare both hips' mean when both exams give both hips, else the same hip (left first); an exam with"
    " both hips is not compared with one that gives a single unsided hip value",
)
OVERDUE_DXA = Gap(
    "overdue_dxa",
    "the latest exam's `next_dxa_due` is before the as-of date, and no completed DXA procedure (a FHIR export's"
    " Procedure, `dxa_procedures`) is dated after that exam",
    parameters=False,
)

# every gap, most urgent first: the order of care_gaps.toml's [priority] (tests/test_registries.py holds them together)
GAPS = (DENOSUMAB_LAPSE, UNTREATED_HIGH_RISK, SCREENING_DUE, POST_FRACTURE_UNTREATED, SIGNIFICANT_BMD_LOSS, OVERDUE_DXA)
GAP_NAMES = tuple(gap.name for gap in GAPS)
GAP_VIEWS = tuple(gap.name for gap in GAPS if gap.view)  # catalog views named as their gap
