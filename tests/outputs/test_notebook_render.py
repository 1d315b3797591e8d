"""Issue 32 item 3: the researcher notebook renders anywhere. Run headless as ``jupyter nbconvert --execute`` runs it,
each chart is one output in three forms: Plotly's JSON (JupyterLab), HTML that shows without a Jupyter front end
(plotly.js embedded; a PNG inside it until then, or for good where no script runs) and a PNG (GitHub, PDF). Age
bands are in order, axes carry real titles, and no series is drawn whose values are all zero: the chart says why
it left one out."""

from __future__ import annotations

import base64
import datetime as dt
import html
import re
import struct
import subprocess
import zlib
from pathlib import Path

import nbformat
import numpy as np
import polars as pl
import pytest
from conftest import CHROMIUM_FLAGS, screen_synthetic, write_synthetic

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "notebooks" / "research_questions.ipynb"
PLOTLY = "application/vnd.plotly.v1+json"
AS_OF = dt.date(2026, 7, 1)
# titles Plotly Express makes up when the notebook gives none
DEFAULT_TITLES = {"", "value", "variable", "index", "count", "sum of value"}
CHART_BOX = re.compile(r'<div class="osteo-chart" id="osteo-chart-[0-9a-f]+">')


def execute(notebook: nbformat.NotebookNode, out: Path, monkeypatch: pytest.MonkeyPatch) -> nbformat.NotebookNode:
    """Run the notebook in a fresh kernel against the output folder ``out``, as nbconvert --execute does."""
    import nbclient

    monkeypatch.setenv("OSTEO_OUT", str(out))
    resources = {"metadata": {"path": str(NOTEBOOK.parent)}}
    nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3", resources=resources).execute()
    errors = [o for cell in notebook.cells for o in cell.get("outputs", []) if o.output_type == "error"]
    assert not errors, errors[0].get("evalue")
    return notebook


