"""A screen dated far past today (a typo: 2062 for 2026) is refused before it can publish: such a run would make
every later screen into the folder an 'earlier as-of' one (refused) and let a mark hide a gap for decades."""

from __future__ import annotations

import datetime as dt

import pytest
from conftest import exam, write_scans_csv

from osteo_core.errors import InputError
from osteo_core.pipeline.request import MAX_DAYS_AHEAD, ScreenRequest
from osteo_core.pipeline.resolve import resolve


@pytest.mark.parametrize(("days", "refused"), [(7, False), (MAX_DAYS_AHEAD, False), (MAX_DAYS_AHEAD + 1, True)])
def test_an_as_of_date_far_ahead_of_today_is_refused(tmp_path, days, refused):
    scans = write_scans_csv(tmp_path / "scans.csv", [exam()])
    as_of = (dt.date.today() + dt.timedelta(days=days)).isoformat()
    request = ScreenRequest(scans=[str(scans)], out=str(tmp_path / "out"), as_of=as_of)
    if refused:
        with pytest.raises(InputError, match=f"more than {MAX_DAYS_AHEAD} days after today"):
            resolve(request)
        assert not (tmp_path / "out").exists()
    else:
        resolve(request)
