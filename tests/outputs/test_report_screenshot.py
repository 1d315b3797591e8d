"""Issue 32 §2: the report reads at a glance, checked in the page headless Chromium renders and screenshots.

One palette (data/reference/report.toml) for every chart: WHO categories an ordered ramp from normal to severe,
painted in those colours; gap ages an ordered ramp; closing reasons distinct hues, none like "opened"; the funnel
states the share of eligible patients untreated; every measure bar shows its n; "since" and "first_seen" are
named on the charts; the first run's bar does not set the scale of the opened/closed chart. The expected
numbers are computed here from the published tables, not taken from the report's code."""

from __future__ import annotations

import html
import re
import struct
import subprocess
import zlib
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from conftest import CHROMIUM_FLAGS as SHARED_CHROMIUM_FLAGS
from conftest import screen_synthetic, write_synthetic

from osteo_core.cli import main
from osteo_core.decide.rules import WHO_CATEGORIES
from osteo_core.outputs.report import REPORT
from osteo_core.publish.folder import read_history
from osteo_core.resources import shipped_toml

CHROMIUM_FLAGS = [
    *SHARED_CHROMIUM_FLAGS,
    "--hide-scrollbars",
    "--force-color-profile=srgb",  # the screenshot's pixels are the page's colours, unconverted
]
PALETTE = shipped_toml("reference/report.toml")["palette"]
PLOTLY_DEFAULTS = ["#636EFA", "#EF553B", "#00CC96", "#AB63FA", "#FFA15A", "#19D3F3", "#FF6692", "#B6E880"]


def rgb(colour: str) -> tuple[int, int, int]:
    return tuple(int(colour[i : i + 2], 16) for i in (1, 3, 5))


def luminance(colour: tuple[int, int, int]) -> float:
    """WCAG relative luminance."""
    linear = [c / 255 / 12.92 if c / 255 <= 0.04045 else ((c / 255 + 0.055) / 1.055) ** 2.4 for c in colour]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def lab(colour: tuple[int, int, int]) -> tuple[float, float, float]:
    """CIE L*a*b* (D65) of an sRGB colour."""
    linear = [c / 255 / 12.92 if c / 255 <= 0.04045 else ((c / 255 + 0.055) / 1.055) ** 2.4 for c in colour]
    x = (0.4124 * linear[0] + 0.3576 * linear[1] + 0.1805 * linear[2]) / 0.95047
    y = 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]
    z = (0.0193 * linear[0] + 0.1192 * linear[1] + 0.9505 * linear[2]) / 1.08883
    f = [t ** (1 / 3) if t > 216 / 24389 else (24389 / 27 * t + 16) / 116 for t in (x, y, z)]
    return 116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])


def delta_e(one: tuple[int, int, int], two: tuple[int, int, int]) -> float:
    """CIE76 colour difference: about 2 is just noticeable, 20 or more two clearly different colours."""
    return sum((a - b) ** 2 for a, b in zip(lab(one), lab(two), strict=True)) ** 0.5


def read_png(path: Path) -> np.ndarray:
    """The RGB pixels of an 8-bit, non-interlaced RGB or RGBA PNG (Chromium's screenshots): rows × columns × 3."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks = 8, []
    while pos < len(data):
        (size,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + size]
        pos += 12 + size
        if kind == b"IHDR":
            width, height, depth, colour_type, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and colour_type in (2, 6) and interlace == 0
        elif kind == b"IDAT":
            chunks.append(body)
    bpp = 3 if colour_type == 2 else 4
    stride = width * bpp
    raw = zlib.decompress(b"".join(chunks))
    pixels = np.zeros((height, stride), dtype=np.uint8)
    previous = np.zeros(stride, dtype=np.int64)
    for y in range(height):
        kind = raw[y * (stride + 1)]
        line = np.frombuffer(raw, dtype=np.uint8, count=stride, offset=y * (stride + 1) + 1).astype(np.int64)
        if kind == 0:
            row = line
        elif kind == 1:  # Sub: a running sum along the row, per channel
            row = np.cumsum(line.reshape(width, bpp), axis=0).reshape(-1) % 256
        elif kind == 2:  # Up
            row = (line + previous) % 256
        else:  # Average, Paeth: byte by byte
            up, out = previous.tolist(), line.tolist()
            for x in range(stride):
                left = out[x - bpp] if x >= bpp else 0
                if kind == 3:
                    out[x] = (out[x] + (left + up[x]) // 2) & 255
                else:
                    corner = up[x - bpp] if x >= bpp else 0
                    p = left + up[x] - corner
                    near = min((abs(p - left), 0, left), (abs(p - up[x]), 1, up[x]), (abs(p - corner), 2, corner))
                    out[x] = (out[x] + near[2]) & 255
            row = np.array(out, dtype=np.int64)
        pixels[y] = row
        previous = row
    return pixels.reshape(height, width, bpp)[:, :, :3]


def chart(dom: str, chart_id: str) -> str:
    match = re.search(rf'<div id="{chart_id}".*?</section>', dom, re.S)
    assert match, f"{chart_id} missing"
    return match.group(0)


def legend(segment: str) -> list[tuple[str, tuple[int, int, int]]]:
    """The legend's entries in their order on the page: name and the fill Chromium paints its swatch with."""
    entries = []
    for item in segment.split('<g class="traces"')[1:]:
        name = html.unescape(re.search(r'class="legendtext"[^>]*data-unformatted="([^"]*)"', item).group(1))
        fill = re.search(r'class="legendpoints"><path[^>]*style="[^"]*fill: rgb\((\d+), (\d+), (\d+)\)', item)
        entries.append((name, tuple(int(c) for c in fill.groups())))
    return entries