def outputs(notebook: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    return [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]


def charts(notebook: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    """Every output that carries a chart in any form."""
    forms = (PLOTLY, "image/png", "image/svg+xml")
    return [o for o in outputs(notebook) if any(form in o.get("data", {}) for form in forms)]


def printed(notebook: nbformat.NotebookNode) -> str:
    return "".join(o.get("text", "") for o in outputs(notebook) if o.output_type == "stream")


def values(array) -> list:
    """A trace's data array as Plotly's JSON holds it: a list, or a typed array ({"dtype", "bdata"})."""
    if array is None:
        return []
    if isinstance(array, dict) and "bdata" in array:
        return np.frombuffer(base64.b64decode(array["bdata"]), dtype=np.dtype(array["dtype"])).tolist()
    return list(array)


def png_pixels(data: bytes) -> tuple[int, int, int]:
    """Width, height and the number of distinct byte values of a PNG's decoded image data (1 or 2: a blank image)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    chunks, at = [], 8
    while at < len(data):
        (length,) = struct.unpack(">I", data[at : at + 4])
        if data[at + 4 : at + 8] == b"IDAT":
            chunks.append(data[at + 8 : at + 8 + length])
        at += 12 + length
    return width, height, len(set(zlib.decompress(b"".join(chunks))))


def axis_title(layout: dict, axis: str) -> str:
    title = layout.get(axis, {}).get("title", {})
    return (title.get("text") if isinstance(title, dict) else title) or ""


def category_order(spec: dict) -> list[str]:
    """The x categories in the order the chart draws them: the axis's category array, else first appearance."""
    present = list(dict.fromkeys(x for trace in spec["data"] for x in values(trace.get("x"))))
    xaxis = spec["layout"].get("xaxis", {})
    if xaxis.get("categoryorder") == "array":
        ordered = [c for c in xaxis.get("categoryarray", []) if c in present]
        return ordered + [c for c in present if c not in ordered]
    if xaxis.get("categoryorder") == "category ascending":
        return sorted(present)
    return present


def band_start(band: str) -> int:
    """'<50' → 0, '50–59' → 50, '80+' → 80."""
    return 0 if band.startswith("<") else int(re.match(r"\d+", band).group())


def who_rank(category: str) -> int:
    """normal → osteopenia → osteoporosis → severe osteoporosis, then none (Z-scores or no usable T-score)."""
    order = ["normal", "osteopenia", "osteoporosis", "severe osteoporosis"]
    name = category.lower().replace("_", " ")
    return order.index(name) if name in order else len(order)


@pytest.fixture(scope="module")
def registry(tmp_path_factory) -> dict[str, Path]:
    """One synthetic registry, screened twice as of AS_OF: ``covered``, with an alendronate fill covering the
    as-of date for every other patient; ``uncovered``, without any drug event in the 800 days before it, so that
    no patient is covered on the as-of date (as in a demo whose last fills end on it)."""
    folder = tmp_path_factory.mktemp("notebook")
    paths = write_synthetic(folder, 300, seed=4, recent_fractures=0.1)
    meds = pl.read_csv(paths["meds"], infer_schema_length=0)
    patients = pl.read_csv(paths["scans"], infer_schema_length=0)["patient_id"].unique().sort()
    fills = pl.DataFrame({"patient_id": patients.gather_every(2)}).with_columns(
        drug=pl.lit("alendronate"),
        event_date=pl.lit(str(AS_OF - dt.timedelta(days=20))),
        days_supply=pl.lit("90"),
        dose_mg=pl.lit(None, pl.Utf8),
    )
    pl.concat([meds, fills.select(meds.columns)]).write_csv(folder / "meds_covered.csv")
    cutoff = str(AS_OF - dt.timedelta(days=800))
    meds.filter(pl.col("event_date") < cutoff).write_csv(folder / "meds_uncovered.csv")
    outs = {}
    for kind in ("covered", "uncovered"):
        outs[kind] = folder / kind
        screen_synthetic(paths | {"meds": folder / f"meds_{kind}.csv"}, outs[kind], str(AS_OF))
    return outs


@pytest.fixture(scope="module")
def executed(registry) -> nbformat.NotebookNode:
    with pytest.MonkeyPatch.context() as monkeypatch:
        return execute(nbformat.read(NOTEBOOK, as_version=4), registry["covered"], monkeypatch)


@pytest.fixture(scope="module")
def page(executed, tmp_path_factory) -> Path:
    """The executed notebook as ``jupyter nbconvert --to html`` writes it."""
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_notebook_node(executed)
    path = tmp_path_factory.mktemp("html") / "research_questions.html"
    path.write_text(body, encoding="utf-8")
    return path


def test_the_committed_notebook_holds_no_output():
    """No result of any screen (counts of real patients included) is committed with the notebook."""
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code and all(not cell.outputs and cell.execution_count is None for cell in code)


def test_every_chart_is_plotly_json_html_and_a_png(executed):
    found = charts(executed)
    assert len(found) == 3, [o.get("data", {}).keys() for o in found]  # one chart per question
    for chart in found:
        data = chart["data"]
        assert {PLOTLY, "text/html", "image/png"} <= set(data), sorted(data)
        png = base64.b64decode(data["image/png"])
        width, height, shades = png_pixels(png)
        assert width >= 600 and height >= 300 and shades > 16, (width, height, shades)  # drawn, not blank
        page = data["text/html"]
        # without a Jupyter front end: plotly.js draws the figure into the box; until then, and where no script
        # runs, the box shows the same PNG
        assert CHART_BOX.search(page) and "Plotly.newPlot" in page
        assert f'<img src="data:image/png;base64,{data["image/png"]}"' in page
        assert "</script>" not in page.split("<script", 1)[1][:-9]  # no figure text closes the script early


def test_the_charts_have_ordered_axes_and_real_titles(executed):
    prevalence, treatment, delays = (chart["data"][PLOTLY] for chart in charts(executed))
    bands = category_order(prevalence)
    assert len(bands) >= 3 and bands == sorted(bands, key=band_start), bands
    categories = category_order(treatment)
    ranks = [who_rank(c) for c in categories]
    assert ranks == sorted(ranks) and len(set(ranks)) == len(ranks), categories
    for spec in (prevalence, treatment, delays):
        layout = spec["layout"]
        titles = [axis_title(layout, "xaxis"), axis_title(layout, "yaxis"), layout["title"]["text"]]
        if len(spec["data"]) > 1:
            titles.append(layout["legend"]["title"]["text"])
        for title in titles:
            assert title.strip().lower() not in DEFAULT_TITLES and "_" not in title, titles


def test_no_chart_draws_an_empty_series(executed):
    for chart in charts(executed):
        spec = chart["data"][PLOTLY]
        for trace in spec["data"]:
            drawn = values(trace.get("y")) if trace["type"] == "bar" else values(trace.get("x"))
            assert any(v not in (None, 0) for v in drawn), (spec["layout"]["title"]["text"], trace.get("name"))
    # the data give both treatment measures here, so both are drawn
    treatment = charts(executed)[1]["data"][PLOTLY]
    assert len(treatment["data"]) == 2, [trace.get("name") for trace in treatment["data"]]


def test_a_series_that_is_all_zero_is_left_out_and_said_so(registry, monkeypatch):
    """Where no eligible patient is covered on the as-of date (the demo's first state), the chart draws only the
    other measure, its subtitle says the first is not drawn, and the text says why (the latest coverage's end)."""
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    question = next(i for i, cell in enumerate(notebook.cells) if "FROM patients p WHERE eligibility" in cell.source)
    setup = [i for i, cell in enumerate(notebook.cells) if re.search(r"^con = |^def show\(", cell.source, re.M)]
    notebook.cells = [notebook.cells[i] for i in [*setup, question]]
    execute(notebook, registry["uncovered"], monkeypatch)
    (chart,) = charts(notebook)
    spec = chart["data"][PLOTLY]
    assert len(spec["data"]) == 1 and "covered" not in spec["data"][0]["name"].lower(), spec["data"]
    assert "not drawn" in spec["layout"]["title"]["subtitle"]["text"]
    text = printed(notebook)
    assert "No eligible patient is covered" in text and f"{AS_OF}" in text and "not drawn" in text


def test_the_html_shows_every_chart_in_headless_chromium(page, chromium, tmp_path):
    """With scripts, Chromium draws each chart with plotly.js (SVG; the PNG taken away, the age bands in order);
    with no script run, each chart's box still holds its PNG."""
    dom = subprocess.run(
        [
            chromium,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={tmp_path / 'profile'}",
            "--virtual-time-budget=15000",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=True,
    ).stdout
    boxes = CHART_BOX.split(dom)[1:]
    assert len(boxes) == 3
    for box in boxes:
        assert 'class="main-svg"' in box and "<img" not in box  # drawn by plotly.js, over the PNG
    ticks = [html.unescape(t) for t in re.findall(r'<g class="xtick"><text[^>]*data-unformatted="([^"]*)"', boxes[0])]
    assert len(ticks) >= 3 and ticks == sorted(ticks, key=band_start), ticks

    static = re.sub(r"<script\b.*?</script>", "", page.read_text(encoding="utf-8"), flags=re.S | re.I)
    boxes = CHART_BOX.split(static)[1:]
    assert len(boxes) == 3
    for box in boxes:
        image = re.match(r'<img [^>]*src="data:image/png;base64,([^"]+)"', box)
        assert image, box[:200]
        assert png_pixels(base64.b64decode(image.group(1)))[2] > 16
