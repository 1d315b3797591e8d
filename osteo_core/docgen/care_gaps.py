"""docs/care_gaps.md (``templates/care_gaps.md``): each gap of ``schemas.gaps`` with its priority and windows,
and why a gap closes across runs, from ``data/reference/care_gaps.toml``."""

from __future__ import annotations

from osteo_core import reference
from osteo_core.docgen.markdown import code_list, generated, render, table
from schemas.gaps import GAPS, SCREENING_DUE


def _closing_rows(rules: dict) -> list[list[str]]:
    """``[lifecycle]``: each closing reason, in the order they are tried, and when it applies."""
    needs = ", ".join(f"`{gap}` {kind}" for gap, kind in rules["needs_input"].items())
    why = {
        "input_missing": f"the input that shows the gap ({needs}) was given last time and not now, or the"
        " patient of an exam-based gap has no valid exam now",
        "left_population": "the roster lists the patient, who is dead or not enrolled on the as-of date, or an "
        "export records her death (`closed_detail`: `died` / `disenrolled`); or a"
        f" `{SCREENING_DUE.name}` gap of a patient the roster no longer lists (`left_roster`)",
        "treatment_started": "an osteoporosis-drug event the gap's own rule counts ("
        + code_list(rules["treatment_closes"])
        + ")",
        "dxa_done": "an exam or a DXA procedure after the last published run's as-of date ("
        + code_list(rules["dxa_closes"])
        + ")",
        "window_passed": "a post-fracture gap whose fracture is now older than its look-back",
        "no_longer_eligible": "anything else: the decision changed (a new exam, the rules, an age)",
    }
    return [[f"`{reason}`", why[reason]] for reason in rules["closing_reasons"]]


def care_gaps_page() -> str:
    gaps = reference.care_gap_parameters()
    rows = [
        [gaps["priority"][gap.name], f"`{gap.name}`", gap.opens(gaps.get(gap.name, {}))]
        for gap in sorted(GAPS, key=lambda gap: gaps["priority"][gap.name])
    ]
    return render(
        "care_gaps",
        generated=generated(__name__),
        gaps_table=table(["priority", "gap", "opens when"], rows),
        closing_table=table(["closed_because", "when"], _closing_rows(gaps["lifecycle"])),
    )
