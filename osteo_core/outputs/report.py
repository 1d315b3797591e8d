"""``osteo report``: one self-contained HTML file with the charts a quality lead looks at.

Charts are Plotly figures; plotly.js is embedded once, so the file opens with no network. Every chart
is computed with DuckDB over the published catalog (counts only). Every colour comes from one palette,
``[palette]`` of data/reference/report.toml (``palette()``).
"""

from __future__ import annotations

import datetime as dt
import html
import math
import os
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import plotly.graph_objects as go
from plotly.offline import get_plotlyjs
from plotly.subplots import make_subplots

from osteo_core.decide.rules import WHO_CATEGORIES
from osteo_core.measures.specs import load_measures
from osteo_core.publish.catalog import query
from osteo_core.publish.folder import CURRENT, MANIFEST, no_screen_here, read_history, read_manifest
from osteo_core.resources import shipped_toml
from schemas.gaps import UNTREATED_HIGH_RISK
from schemas.inputs import called

REPORT = "report.html"
CATEGORY_ORDER = list(WHO_CATEGORIES)  # normal → severe_osteoporosis: the order of every WHO legend and stack
CLOSING_REASONS = tuple(shipped_toml("reference/care_gaps.toml")["lifecycle"]["closing_reasons"])
GAP_ORDER = sorted(shipped_toml("reference/care_gaps.toml")["priority"].items(), key=lambda item: item[1])
GAP_TYPES = [gap for gap, _ in GAP_ORDER]  # by priority, as the worklist orders them
SINCE = "gap age: days since the gap's condition began (since)"
ON_THE_LIST = "days on the worklist: since the first run that listed the gap (first_seen)"


@dataclass(frozen=True)
class Palette:
    """The report's colours (``[palette]`` of report.toml): ordered ramps for ordered things, hues for kinds."""

    who: dict[str, str]  # WHO category → colour, normal → severe_osteoporosis
    gap_age: tuple[str, ...]  # one per gap-age bucket, youngest first
    closed_because: dict[str, str]  # closing reason → colour
    inputs: dict[str, str]  # quarantined input → colour
    accent: str
    opened: str
    still_open: str
    closed: str
    other: str


def _colour(value: object, where: str) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"#[0-9A-Fa-f]{6}", value):
        raise ValueError(f"report.toml [{where}]: {value!r} is not a colour #RRGGBB")
    return value.upper()


def _named(table: dict, names: tuple[str, ...] | list[str], where: str) -> dict[str, str]:
    """``table`` names each of ``names`` once, nothing else (a WHO category or closing reason added to the code
    without a colour here fails the report, rather than drawing in Plotly's default colours)."""
    if set(table) != set(names):
        raise ValueError(f"report.toml [{where}] must give a colour to each of {', '.join(names)}, and only those")
    return {name: _colour(table[name], f"{where}.{name}") for name in names}


@cache
def palette() -> Palette:
    spec = shipped_toml("reference/report.toml")
    colours = spec["palette"]
    ramp = tuple(_colour(c, "palette.gap_age") for c in colours["gap_age"]["colours"])
    if len(ramp) != len(spec["gap_age_days"]["upper_bounds"]) + 1:
        raise ValueError("report.toml [palette.gap_age]: one colour per [gap_age_days] bucket")
    return Palette(
        who=_named(colours["who_category"], CATEGORY_ORDER, "palette.who_category"),
        gap_age=ramp,
        closed_because=_named(colours["closed_because"], CLOSING_REASONS, "palette.closed_because"),
        inputs={k: _colour(v, f"palette.input.{k}") for k, v in colours["input"].items()},
        **{
            key: _colour(colours[key], f"palette.{key}")
            for key in ("accent", "opened", "still_open", "closed", "other")
        },
    )


def _gap_age_labels() -> list[str]:
    buckets = shipped_toml("reference/report.toml")["gap_age_days"]["upper_bounds"]
    return [f"≤ {b} days" for b in buckets] + [f"> {buckets[-1]} days"]


