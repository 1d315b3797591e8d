"""The measurement sites of a DXA exam and the sides of a hip. Plain names, no engine: the input fields, the
tables, the decisions and the command line's help read them."""

from __future__ import annotations

SITE_LABELS = {"spine": "spine", "total_hip": "total hip", "femoral_neck": "femoral neck", "radius33": "1/3 radius"}
SITES = tuple(SITE_LABELS)  # measurement sites of a DXA exam
LSC_SITES = ("spine", "total_hip", "femoral_neck")  # sites compared between serial exams (BMD loss)
HIP_SITES = ("total_hip", "femoral_neck")  # measured on either hip: an export may give each side
SIDES = ("left", "right")  # ties between the sides go to the first
# the site of a T-score the export does not place (a profile's [scores] unsited_t = "use"): WHO category only
UNSPECIFIED_SITE = "unspecified"
