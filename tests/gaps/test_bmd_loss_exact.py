"""``significant_bmd_loss`` decides in exact decimals (earlier − later ≥ LSC × earlier), on tiny typed frames.

The float screen that spares most pairs the exact comparison must never drop a loss: values are drawn at the
LSC and a millionth either side, for one hip value or both hips, and compared with Python's ``Decimal``.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from osteo_core import reference
from osteo_core.gaps.care_gaps import significant_bmd_loss
from schemas.scans import sided
from schemas.sites import HIP_SITES, LSC_SITES, SIDES

PARAMS = reference.care_gap_parameters()
LSC = {site: Decimal(str(PARAMS["significant_bmd_loss"][site])) for site in LSC_SITES}
MILLIONTH = Decimal("0.000001")
HIP_COLUMNS = [sided(side, site, "bmd") for site in HIP_SITES for side in SIDES]


def _exams(rows: list[dict]) -> pl.LazyFrame:
    schema = {
        "patient_id": pl.Utf8,
        "exam_id": pl.Utf8,
        "exam_date": pl.Date,
        "device_id": pl.Utf8,
        "spine_levels": pl.Utf8,
        "spine_level_count": pl.Int8,
        **{f"{site}_bmd": pl.Float64 for site in LSC_SITES},
        **dict.fromkeys(HIP_COLUMNS, pl.Float64),
    }
    return pl.LazyFrame([{c: r.get(c) for c in schema} for r in rows], schema=schema)


def _lost(before: Decimal, after: Decimal, lsc: Decimal) -> bool:
    return before - after >= lsc * before


# an earlier value in g/cm² with up to 6 decimals, and a later one at the LSC, a millionth either side, or far off
_before = st.integers(min_value=300_000, max_value=1_600_000).map(lambda m: Decimal(m) * MILLIONTH)
_nudge = st.sampled_from([-1, 0, 1, 5_000])


def _at_lsc(before: Decimal, lsc: Decimal, nudge: int) -> Decimal:
    return (before - (lsc * before).quantize(MILLIONTH)) + nudge * MILLIONTH


@settings(max_examples=150, deadline=None)
@given(
    site=st.sampled_from(LSC_SITES),
    cases=st.lists(st.tuples(_before, _nudge), min_size=1, max_size=8),
)
def test_an_unsided_loss_opens_exactly_when_decimals_say_so(site, cases):
    rows, expected = [], set()
    for i, (before, nudge) in enumerate(cases):
        after = _at_lsc(before, LSC[site], nudge)
        for exam_id, day, value in ((f"A{i}", dt.date(2022, 1, 1), before), (f"B{i}", dt.date(2024, 1, 1), after)):
            rows.append({"patient_id": f"P{i}", "exam_id": exam_id, "exam_date": day, "device_id": "D1",
                         f"{site}_bmd": float(value)})  # fmt: skip
        if _lost(before, after, LSC[site]):
            expected.add(f"P{i}")
    found = significant_bmd_loss(_exams(rows), PARAMS).collect()
    assert set(found.get_column("patient_id")) == expected


@settings(max_examples=150, deadline=None)
@given(site=st.sampled_from(HIP_SITES), left=_before, right=_before, nudges=st.tuples(_nudge, _nudge))
def test_both_hips_lose_exactly_when_their_sums_do(site, left, right, nudges):
    """Both hips on both exams: their sum is compared (the mean's test), at the LSC of each hip ± a millionth."""
    lsc = LSC[site]
    after = (_at_lsc(left, lsc, nudges[0]), _at_lsc(right, lsc, nudges[1]))
    columns = [sided(side, site, "bmd") for side in SIDES]
    rows = [
        {"patient_id": "P", "exam_id": "A", "exam_date": dt.date(2022, 1, 1), "device_id": "D1",
         columns[0]: float(left), columns[1]: float(right)},
        {"patient_id": "P", "exam_id": "B", "exam_date": dt.date(2024, 1, 1), "device_id": "D1",
         columns[0]: float(after[0]), columns[1]: float(after[1])},
    ]  # fmt: skip
    found = significant_bmd_loss(_exams(rows), PARAMS).collect()
    assert (found.height == 1) is _lost(left + right, after[0] + after[1], lsc)