def _bucket_sql(column: str) -> str:
    buckets = shipped_toml("reference/report.toml")["gap_age_days"]["upper_bounds"]
    labels = _gap_age_labels()
    cases = " ".join(f"WHEN {column} <= {b} THEN '{label}'" for b, label in zip(buckets, labels, strict=False))
    return f"CASE {cases} ELSE '{labels[-1]}' END"


def _share(part: int, whole: int) -> str:
    return f"{part / whole:.0%}" if whole else "n/a"


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The 95 % Wilson score interval of a rate ``successes / n`` (0 to 1 when ``n`` is 0)."""
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def _age_bands() -> list[tuple[int, int | None]]:
    bands = shipped_toml("reference/report.toml")["age_bands"]["lower_bounds"]
    return [(low, high - 1) for low, high in zip(bands, bands[1:], strict=False)] + [(bands[-1], None)]


def _band_sql(column: str) -> str:
    cases = []
    for low, high in _age_bands():
        if high is None:
            cases.append(f"WHEN {column} >= {low} THEN '{low}+'")
        else:
            cases.append(f"WHEN {column} BETWEEN {low} AND {high} THEN '{low}-{high}'")
    return f"CASE {' '.join(cases)} ELSE 'other' END"


def _title(text: str, subtitle: str | None = None) -> dict:
    return {"text": text, "subtitle": {"text": subtitle or ""}}


def _figure_html(fig: go.Figure, chart_id: str) -> str:
    top = fig.layout.margin.t or (100 if fig.layout.title.subtitle.text else 60)
    fig.update_layout(
        template="plotly_white",
        height=fig.layout.height or 420,
        margin={"l": 60, "r": 20, "t": top, "b": 60},
        title_font_size=17,
    )
    return fig.to_html(full_html=False, include_plotlyjs=False, div_id=chart_id)


def who_by_age_and_sex(out: Path, run: Path | None = None) -> go.Figure:
    rows = query(
        out,
        f"""
        SELECT sex, {_band_sql("age_years")} AS band, who_category, count(*) AS exams
        FROM screening WHERE who_category IS NOT NULL GROUP BY ALL ORDER BY ALL""",
        run=run,
    )
    left_out = query(out, "SELECT count(*) AS n FROM screening WHERE who_category IS NULL", run=run).item()
    colours = palette().who
    fig = go.Figure()
    for category in CATEGORY_ORDER:  # stacked normal (bottom) → severe (top), light → dark
        part = rows.filter(rows["who_category"] == category)
        fig.add_bar(
            name=category,
            x=[part["sex"].to_list(), part["band"].to_list()],
            y=part["exams"].to_list(),
            marker_color=colours[category],
        )
    fig.update_layout(
        barmode="stack",
        title="Exams by WHO category, age band and sex",
        xaxis={"title": "sex / age band", "categoryorder": "category ascending"},
        yaxis_title="exams",
        legend={"title": {"text": "WHO category"}, "traceorder": "reversed"},  # as stacked: severe on top
    )
    if left_out:
        fig.add_annotation(
            text=f"{left_out:,} exam(s) without a WHO category are not shown: judged on Z-scores (younger men,"
            " premenopausal women) or with no usable T-score",
            xref="paper",
            yref="paper",
            x=0,
            y=1.08,
            showarrow=False,
            xanchor="left",
            font={"size": 12, "color": "#555"},
        )
    return fig


def _funnel_counts(out: Path, run: Path | None) -> dict[str, int]:
    return query(
        out,
        f"""
        SELECT count(*) FILTER (WHERE latest_exam_id IS NOT NULL) AS screened,
               count(*) FILTER (WHERE eligibility = 'eligible') AS eligible,
               count(*) FILTER (WHERE eligibility = 'eligible' AND patient_id IN
                   (SELECT patient_id FROM care_gaps WHERE gap = '{UNTREATED_HIGH_RISK.name}')) AS untreated
        FROM patients""",
        run=run,
    ).row(0, named=True)


def untreated_share(counts: dict[str, int]) -> str:
    """The funnel's headline: the share of eligible patients untreated, with both counts."""
    eligible, untreated = counts["eligible"], counts["untreated"]
    return f"eligible {eligible:,} → untreated {untreated:,} ({_share(untreated, eligible)} of eligible)"


