"""A run's manifest on the terminal after a screen: the summary (rows, WHO categories, open gaps, lifecycle,
quality measures), notes on what was read differently from a plain file, and the warnings of a run given other
kinds of input than the last published one."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from schemas.inputs import FRACTURES, INPUT_KINDS, SCANS, called


def print_summary(manifest: dict, out: Path, seconds: float) -> None:
    rows = manifest["rows"]
    print(
        f"run {manifest['run_id']}  as of {manifest['as_of']}  rules {manifest['rule_set']['name']}@"
        f"{manifest['rule_set']['version']}  profile {manifest['profile']}"
    )
    print(
        f"{SCANS.row} rows: {rows['rows_in']:,} in = {rows['valid']:,} valid + {rows['quarantined']:,} quarantined"
        f" + {rows['duplicate']:,} duplicate"
    )
    categories = manifest.get("who_categories", {})
    if categories:
        print(
            "exams by WHO category: "
            + ", ".join(f"{('no T-score category' if k == 'None' else k)} {v:,}" for k, v in categories.items())
        )
    gaps = manifest.get("care_gaps", {})
    if gaps:
        print("open care gaps: " + ", ".join(f"{k} {v:,}" for k, v in gaps.items()))
    for line in lifecycle_lines(manifest):
        print(line)
    for line in measure_lines(manifest):
        print(line)
    for line in input_notes(manifest):
        print(line)
    print(f'outputs: {out.resolve()}  (osteo sql --out {out} "SELECT ...")  in {seconds:.1f} s')


def lifecycle_lines(manifest: dict) -> list[str]:
    """Gaps against the run this one was compared with: new, persisting, closed by why (counts only)."""
    entry = manifest.get("lifecycle")
    if not entry or not entry.get("base_run_id"):
        return []
    closed = entry["closed"]
    why = f" ({', '.join(f'{reason} {n:,}' for reason, n in closed.items())})" if closed else ""
    return [
        f"since the run as of {entry['base_as_of']}: {entry['new']:,} new gaps, {entry['persisting']:,} persisting,"
        f" {sum(closed.values()):,} closed{why}"
    ]


def measure_lines(manifest: dict) -> list[str]:
    """The quality measures' rates (counts only), when a roster was given."""
    entry = manifest.get("measures")
    if not entry:
        return []
    shown = []
    for r in entry["results"]:
        rate = f"{r['rate']:.1%}" if r["rate"] is not None else "n/a"
        still = f", {r['open_windows']:,} still open" if r.get("open_windows") else ""
        shown.append(f"{r['measure']} {rate} ({r['numerator']:,}/{r['denominator'] - r['exclusions']:,}{still})")
    return [f"quality measures {entry['measurement_year']}: " + ", ".join(shown)]


def input_notes(manifest: dict) -> list[str]:
    """What was read differently from a plain file: blank lines skipped, columns nobody maps, workbook
    sheets not read, files a folder scan passed over, a FHIR export's resources counted and not read (names of
    files, columns and reasons only, never values)."""
    notes = []
    for kind in (k for k in INPUT_KINDS if k is not SCANS):  # the scan rows have a line of their own
        rows = manifest.get("rows_by_input", {}).get(kind.name, {})
        if rows.get("rows_in"):
            share = rows["quarantined"] / rows["rows_in"]
            limit = manifest.get("max_reject_rate", 0.0)  # the limit scans are held to, as a warning here
            warning = f"  ({share:.0%} quarantined: check the quarantine table)" if share > limit else ""
            notes.append(
                f"{kind.row} rows: {rows['rows_in']:,} in = {rows['valid']:,} valid + {rows['quarantined']:,} "
                f"quarantined + {rows['duplicate']:,} duplicate{warning}"
            )
        if rows.get("not_in_population"):
            notes.append(
                f"patients not in the population roster: {rows['not_in_population']:,} (screened all the same)"
            )
    several = manifest.get("rows_by_input", {}).get(SCANS.name, {}).get("patients_with_several_mrns")
    if several:
        notes.append(
            f"patients whose records give different medical record numbers: {several:,} (the first read is shown;"
            " check the export's Patient identifiers)"
        )
    notes += omop_notes(manifest)
    blank = {kind: n for kind, n in manifest.get("blank_lines", {}).items() if n}
    if blank:
        notes.append("blank lines skipped: " + ", ".join(f"{kind} {n:,}" for kind, n in blank.items()))
    notes += fhir_notes(manifest)
    for entry in manifest.get("inputs", []):
        name = Path(entry["path"]).name
        if entry["rows"] == 0 and entry.get("format") != "ndjson":  # NDJSON: none read is said by fhir_notes
            notes.append(f"no data rows in {name} ({entry['input']}): check the export is complete")
        if entry.get("unmapped_columns"):
            notes.append(
                f"unmapped columns in {name} (kept in the raw layer, not used): " + ", ".join(entry["unmapped_columns"])
            )
        if entry.get("other_sheets"):
            notes.append(
                f"sheets not read in {name} (read '{entry['sheet']}'; choose with --sheet): "
                + ", ".join(entry["other_sheets"])
            )
    for kind, skipped in manifest.get("skipped_files", {}).items():
        notes.append(f"skipped in the {kind} folder (not a data file): " + ", ".join(Path(p).name for p in skipped))
    return notes