def texts(segment: str, css_class: str) -> list[str]:
    """The text of each SVG ``<text>`` of that class, its lines (tspans) joined by a space."""
    found = re.findall(rf'<text class="{css_class}"[^>]*>(.*?)</text>', segment, re.S)
    return [html.unescape(" ".join(re.sub(r"<[^>]+>", " ", t).split())) for t in found]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory, chromium):
    """A small registry screened three times (the last without the medications export, so gaps close for more
    than one reason), its report, the DOM after Chromium ran plotly.js, and the screenshot's pixels."""
    from osteo_core.pipeline.stages import ScreenRequest, run_screen

    folder = tmp_path_factory.mktemp("glance")
    paths = write_synthetic(folder, 300, seed=32, roster=True, recent_fractures=0.1)
    out = folder / "out"
    screen_synthetic(paths, out, "2025-07-01")
    screen_synthetic(paths, out, "2026-01-01")
    run_screen(
        ScreenRequest(
            scans=[str(paths["scans"])],
            fractures=str(paths["fractures"]),
            population=str(paths["population"]),
            out=str(out),
            as_of="2026-07-01",
            accept_input_change=True,
        )
    )
    assert main(["report", "--out", str(out)]) == 0
    page = out / REPORT
    common = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={folder / 'chrome'}", "--virtual-time-budget=15000"]
    run = {"capture_output": True, "timeout": 180, "check": True}
    dom = subprocess.run([*common, "--dump-dom", page.as_uri()], text=True, **run).stdout
    shot = folder / "report.png"
    subprocess.run([*common, "--window-size=1200,5200", f"--screenshot={shot}", page.as_uri()], **run)
    return {"out": out, "paths": paths, "page": page, "dom": dom, "pixels": read_png(shot)}


def test_the_palette_orders_who_categories_and_gap_ages_and_separates_kinds():
    """The shipped palette itself: a colour for each WHO category the code knows, darker at every step towards
    severe, as is each gap-age bucket towards the oldest; closing reasons (and "opened") clearly apart."""
    who = PALETTE["who_category"]
    assert list(who) == list(WHO_CATEGORIES)
    ramp = [luminance(rgb(who[c])) for c in WHO_CATEGORIES]
    assert all(a > b + 0.05 for a, b in zip(ramp, ramp[1:], strict=False)), ramp
    ages = [luminance(rgb(c)) for c in PALETTE["gap_age"]["colours"]]
    assert len(ages) == len(shipped_toml("reference/report.toml")["gap_age_days"]["upper_bounds"]) + 1
    assert all(a > b + 0.05 for a, b in zip(ages, ages[1:], strict=False)), ages
    reasons = shipped_toml("reference/care_gaps.toml")["lifecycle"]["closing_reasons"]
    assert set(PALETTE["closed_because"]) == set(reasons)
    kinds = [rgb(PALETTE["opened"])] + [rgb(PALETTE["closed_because"][r]) for r in reasons]
    assert min(delta_e(a, b) for i, a in enumerate(kinds) for b in kinds[i + 1 :]) >= 20