def eligibility_funnel(out: Path, run: Path | None = None) -> go.Figure:
    """Patients screened → eligible on their latest exam → of those, untreated (each stage within the one
    before, so the bars shrink); each stage's share is of the stage before, and the title states the share of
    eligible patients untreated."""
    counts = _funnel_counts(out, run)
    screened, eligible, untreated = counts["screened"], counts["eligible"], counts["untreated"]
    fig = go.Figure(
        go.Funnel(
            y=["screened (latest exam)", "eligible", "eligible and untreated"],
            x=[screened, eligible, untreated],
            text=[
                f"{screened:,} screened",
                f"{eligible:,} ({_share(eligible, screened)} of screened)",
                f"{untreated:,} ({_share(untreated, eligible)} of eligible)",
            ],
            textinfo="text",
            hovertemplate="%{y}: %{text}<extra></extra>",
            marker_color=palette().accent,
            connector={"fillcolor": "#E3ECF4"},
        )
    )
    fig.update_layout(
        title=_title(
            f"Untreated: {untreated_share(counts)}",
            "Patients screened (latest exam) → eligible for treatment on it → of those, with an"
            f" {UNTREATED_HIGH_RISK.name} gap open; each share is of the stage before",
        )
    )
    return fig


def gaps_by_type_and_age(out: Path, as_of: dt.date, run: Path | None = None) -> go.Figure:
    """Open gaps by type (in priority order) and gap age: days since the gap's ``since`` (its condition
    began), in an ordered ramp from recent (light) to old (dark)."""
    labels = _gap_age_labels()
    rows = query(
        out,
        f"""
        SELECT gap, {_bucket_sql("open_days")} AS open_for, count(*) AS gaps
        FROM (SELECT gap, date_diff('day', since, DATE '{as_of.isoformat()}') AS open_days FROM care_gaps)
        GROUP BY ALL ORDER BY ALL""",
        run=run,
    )
    found = set(rows["gap"].to_list())
    gaps = [g for g in GAP_TYPES if g in found] + sorted(found - set(GAP_TYPES))
    fig = go.Figure()
    for label, colour in zip(labels, palette().gap_age, strict=True):
        counts = dict(rows.filter(rows["open_for"] == label).select("gap", "gaps").iter_rows())
        fig.add_bar(name=label, x=gaps, y=[counts.get(g, 0) for g in gaps], marker_color=colour)
    fig.update_layout(
        barmode="stack",
        title=_title(
            "Open care gaps by type and gap age (since)",
            "Gap age: days since the gap's condition began (since: the exam, fracture, lapse or due date behind"
            " it),<br>not how long it has been on the worklist (first_seen: see “Days on the worklist” below)",
        ),
        xaxis_title="care gap, by priority",
        yaxis_title="open gaps",
        legend={"title": {"text": "gap age (since)"}, "traceorder": "reversed"},
    )
    return fig


def quarantine_reasons(out: Path, run: Path | None = None) -> go.Figure:
    rows = query(
        out,
        """SELECT input, coalesce("column", '(whole row)') || ': ' || "check" AS reason,
                  count(DISTINCT (source_file, source_row)) AS rows
           FROM quarantine GROUP BY ALL ORDER BY rows DESC, reason""",
        run=run,
    )
    colours = palette()
    fig = go.Figure()
    for source in sorted(set(rows["input"].to_list())) or ["scans"]:
        part = rows.filter(rows["input"] == source)
        fig.add_bar(
            name=source,
            y=part["reason"].to_list(),
            x=part["rows"].to_list(),
            orientation="h",
            marker_color=colours.inputs.get(source, colours.other),
        )
    fig.update_layout(
        barmode="stack",
        title="Quarantined rows by column and failed check",
        xaxis_title="rows",
        yaxis_automargin=True,
        legend={"title": {"text": "input"}},
    )
    return fig


