"""Issue 6: the HTML report renders every chart in a real headless browser (the notebook: test_notebook_render.py)."""

import re
import subprocess

import pytest
from conftest import CHROMIUM_FLAGS, screen_synthetic, write_synthetic

from osteo_core.cli import main
from osteo_core.outputs.report import REPORT

CHARTS = (
    "who-by-age-sex",
    "eligibility-funnel",
    "gaps-by-type-age",
    "quarantine-reasons",
    "gaps-over-time",
    "gaps-opened-closed",  # issue 15: per run, gaps opened and closed by why
    "time-on-list",
    "measure-rates",  # with the roster: the quality measures' section
)


@pytest.fixture(scope="module")
def screened(tmp_path_factory):
    folder = tmp_path_factory.mktemp("report")
    paths = write_synthetic(folder, 300, seed=4, roster=True, recent_fractures=0.1)
    for as_of in ("2025-07-01", "2026-01-01", "2026-07-01"):  # a run history for the trend chart
        screen_synthetic(paths, folder / "out", as_of)
    return folder / "out"


def test_report_is_self_contained_and_every_chart_renders(screened, chromium, tmp_path):
    assert main(["report", "--out", str(screened)]) == 0
    page = screened / REPORT
    text = page.read_text()
    assert not re.search(r"<script[^>]+src=", text)  # no external script: plotly.js is embedded
    assert "P0000" not in text  # counts only, no patient identifier
    profile = tmp_path / "chrome-profile"
    dom = subprocess.run(
        [
            chromium,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            "--virtual-time-budget=15000",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=True,
    ).stdout
    for chart in CHARTS:
        match = re.search(rf'<div id="{chart}"[^>]*>(.*?)</div>\s*</section>', dom, re.S)
        assert match, f"{chart} missing"
        assert 'class="main-svg"' in match.group(0), f"{chart} did not render"
    subprocess.run(
        [
            chromium,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            "--window-size=1200,2600",
            f"--screenshot={tmp_path / 'report.png'}",
            "--virtual-time-budget=15000",
            page.as_uri(),
        ],
        capture_output=True,
        timeout=180,
        check=True,
    )
    assert (tmp_path / "report.png").stat().st_size > 20_000


def test_gaps_over_time_uses_the_run_history(screened):
    from osteo_core.publish.folder import read_history

    history = read_history(screened)
    assert [h["as_of"] for h in history] == ["2025-07-01", "2026-01-01", "2026-07-01"]
    assert all("care_gaps" in h and "patient" not in str(h).lower() for h in history)
