"""``osteo report``: one self-contained HTML file with the charts a quality lead looks at.

Charts are Plotly figures; plotly.js is embedded once, so the file opens with no network. Every chart
is computed with DuckDB over the published catalog (counts only).
"""

from __future__ import annotations

import datetime as dt
import html
import os
from pathlib import Path

import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from osteo_core.errors import InputError
from osteo_core.measures.specs import load_measures
from osteo_core.publish.catalog import query
from osteo_core.publish.folder import CURRENT, MANIFEST, read_history, read_manifest
from osteo_core.resources import shipped_toml

REPORT = "report.html"
CATEGORY_ORDER = ["normal", "osteopenia", "osteoporosis", "severe_osteoporosis"]


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


def _figure_html(fig: go.Figure, chart_id: str) -> str:
    fig.update_layout(template="plotly_white", height=420, margin={"l": 60, "r": 20, "t": 60, "b": 60})
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
    fig = go.Figure()
    for category in CATEGORY_ORDER:
        part = rows.filter(rows["who_category"] == category)
        fig.add_bar(name=category, x=[part["sex"].to_list(), part["band"].to_list()], y=part["exams"].to_list())
    fig.update_layout(
        barmode="stack",
        title="Exams by WHO category, age band and sex",
        xaxis_title="sex / age band",
        yaxis_title="exams",
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


def eligibility_funnel(out: Path, run: Path | None = None) -> go.Figure:
    """Patients screened → eligible on their latest exam → of those, untreated (each stage within the one
    before, so the bars shrink)."""
    counts = query(
        out,
        """
        SELECT count(*) FILTER (WHERE latest_exam_id IS NOT NULL) AS screened,
               count(*) FILTER (WHERE eligibility = 'eligible') AS eligible,
               count(*) FILTER (WHERE eligibility = 'eligible' AND patient_id IN
                   (SELECT patient_id FROM care_gaps WHERE gap = 'untreated_high_risk')) AS untreated
        FROM patients""",
        run=run,
    ).row(0, named=True)
    stages = ["screened", "eligible", "untreated"]
    fig = go.Figure(
        go.Funnel(
            y=["screened (latest exam)", "eligible", "eligible and untreated"],
            x=[counts[s] for s in stages],
            texttemplate="%{value:,d} (%{percentInitial:.0%})",
        )
    )
    fig.update_layout(title="Patients: screened → eligible → untreated (share of screened)")
    return fig


def gaps_by_type_and_age(out: Path, as_of: dt.date, run: Path | None = None) -> go.Figure:
    buckets = shipped_toml("reference/report.toml")["gap_age_days"]["upper_bounds"]
    labels = [f"≤ {b} days" for b in buckets] + [f"> {buckets[-1]} days"]
    case = " ".join(f"WHEN open_days <= {b} THEN '{label}'" for b, label in zip(buckets, labels, strict=False))
    rows = query(
        out,
        f"""
        SELECT gap, CASE {case} ELSE '{labels[-1]}' END AS open_for, count(*) AS gaps
        FROM (SELECT gap, date_diff('day', since, DATE '{as_of.isoformat()}') AS open_days FROM care_gaps)
        GROUP BY ALL ORDER BY ALL""",
        run=run,
    )
    fig = go.Figure()
    for label in labels:
        part = rows.filter(rows["open_for"] == label)
        fig.add_bar(name=label, x=part["gap"].to_list(), y=part["gaps"].to_list())
    fig.update_layout(
        barmode="stack", title="Open care gaps by type and by how long they have been open", yaxis_title="open gaps"
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
    fig = go.Figure()
    for source in sorted(set(rows["input"].to_list())) or ["scans"]:
        part = rows.filter(rows["input"] == source)
        fig.add_bar(name=source, y=part["reason"].to_list(), x=part["rows"].to_list(), orientation="h")
    fig.update_layout(
        barmode="stack", title="Quarantined rows by column and failed check", xaxis_title="rows", yaxis_automargin=True
    )
    return fig


CLOSING_REASONS = tuple(shipped_toml("reference/care_gaps.toml")["lifecycle"]["closing_reasons"])
INPUT_LABELS = {
    "scans": "scans",
    "meds": "medications",
    "fractures": "fractures",
    "population": "population roster",
    "dxa_procedures": "DXA procedures",
}


def _history_label(entry: dict) -> str | None:
    changed = entry.get("inputs_changed")
    if not changed:
        return None
    words = [f"no {INPUT_LABELS[k]}" for k in changed["missing"]] + [f"+ {INPUT_LABELS[k]}" for k in changed["new"]]
    return "inputs changed: " + ", ".join(words)


def _history(out: Path, manifest: dict) -> tuple[list[dict], list[str]]:
    """The published runs (``history.jsonl``; this run alone when there is none) and a label for each: its
    as-of date, numbered when two runs share one."""
    history = read_history(out) or [
        {
            "as_of": manifest["as_of"],
            "care_gaps": manifest.get("care_gaps", {}),
            "gaps_opened": (manifest.get("lifecycle") or {}).get("new"),
            "gaps_closed": (manifest.get("lifecycle") or {}).get("closed"),
        }
    ]
    seen: dict[str, int] = {}
    labels = []
    for entry in history:  # two runs on one as-of date stay two points
        seen[entry["as_of"]] = seen.get(entry["as_of"], 0) + 1
        labels.append(entry["as_of"] + ("" if seen[entry["as_of"]] == 1 else f" (#{seen[entry['as_of']]})"))
    return history, labels


def gaps_over_time(out: Path, manifest: dict) -> go.Figure:
    """Open gaps per published run. One point per run on a category axis (a single run gives a single
    tick, not a time axis in milliseconds); a run whose inputs differ from the run before is marked."""
    history, labels = _history(out, manifest)
    fig = go.Figure()
    for gap in sorted({g for h in history for g in h["care_gaps"]}):
        fig.add_scatter(name=gap, mode="lines+markers", x=labels, y=[h["care_gaps"].get(gap, 0) for h in history])
    for label, entry in zip(labels, history, strict=True):
        note = _history_label(entry)
        if note:
            fig.add_vline(x=label, line_dash="dot", line_color="#b00")
            fig.add_annotation(
                x=label, y=1, yref="paper", text=note, showarrow=False, font_color="#b00", yanchor="bottom"
            )
    fig.update_layout(
        title=f"Open care gaps across the {len(history)} published run(s)",
        xaxis={"title": "as-of date of the run", "type": "category"},
        yaxis_title="open gaps",
    )
    return fig


def gaps_opened_and_closed(out: Path, manifest: dict) -> go.Figure:
    """Per published run: gaps new since the run before (up) and gaps closed, by why (down). Runs published
    before gaps were tracked across runs show nothing."""
    history, labels = _history(out, manifest)
    fig = go.Figure()
    fig.add_bar(name="opened (new)", x=labels, y=[h.get("gaps_opened") for h in history], marker_color="#c0392b")
    reasons = [r for r in CLOSING_REASONS if any((h.get("gaps_closed") or {}).get(r) for h in history)]
    for reason in reasons:
        fig.add_bar(
            name=f"closed: {reason}", x=labels, y=[-(h.get("gaps_closed") or {}).get(reason, 0) for h in history]
        )
    fig.update_layout(
        barmode="relative",
        title="Care gaps opened and closed per published run, by why they closed (closed below zero)",
        xaxis={"title": "as-of date of the run", "type": "category"},
        yaxis_title="gaps",
    )
    return fig


def time_on_the_list(out: Path, as_of: dt.date, run: Path | None = None) -> go.Figure:
    """How long gaps stay on the list: days since first seen for the gaps open now, and days between first
    seen and closing for the gaps this run closed."""
    buckets = shipped_toml("reference/report.toml")["gap_age_days"]["upper_bounds"]
    labels = [f"≤ {b} days" for b in buckets] + [f"> {buckets[-1]} days"]
    fig = go.Figure()
    if "first_seen" not in query(out, "SELECT * FROM care_gaps LIMIT 0", run=run).columns:
        fig.update_layout(title="Time on the list: not known for a run published before gaps had first_seen")
        return fig
    case = " ".join(f"WHEN days <= {b} THEN '{label}'" for b, label in zip(buckets, labels, strict=False))
    rows = query(
        out,
        f"""
        SELECT kind, CASE {case} ELSE '{labels[-1]}' END AS bucket, count(*) AS gaps FROM (
            SELECT 'still open' AS kind, date_diff('day', first_seen, DATE '{as_of.isoformat()}') AS days
            FROM care_gaps
            UNION ALL
            SELECT 'closed by this run', date_diff('day', first_seen, closed_on) FROM closed_gaps)
        GROUP BY ALL""",
        run=run,
    )
    for kind in ("still open", "closed by this run"):
        counts = dict(rows.filter(rows["kind"] == kind).select("bucket", "gaps").iter_rows())
        fig.add_bar(name=kind, x=labels, y=[counts.get(label, 0) for label in labels])
    fig.update_layout(
        barmode="group",
        title="Time on the list: days since a gap was first seen (open) or until it closed",
        xaxis_title="days on the list",
        yaxis_title="gaps",
    )
    return fig


def measures_section(out: Path, manifest: dict, run: Path | None = None) -> str:
    """The quality measures: a table of each measure's counts and rate, and a bar chart of the rates (none
    without a roster: the section says the measures need one)."""
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
    fig = go.Figure(
        go.Bar(x=rates.get_column("measure").to_list(), y=[(r or 0) * 100 for r in rates.get_column("rate")])
    )
    fig.update_layout(title="Quality measure rates (%)", yaxis={"range": [0, 100], "title": "rate, %"})
    start, end = entry["period"]
    open_counts = [f"{r['measure']} {r.get('open_windows', 0):,}" for r in entry["results"]]
    still = "still open: " + ", ".join(open_counts)
    return f"""<section id="measures"><h2>Quality measures, measurement year {entry["measurement_year"]}</h2>
<p class="note">Period {start} to {end}; rate = numerator / (denominator − exclusions). A window still open on the
as-of date counts as not met yet ({html.escape(still)}). Patients: the measure_members table.</p>
<table><thead><tr><th>measure</th><th>name</th><th>version</th><th>denominator</th><th>exclusions</th>
<th>numerator</th><th>rate</th></tr></thead><tbody>{"".join(cells)}</tbody></table>
<div class="chart">{_figure_html(fig, "measure-rates")}</div></section>"""


def write_report(out: Path) -> Path:
    link = out / CURRENT
    if not (link / MANIFEST).exists():
        raise InputError(str(out), "no published screen here (run osteo screen first)")
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
    body = "\n".join(f'<section class="chart">{_figure_html(fig, cid)}</section>' for cid, fig in charts.items())
    rows = manifest["rows"]
    advice = shipped_toml("reference/report.toml")["universal_advice"]["text"]
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>osteo-screen report {html.escape(manifest["as_of"])}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2rem;max-width:1100px}} .chart{{margin:1.5rem 0}}
p.note{{color:#555}} table{{border-collapse:collapse}} td,th{{padding:.2rem .6rem;text-align:left}}</style>
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