def _input_change(entry: dict) -> str | None:
    """How a run's inputs differ from the run before's ("no medications, + population roster"), if they do."""
    changed = entry.get("inputs_changed")
    if not changed:
        return None
    words = [f"no {called(k)}" for k in changed["missing"]] + [f"+ {called(k)}" for k in changed["new"]]
    return ", ".join(words)


def _history(out: Path, manifest: dict) -> tuple[list[dict], list[str]]:
    """The published runs (``history.jsonl``; this run alone when there is none) and a label for each: its
    as-of date, numbered when two runs share one. Each entry's ``first`` says whether the run started the
    list: no run published before it has an earlier as-of date, so it was compared with none and every gap it
    had open counts as new (a re-run of the first week too: pipeline/gap_history.py)."""
    history = read_history(out)
    if history:
        history = [
            {**entry, "first": not any(before["as_of"] < entry["as_of"] for before in history[:i])}
            for i, entry in enumerate(history)
        ]
    else:
        lifecycle = manifest.get("lifecycle") or {}
        history = [
            {
                "as_of": manifest["as_of"],
                "care_gaps": manifest.get("care_gaps", {}),
                "gaps_opened": lifecycle.get("new"),
                "gaps_closed": lifecycle.get("closed"),
                "first": bool(lifecycle) and lifecycle.get("base_run_id") is None,
            }
        ]
    seen: dict[str, int] = {}
    labels = []
    for entry in history:  # two runs on one as-of date stay two points
        seen[entry["as_of"]] = seen.get(entry["as_of"], 0) + 1
        labels.append(entry["as_of"] + ("" if seen[entry["as_of"]] == 1 else f" (#{seen[entry['as_of']]})"))
    return history, labels


def gaps_over_time(out: Path, manifest: dict) -> go.Figure:
    """Open gaps per published run, one panel per gap type with its own scale (on one axis, a gap type of
    hundreds lies flat at zero beside one of thousands). One point per run on a category axis (a single run
    gives a single tick, not a time axis in milliseconds); a run whose inputs differ from the run before is
    marked with a dotted line and named in the subtitle."""
    history, labels = _history(out, manifest)
    present = {g for h in history for g in h["care_gaps"]}
    gaps = [g for g in GAP_TYPES if g in present] + sorted(present - set(GAP_TYPES))
    title = f"Open care gaps across the {len(history)} published run(s)"
    if not gaps:
        fig = go.Figure()
        fig.update_layout(title=title + ": no gap open in any run", xaxis={"type": "category"})
        return fig
    columns = min(3, len(gaps))
    rows = math.ceil(len(gaps) / columns)
    fig = make_subplots(
        rows=rows, cols=columns, subplot_titles=gaps, vertical_spacing=0.3 / rows, horizontal_spacing=0.08
    )
    for i, gap in enumerate(gaps):
        fig.add_scatter(
            name=gap,
            mode="lines+markers",
            x=labels,
            y=[h["care_gaps"].get(gap, 0) for h in history],
            line_color=palette().accent,
            showlegend=False,
            hovertemplate=f"{gap}<br>%{{x}}: %{{y:,d}} open<extra></extra>",
            row=i // columns + 1,
            col=i % columns + 1,
        )
    fig.update_xaxes(type="category")
    fig.update_yaxes(rangemode="tozero", tickformat="~s")
    changes = [(label, note) for label, entry in zip(labels, history, strict=True) if (note := _input_change(entry))]
    for label, _ in changes:
        fig.add_vline(x=label, line_dash="dot", line_color="#b00", row="all", col="all")
    marked = "; ".join(f"{label}: {note}" for label, note in changes)
    fig.update_layout(
        title=_title(
            title + ", one panel per gap type, each on its own scale (from zero)",
            f"Dotted red line: a run whose inputs changed ({marked})"
            if changes
            else "Compare a panel's trend, not its height with another panel's: each has its own scale",
        ),
        height=150 + 240 * rows,
        margin={"t": 130},
    )
    return fig