def omop_notes(manifest: dict) -> list[str]:
    """An OMOP screen: its as-of date against the CDM's release date, which CDM column gave the patient ids (the
    other beside them as mrn), and the observation periods read as enrolment (dates, column names and counts)."""
    entry = manifest.get("omop")
    if not entry:
        return []
    notes = []
    released, as_of = entry.get("release_date"), manifest.get("as_of")
    if not released:
        notes.append(f"as of {as_of}: the CDM gives no release date (cdm_source.source_release_date)")
    elif as_of and as_of != released:
        days = (dt.date.fromisoformat(as_of) - dt.date.fromisoformat(released)).days
        side = "after" if days > 0 else "before"
        notes.append(f"as of {as_of}: {abs(days):,} days {side} the CDM's release date {released}")
    else:
        notes.append(f"as of the CDM's release date {released}")
    column = entry.get("patient_id_column")
    if column:
        other = "person_id" if column == "person_source_value" else "person_source_value"
        notes.append(f"patient_id: the CDM's {column} ({other} beside it as mrn)")
    from osteo_core.ingest import omop  # a screen ran: its imports are loaded

    tables = entry.get("tables", {})
    if tables:
        notes.append("CDM rows read: " + ", ".join(f"{t} {a['read']:,} of {a['rows']:,}" for t, a in tables.items()))
    orphans = {t: a["not_read"].get(omop.UNKNOWN_PERSON, 0) for t, a in tables.items()}
    if any(orphans.values()):
        notes.append(
            "CDM rows of a person_id not in table 'person' (not read): "
            + ", ".join(f"{t} {n:,}" for t, n in orphans.items() if n)
        )
    if entry.get("enrolment") == "observation_period":
        without = entry.get("persons_without_observation_period", 0)
        notes.append(
            f"enrolment: the CDM's {entry.get('observation_periods', 0):,} observation periods"
            + (f"; {without:,} persons without one are not in the population" if without else "")
        )
    return notes


def fhir_notes(manifest: dict) -> list[str]:
    """A FHIR export's Conditions (``N fractures among M conditions``: a Condition file without a fracture is
    normal) and, per file, the resources counted and not read, by reason (counts only)."""
    notes = []
    conditions = [e for e in manifest.get("inputs", []) if e.get("resource_type") == "Condition"]
    fractures = manifest.get("rows_by_input", {}).get(FRACTURES.name, {}).get("fracture_events")
    if conditions and fractures is not None:
        total = sum(e["rows"] + sum(e.get("not_read", {}).values()) for e in conditions)
        notes.append(f"FHIR Conditions: {fractures:,} fractures among {total:,} conditions")
    for entry in manifest.get("inputs", []):
        if entry.get("not_read"):
            reasons = ", ".join(f"{reason} {n:,}" for reason, n in entry["not_read"].items())
            notes.append(f"not read in {Path(entry['path']).name} ({entry['resource_type']}): {reasons}")
    return notes


def input_change_warnings(manifest: dict) -> list[str]:
    """A run given other kinds of input than the last published one says so (its gaps are not comparable)."""
    lines = []
    ids = (manifest.get("omop") or {}).get("patient_ids_changed")
    if ids:  # published with --accept-input-change although its patient ids do not match the last run's
        what = (
            f"the CDM's {manifest['omop']['patient_id_column']}, the last published run's its"
            f" {ids['previous_patient_id_column']}"
            if "previous_patient_id_column" in ids
            else f"only {ids['patients_found']:,} of {ids['patients_with_a_result']:,} patients with a DXA result"
            " found in the last published run with the same birth date"
        )
        lines.append(
            f"osteo: warning: patient ids are {what} ({ids['previous_run_id']}): gaps start anew and earlier"
            " outreach marks do not apply"
        )
    changed = manifest.get("inputs_changed")
    if not changed:
        return lines
    for kind in changed["missing"]:
        lines.append(
            f"osteo: warning: no {called(kind)} export this time, but the last published run"
            f" ({changed['previous_run_id']}) had one: gaps that depend on it are not comparable across the two runs"
        )
    for kind in changed["new"]:
        lines.append(
            f"osteo: warning: a {called(kind)} export this time, but not in the last published run"
            f" ({changed['previous_run_id']}): gaps that depend on it are not comparable across the two runs"
        )
    return lines