def test_each_who_category_is_painted_in_its_palette_colour(rendered):
    """Before: Plotly's default colours (normal blue, osteopenia red, osteoporosis green, severe purple)."""
    segment = chart(rendered["dom"], "who-by-age-sex")
    expected = [(c, rgb(PALETTE["who_category"][c])) for c in WHO_CATEGORIES]
    assert list(reversed(legend(segment))) == expected  # the legend reads as the stack: severe on top
    bars = segment.split('<g class="trace bars"')[1:]  # the stacked traces, normal at the bottom first
    fills = [set(re.findall(r'class="point"><path[^>]*fill: rgb\((\d+), (\d+), (\d+)\)', b)) for b in bars]
    assert [{tuple(int(c) for c in f) for f in found} for found in fills] == [{colour} for _, colour in expected]
    pixels = rendered["pixels"].reshape(-1, 3)
    for category, colour in expected:  # and on the screenshot: each category's colour is on the page
        assert (pixels == colour).all(axis=1).sum() >= 300, f"{category} {colour} is not painted"
    for default in PLOTLY_DEFAULTS:  # no chart keeps Plotly's default colourway
        assert (pixels == rgb(default)).all(axis=1).sum() < 50, f"{default} painted"


def test_gap_ages_are_an_ordered_ramp_and_named_as_since(rendered):
    segment = chart(rendered["dom"], "gaps-by-type-age")
    entries = list(reversed(legend(segment)))  # youngest first
    buckets = shipped_toml("reference/report.toml")["gap_age_days"]["upper_bounds"]
    assert [name for name, _ in entries] == [f"≤ {b} days" for b in buckets] + [f"> {buckets[-1]} days"]
    shades = [luminance(colour) for _, colour in entries]
    assert all(a > b for a, b in zip(shades, shades[1:], strict=False)), shades
    titles = " ".join(texts(segment, "gtitle") + texts(segment, "gtitle-subtitle"))
    assert "since" in titles and "first_seen" in titles  # named, and told apart from time on the list
    on_the_list = " ".join(texts(chart(rendered["dom"], "time-on-list"), "gtitle-subtitle"))
    assert "first_seen" in on_the_list and "since" in on_the_list


def test_the_funnel_states_the_share_of_eligible_patients_untreated(rendered):
    out = rendered["out"]
    patients = pl.read_parquet(out / "patients.parquet")
    untreated_ids = pl.read_parquet(out / "care_gaps.parquet").filter(pl.col("gap") == "untreated_high_risk")
    eligible = patients.filter(pl.col("eligibility") == "eligible")
    untreated = eligible.filter(pl.col("patient_id").is_in(untreated_ids["patient_id"].implode())).height
    assert 0 < untreated < eligible.height
    statement = (
        f"eligible {eligible.height:,} → untreated {untreated:,} ({untreated / eligible.height:.0%} of eligible)"
    )
    segment = chart(rendered["dom"], "eligibility-funnel")
    assert any(statement in title for title in texts(segment, "gtitle")), texts(segment, "gtitle")
    assert f"{untreated:,} ({untreated / eligible.height:.0%} of eligible)" in texts(segment, 'bartext[^"]*')


def test_every_measure_bar_shows_its_n(rendered):
    """Before: bars of the rate alone, a measure of 27 patients weighing as much as one of 3,852. Each bar is
    labelled with its rate and n (above its whisker, so a rate of 0 % shows it too) and so is its axis tick."""
    summary = pl.read_parquet(rendered["out"] / "measure_summary.parquet").sort("measure")
    segment = chart(rendered["dom"], "measure-rates")
    labels = texts(segment, "annotation-text")
    ticks = [" ".join(re.sub(r"<[^>]+>", " ", t).split()) for t in re.findall(r'class="xtick">(.*?)</g>', segment)]
    assert len(labels) == summary.height > 1
    for label, row in zip(labels, summary.iter_rows(named=True), strict=True):
        n = row["denominator"] - row["exclusions"]
        assert label == (f"{row['numerator'] / n:.1%} n = {n:,}" if n else "n/a n = 0")
        assert f"{row['measure']} n = {n:,}" in ticks


def test_closing_reasons_are_distinct_colours_and_the_first_run_does_not_set_the_scale(rendered):
    segment = chart(rendered["dom"], "gaps-opened-closed")
    entries = dict(legend(segment))
    closed = {name: colour for name, colour in entries.items() if name.startswith("closed: ")}
    assert len(closed) >= 2, entries  # the test's runs close gaps for more than one reason
    for name, colour in closed.items():
        assert colour == rgb(PALETTE["closed_because"][name.removeprefix("closed: ")])
        assert delta_e(colour, entries["opened (new)"]) >= 20
    first = read_history(rendered["out"])[0]
    assert f"first run: {first['gaps_opened']:,} opened ↑ (bar cut off)" in texts(segment, "annotation-text")


def test_the_report_shows_no_patient_identifier(rendered):
    page = rendered["page"].read_text(encoding="utf-8")
    ids = {
        pid
        for kind in ("scans", "population")
        for pid in pl.read_csv(rendered["paths"][kind], infer_schema=False)["patient_id"]
    }
    assert ids and not set(ids) & set(re.findall(r"\w+", page))  # no id as a word of the page (plotly.js included)