def gaps_opened_and_closed(out: Path, manifest: dict) -> go.Figure:
    """Per published run: gaps new since the run before (up) and gaps closed, by why (down). Runs published
    before gaps were tracked across runs show nothing. The first run lists every open gap as new: when that
    would dwarf the later runs, the axis is scaled to the later runs: the first run's bar runs off the top, its
    count written on it."""
    history, labels = _history(out, manifest)
    colours = palette()
    opened = [h.get("gaps_opened") for h in history]
    fig = go.Figure()
    fig.add_bar(
        name="opened (new)",
        x=labels,
        y=opened,
        marker_color=colours.opened,
    )
    reasons = [r for r in CLOSING_REASONS if any((h.get("gaps_closed") or {}).get(r) for h in history)]
    for reason in reasons:
        fig.add_bar(
            name=f"closed: {reason}",
            x=labels,
            y=[-(h.get("gaps_closed") or {}).get(reason, 0) for h in history],
            marker_color=colours.closed_because[reason],
        )
    later = [i for i, h in enumerate(history) if not h["first"]]
    top = max((opened[i] or 0 for i in later), default=0)
    bottom = max((sum((history[i].get("gaps_closed") or {}).values()) for i in later), default=0)
    cut = [i for i, h in enumerate(history) if h["first"] and later and (opened[i] or 0) > 1.5 * max(top, bottom, 1)]
    subtitle = "Opened (new since the run before) above zero; closed below, by why they closed"
    if cut:
        high = max(top, bottom, 1) * 1.6
        fig.update_yaxes(range=[-max(bottom, 1) * 1.15, high])
        for i in cut:
            fig.add_annotation(
                x=labels[i],
                y=high,
                yanchor="top",
                text=f"first run: {opened[i]:,} opened ↑<br>(bar cut off)",
                showarrow=False,
                bgcolor="rgba(255,255,255,0.85)",
                font={"size": 12},
            )
        subtitle += ";<br>the first run lists every open gap as new: its bar is cut off at the scale of the later runs"
    elif not later and history[0]["first"]:
        subtitle += ";<br>one run so far: a first run lists every open gap as new, and gaps close from the next run on"
    fig.update_layout(
        barmode="relative",
        title=_title("Care gaps opened and closed per published run", subtitle),
        xaxis={"title": "as-of date of the run", "type": "category"},
        yaxis_title="gaps",
    )
    return fig


def time_on_the_list(out: Path, as_of: dt.date, run: Path | None = None) -> go.Figure:
    """How long gaps stay on the worklist: days since ``first_seen`` (the first run that listed the gap) for
    the gaps open now, and days between first seen and closing for the gaps this run closed. Not the gap's
    age (``since``): a first run lists every gap on its own as-of date, however old."""
    labels = _gap_age_labels()
    colours = palette()
    fig = go.Figure()
    if "first_seen" not in query(out, "SELECT * FROM care_gaps LIMIT 0", run=run).columns:
        fig.update_layout(title="Days on the worklist: not known for a run published before gaps had first_seen")
        return fig
    rows = query(
        out,
        f"""
        SELECT kind, {_bucket_sql("days")} AS bucket, count(*) AS gaps FROM (
            SELECT 'still open' AS kind, date_diff('day', first_seen, DATE '{as_of.isoformat()}') AS days
            FROM care_gaps
            UNION ALL
            SELECT 'closed by this run', date_diff('day', first_seen, closed_on) FROM closed_gaps)
        GROUP BY ALL""",
        run=run,
    )
    for kind, colour in (("still open", colours.still_open), ("closed by this run", colours.closed)):
        counts = dict(rows.filter(rows["kind"] == kind).select("bucket", "gaps").iter_rows())
        fig.add_bar(name=kind, x=labels, y=[counts.get(label, 0) for label in labels], marker_color=colour)
    fig.update_layout(
        barmode="group",
        title=_title(
            "Days on the worklist (first_seen)",
            "Days since the first run that listed the gap (first_seen) to the as-of date, or to the run that closed"
            " it;<br>not the gap's age (since, above): a first screen lists every gap on its own date, however old",
        ),
        xaxis_title="days on the worklist, from first_seen",
        yaxis_title="gaps",
    )
    return fig


