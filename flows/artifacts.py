"""Prefect artifacts of a run: a markdown summary and a table of counts. Counts only, never patient
identifiers, so nothing identifying reaches Prefect's database. Every name shown (a file, a profile or rule set a
user wrote, a category) is escaped (``md``): Prefect's UI renders the Markdown, and a name is text, never markup."""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

from prefect.artifacts import create_markdown_artifact, create_table_artifact

from osteo_core.terminal_text import escape_controls

NO_CATEGORY = "no T-score category"  # exams screened on Z-scores, or with no usable T-score
# Markdown's inline punctuation (a name never starts a line, so - + and digits cannot make a list), and an
# underscore not between two letters or digits (inside a word it is text already: untreated_high_risk renders as
# written, _name_ would be emphasis)
_MARKDOWN = re.compile(r"([\\`*{}\[\]()#!|~>]|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9]))")


def md(name: object) -> str:
    """``name`` as Markdown text that renders as itself: control characters escaped, HTML's ``< > & "``
    written as entities, and Markdown's punctuation backslash-escaped (``<script>`` shows, never runs)."""
    return _MARKDOWN.sub(r"\\\1", html.escape(escape_controls(str(name)), quote=True))


def _plain_label(name: str) -> str:
    """A category's name as data (the table artifact's rows: JSON, not Markdown)."""
    return NO_CATEGORY if name in ("None", "null", "") else name


def _label(name: str) -> str:
    return md(_plain_label(name))


def summary_markdown(manifest: dict[str, Any]) -> str:
    rows = manifest["rows"]
    rule_set = f"{md(manifest['rule_set']['name'])}@{md(manifest['rule_set']['version'])}"
    lines = [
        f"# Screen {md(manifest['run_id'])}",
        "",
        f"As of **{md(manifest['as_of'])}**, rule set **{rule_set}**, profile {md(manifest['profile'])}, "
        f"{manifest['partitions']} partition(s), status **{md(manifest['status'])}**.",
        "",
        "## Inputs",
        "",
        "| input | file | rows |",
        "|---|---|---|",
        *(f"| {md(i['input'])} | {md(Path(i['path']).name)} | {i['rows']:,} |" for i in manifest["inputs"]),
        "",
        "## Rows",
        "",
        "| input | in | valid | quarantined | duplicate |",
        "|---|---|---|---|---|",
        *(
            f"| {md(kind)} | {c['rows_in']:,} | {c['valid']:,} | {c['quarantined']:,} | {c['duplicate']:,} |"
            for kind, c in manifest["rows_by_input"].items()
        ),
        "",
        f"Scan reject rate {manifest['reject_rate']:.2%} (limit {manifest['max_reject_rate']:.2%}); "
        f"scan rows in = valid + quarantined + duplicate: {rows['rows_in']:,} = {rows['valid']:,} + "
        f"{rows['quarantined']:,} + {rows['duplicate']:,}.",
        "",
    ]
    for title, key in (
        ("Exams per WHO category", "who_categories"),
        ("Exams per eligibility", "eligibility"),
        ("Open care gaps", "care_gaps"),
    ):
        lines += [f"## {title}", "", "| value | count |", "|---|---|"]
        lines += [f"| {_label(name)} | {n:,} |" for name, n in manifest.get(key, {}).items()]
        lines.append("")
    lines += measure_markdown(manifest)
    return "\n".join(lines)


def measure_markdown(manifest: dict[str, Any]) -> list[str]:
    """The quality measures' rates (counts only), when the run had a roster."""
    entry = manifest.get("measures")
    if not entry:
        return []
    lines = [
        f"## Quality measures, measurement year {md(entry['measurement_year'])}",
        "",
        "| measure | version | denominator | exclusions | numerator | rate | windows still open |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in entry["results"]:
        rate = f"{r['rate']:.1%}" if r["rate"] is not None else "n/a"
        lines.append(
            f"| {md(r['measure'])} | {md(r['version'])} | {r['denominator']:,} | {r['exclusions']:,} "
            f"| {r['numerator']:,} | {rate} | {r['open_windows']:,} |"
        )
    return [*lines, ""]


def count_rows(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    rows = [
        {"measure": f"rows_{kind}_{k}", "count": v}
        for kind, c in manifest["rows_by_input"].items()
        for k, v in c.items()
    ]
    for key in ("who_categories", "eligibility", "care_gaps"):
        rows += [{"measure": f"{key}:{_plain_label(name)}", "count": n} for name, n in manifest.get(key, {}).items()]
    for r in (manifest.get("measures") or {}).get("results", []):
        rows += [{"measure": f"measure:{r['measure']}:{k}", "count": r[k]} for k in MEASURE_COUNTS]
    return rows


MEASURE_COUNTS = ("denominator", "exclusions", "numerator", "open_windows")  # the rate: the markdown artifact


def publish_artifacts(manifest: dict[str, Any]) -> None:
    rule_set = f"{md(manifest['rule_set']['name'])}@{md(manifest['rule_set']['version'])}"
    about = f"as of {md(manifest['as_of'])}, rule set {rule_set}"
    create_markdown_artifact(
        summary_markdown(manifest),
        key="screen-summary",
        description=f"osteo-screen run {md(manifest['run_id'])} ({about}): inputs, row accounting, categories, gaps,"
        " measures",
    )
    create_table_artifact(
        count_rows(manifest),
        key="screen-counts",
        description=f"osteo-screen run {md(manifest['run_id'])} ({about}): row, category, gap and measure counts",
    )