def measure_rates(rates) -> go.Figure:  # noqa: ANN001 - a measure_summary frame
    """Each measure's rate with its n (denominator − exclusions) on the bar and the axis, and a 95 % Wilson
    interval, so a measure of 27 patients is visibly less certain than one of 3,852."""
    labels, values, texts, low, high, hover, tops = [], [], [], [], [], [], []
    for r in rates.iter_rows(named=True):
        n = r["denominator"] - r["exclusions"]
        labels.append(f"{r['measure']}<br>n = {n:,}")
        rate = r["rate"]
        if rate is None:
            values.append(None)
            texts.append(f"n/a<br>n = {n:,}")
            low.append(0)
            high.append(0)
            tops.append(0)
            hover.append(f"{r['measure']}: no rate (n = {n:,})")
            continue
        lo, hi = wilson_interval(r["numerator"], n)
        values.append(rate * 100)
        texts.append(f"{rate:.1%}<br>n = {n:,}")
        low.append((rate - lo) * 100)
        high.append((hi - rate) * 100)
        tops.append(hi * 100)
        hover.append(f"{r['measure']}: {rate:.1%} = {r['numerator']:,} / {n:,}<br>95% interval {lo:.1%} to {hi:.1%}")
    fig = go.Figure(
        go.Bar(
            x=labels,
            y=values,
            marker_color=palette().accent,
            error_y={"type": "data", "array": high, "arrayminus": low, "color": "#333", "thickness": 1.5},
            hovertext=hover,
            hoverinfo="text",
        )
    )
    for label, text, top in zip(labels, texts, tops, strict=True):  # above the whisker: shown even at 0 %
        fig.add_annotation(x=label, y=top, text=text, yanchor="bottom", showarrow=False, font={"size": 12})
    fig.update_layout(
        title=_title(
            "Quality measure rates (%), with n",
            "n = denominator − exclusions, the patients the rate is of; whiskers: 95% interval (Wilson), wide when"
            " n is small",
        ),
        yaxis={"range": [0, 118], "title": "rate, %", "tickvals": [0, 20, 40, 60, 80, 100]},
        xaxis_title="measure",
    )
    return fig


def measures_section(out: Path, manifest: dict, run: Path | None = None) -> str:
    """The quality measures: a table of each measure's counts and rate, and a bar chart of the rates with their
    n (none without a roster: the section says the measures need one)."""
    entry = manifest.get("measures")
    if not entry:
        return (
            '<section id="measures"><h2>Quality measures</h2><p class="note">Not computed: the run had no population'
            " roster (osteo screen … --population PATH).</p></section>"
        )
    rates = query(out, "SELECT * FROM measure_summary ORDER BY measure", run=run)
    names = {spec.id: spec.name for spec in load_measures()}
    cells = []
    for r in rates.iter_rows(named=True):
        rate = f"{r['rate']:.1%}" if r["rate"] is not None else "n/a"
        cells.append(
            f"<tr><td>{html.escape(r['measure'])}</td><td>{html.escape(names.get(r['measure'], ''))}</td>"
            f"<td>{html.escape(r['version'])}</td><td>{r['denominator']:,}</td><td>{r['exclusions']:,}</td>"
            f"<td>{r['numerator']:,}</td><td>{rate}</td></tr>"
        )
    start, end = entry["period"]
    open_counts = [f"{r['measure']} {r.get('open_windows', 0):,}" for r in entry["results"]]
    still = "still open: " + ", ".join(open_counts)
    return f"""<section id="measures"><h2>Quality measures, measurement year {entry["measurement_year"]}</h2>
<p class="note">Period {start} to {end}; rate = numerator / (denominator − exclusions). A window still open on the
as-of date counts as not met yet ({html.escape(still)}). Patients: the measure_members table.</p>
<table><thead><tr><th>measure</th><th>name</th><th>version</th><th>denominator</th><th>exclusions</th>
<th>numerator</th><th>rate</th></tr></thead><tbody>{"".join(cells)}</tbody></table>
<div class="chart">{_figure_html(measure_rates(rates), "measure-rates")}</div></section>"""


CAPTIONS = {
    "gaps-by-type-age": f"<b>{SINCE.capitalize()}</b>: how long the patient has needed the care. "
    f"<b>{ON_THE_LIST.capitalize()}</b>: how long the list has shown it. A first screen lists every gap on its"
    " own date, however old, so the two differ until the list has run for a while.",
    "gaps-over-time": "One panel per gap type, each on its own scale from zero, so a type of a few hundred gaps is"
    " not a flat line under one of thousands.",
    "gaps-opened-closed": "A first run has no run before it: every gap open then counts as opened. When that"
    " would dwarf the later runs, the axis is scaled to them and the first run's bar is cut off, its count"
    " written on it.",
    "time-on-list": f"<b>{ON_THE_LIST.capitalize()}</b>; compare the <b>{SINCE}</b>, above.",
}


def write_report(out: Path) -> Path:
    link = out / CURRENT
    if not (link / MANIFEST).exists():
        raise no_screen_here(out)
    run = link.resolve()  # once: every chart and the manifest come from this run, even if another is published
    manifest = read_manifest(run)
    as_of = dt.date.fromisoformat(manifest["as_of"])
    charts = {
        "who-by-age-sex": who_by_age_and_sex(out, run),
        "eligibility-funnel": eligibility_funnel(out, run),
        "gaps-by-type-age": gaps_by_type_and_age(out, as_of, run),
        "quarantine-reasons": quarantine_reasons(out, run),
        "gaps-over-time": gaps_over_time(out, manifest),
        "gaps-opened-closed": gaps_opened_and_closed(out, manifest),
        "time-on-list": time_on_the_list(out, as_of, run),
    }
    body = "\n".join(
        f'<section class="chart">{_figure_html(fig, cid)}'
        + (f'<p class="caption">{CAPTIONS[cid]}</p>' if cid in CAPTIONS else "")
        + "</section>"
        for cid, fig in charts.items()
    )
    rows = manifest["rows"]
    advice = shipped_toml("reference/report.toml")["universal_advice"]["text"]
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>osteo-screen report {html.escape(manifest["as_of"])}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2rem;max-width:1100px}} .chart{{margin:1.5rem 0}}
p.note{{color:#555}} p.caption{{color:#444;font-size:.9rem;margin:.2rem 60px 0}} table{{border-collapse:collapse}}
td,th{{padding:.2rem .6rem;text-align:left}}</style>
<script type="text/javascript">{get_plotlyjs()}</script></head>
<body><h1>Osteoporosis screen — as of {html.escape(manifest["as_of"])}</h1>
<p>Rule set <b>{html.escape(manifest["rule_set"]["name"])}@{html.escape(manifest["rule_set"]["version"])}</b>,
run {html.escape(manifest["run_id"])}. Scan rows: {rows["rows_in"]:,} in = {rows["valid"]:,} valid +
{rows["quarantined"]:,} quarantined + {rows["duplicate"]:,} duplicate.</p>
<p class="note">Everyone also gets the universal advice: {html.escape(advice)}
Counts only; no patient identifiers in this file.</p>
{body}
{measures_section(out, manifest, run)}
</body></html>
"""
    target = out / REPORT
    tmp = target.with_suffix(".html.tmp")
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, target)
    return target
