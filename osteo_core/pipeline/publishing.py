"""Publishing a run: the partitions' tables merged into one file each, the run-wide tables made from them, the
manifest, the catalog, then one atomic switch of ``current`` — or a refusal (exit 3: too many rows quarantined, the
valid exams shrunk, a kind of input missing), whose folder is kept with its manifest and quarantine."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

import polars as pl

from osteo_core import __version__, reference
from osteo_core.errors import InputsMissing, RejectRateExceeded, RunRefused, ShrinkExceeded, output_errors
from osteo_core.ingest.profiles import load_profile, shipped_profiles
from osteo_core.ingest.readers import SOURCE_FILE
from osteo_core.measures.members import no_summary, summary
from osteo_core.measures.specs import calendar_period
from osteo_core.pipeline.gap_history import apply_lifecycle
from osteo_core.pipeline.omop_run import omop_manifest
from osteo_core.pipeline.partitions import merge_counts
from osteo_core.pipeline.resolve import Resolved
from osteo_core.publish import folder as publish
from osteo_core.publish.folder import RULES_COPY, TABLES, RunPaths
from osteo_core.settings import settings
from schemas.inputs import INPUTS, SCANS
from schemas.published import PUBLISHED_SCHEMAS
from schemas.tables import RUN_WIDE_TABLES

log = logging.getLogger("osteo")


def _merge_tables(paths: RunPaths, partitions: int, measured: bool) -> pl.DataFrame:
    """Each published table (``OUT/<table>.parquet``, one file): its partition files, in partition order,
    streamed into one Parquet file; then the run-wide tables made from them: the measures' summary (``measured``:
    a roster was given; else no row), returned."""
    for table in TABLES:
        if table in RUN_WIDE_TABLES:
            continue
        parts = [paths.part_file(table, p) for p in range(partitions)]
        pl.concat([pl.scan_parquet(part, glob=False) for part in parts]).sink_parquet(paths.folder / f"{table}.parquet")
    members = paths.folder / "measure_members.parquet"
    rates = summary(pl.scan_parquet(members, glob=False)) if measured else no_summary()
    PUBLISHED_SCHEMAS["measure_summary"].validate(rates)
    rates.write_parquet(paths.folder / "measure_summary.parquet")
    return rates


def publish_run(
    resolved: Resolved,
    run_id: str,
    inputs: list[dict[str, Any]],
    partition_counts: list[dict[str, Any]],
    skipped_files: dict[str, list[str]] | None = None,
) -> dict[str, Any]:
    """Merge the partitions, write manifest and catalog, then make the run the published one — or refuse
    (exit 3). ``rows`` are the scans' counts (the reject rate's basis); ``rows_by_input`` has all inputs.
    """
    paths = RunPaths(resolved.out, run_id)
    with output_errors(paths.folder):
        return _publish(resolved, paths, inputs, partition_counts, skipped_files or {})


def _publish(resolved: Resolved, paths, inputs, partition_counts, skipped_files) -> dict[str, Any]:
    request, rules, roster = resolved.request, resolved.rules, resolved.roster_given
    counts = merge_counts(partition_counts)
    given = list(resolved.inputs_given)
    lifecycle = apply_lifecycle(paths, len(partition_counts), resolved.as_of, given, roster=roster)
    rates = _merge_tables(paths, len(partition_counts), measured=roster)
    shutil.copyfile(rules.source_path, paths.folder / RULES_COPY)  # the exact rules that ran
    profile = resolved.profile
    scans = counts[SCANS.name]
    reject_rate = scans["quarantined"] / scans["rows_in"] if scans["rows_in"] else 0.0
    manifest = {
        "run_id": paths.run_id,
        "tool_version": __version__,
        "as_of": request.as_of,
        "rule_set": {"name": rules.name, "version": rules.version, "source": rules.source_path},
        "reference": reference.versions(),
        "profile": profile.name,
        "inputs": inputs,
        "skipped_files": skipped_files,
        "blank_lines": {kind: sum(i["blank_lines"] for i in inputs if i["input"] == kind) for kind in INPUTS},
        "rows": scans,
        "rows_by_input": {kind: counts[kind] for kind in INPUTS},
        "unrecognised_drugs": counts["unrecognised_drugs"],
        "partitions": len(partition_counts),
        "who_categories": counts["who_categories"],
        "eligibility": counts["eligibility"],
        "care_gaps": counts["care_gaps"],
        "measures": measures_entry(resolved, rates, counts["measure_open_windows"]),
        "lifecycle": lifecycle,
        "reject_rate": round(reject_rate, 6),
        "max_reject_rate": request.max_reject_rate,
        "max_shrink": request.max_shrink,
        "accept_input_change": request.accept_input_change,
        "tables": {
            t: pl.scan_parquet(paths.folder / f"{t}.parquet", glob=False).select(pl.len()).collect().item()
            for t in TABLES
            if (paths.folder / f"{t}.parquet").exists()
        },
    }
    if request.omop:  # the CDM named, and what its extraction counted (ingest.omop); never a credential
        manifest["omop"] = omop_manifest(request, paths.folder)
    shutil.rmtree(paths.work, ignore_errors=True)
    quarantine = paths.folder / "quarantine.parquet"
    previous = publish.published_manifest(paths.out)
    manifest["inputs_given"] = given
    changed = inputs_changed(manifest["inputs_given"], previous)
    if changed:
        manifest["inputs_changed"] = changed
    previous_valid = previous["rows"]["valid"] if previous else 0
    refusal: RunRefused | None = None
    if reject_rate > request.max_reject_rate:
        refusal = RejectRateExceeded(reject_rate, request.max_reject_rate, str(quarantine), top_checks(quarantine))
    elif previous_valid and scans["valid"] < previous_valid * (1 - request.max_shrink):
        details = top_checks(quarantine) if scans["quarantined"] else []
        refusal = ShrinkExceeded(scans["valid"], previous_valid, request.max_shrink, str(paths.folder), details)
    if refusal is not None:
        manifest["status"] = "rejected"
        manifest["refused_because"] = refusal.reason
        publish.write_manifest(paths.folder, manifest)
        raise refusal
    manifest["status"] = "published"
    manifest["catalog"] = settings().catalog
    publish.write_catalog(paths.folder, list(publish.CATALOG_TABLES), publish.VIEWS, copy=manifest["catalog"] == "copy")
    publish.crash_point("after_catalog")
    publish.write_manifest(paths.folder, manifest)
    publish.promote(
        paths.out,
        paths.run_id,
        [f"{t}.parquet" for t in TABLES] + [publish.MANIFEST, publish.CATALOG],
        request.keep_runs,
    )
    try:
        publish.append_history(paths.out, manifest)
    except OSError as exc:  # the run is published: the trend file missing one line is not worth undoing it
        log.warning("published, but the run history could not be extended (%s)", exc.strerror or exc)
    log.info("published run %s", paths.run_id)
    return manifest


def measures_entry(resolved: Resolved, rates: pl.DataFrame, open_windows: dict[str, int]) -> dict[str, Any] | None:
    """The manifest's quality measures: the year, its period, each measure's version, counts and rate, and how
    many of its patients have a window still open on the as-of date (no patient); None without a roster."""
    if not resolved.roster_given:
        return None
    year = resolved.measurement_year
    first, last = calendar_period(year)
    return {
        "measurement_year": year,
        "period": [first.isoformat(), last.isoformat()],
        "results": [row | {"open_windows": open_windows.get(row["measure"], 0)} for row in rates.to_dicts()],
    }


TOP_CHECKS = 10


def inputs_changed(given: list[str], previous: dict[str, Any] | None) -> dict[str, Any] | None:
    """Inputs given now but not to the last published run, or the other way round (``missing``, ``new``,
    and that run's id): counts that depend on them cannot be compared across the two runs. A kind that run
    records and this version does not know (a newer version's) is missing too: this run cannot give it."""
    if previous is None:
        return None
    before = previous.get("inputs_given") or sorted({entry["input"] for entry in previous.get("inputs", [])})
    missing = [kind for kind in INPUTS if kind in before and kind not in given]
    missing += [kind for kind in before if kind not in INPUTS and kind not in given]
    new = [kind for kind in INPUTS if kind in given and kind not in before]
    if not (missing or new):
        return None
    return {"missing": missing, "new": new, "previous_run_id": previous.get("run_id")}


def refuse_missing_inputs(resolved: Resolved, run_id: str) -> None:
    """Refuse a run that lacks a kind of input the published run had (exit 3), unless
    ``--accept-input-change``: a week whose medications export failed upstream would otherwise publish every
    treated patient as untreated. Needs only the request and the published manifest, so it runs before any
    input is read, under the output folder's lock (held until publish: the run compared with is the one this
    run would replace). Like the other refusals the run's folder is kept, with a manifest (``status``
    ``rejected``, ``refused_because`` ``inputs_missing``, ``inputs_changed``) naming the missing kinds."""
    request = resolved.request
    if request.accept_input_change:
        return
    given = list(resolved.inputs_given)
    changed = inputs_changed(given, publish.published_manifest(Path(request.out)))
    if not changed or not changed["missing"]:
        return
    paths = RunPaths(Path(request.out), run_id)
    refusal = InputsMissing(changed["missing"], changed["previous_run_id"], str(paths.folder))
    rules = resolved.rules
    manifest = {
        "run_id": run_id,
        "tool_version": __version__,
        "as_of": request.as_of,
        "rule_set": {"name": rules.name, "version": rules.version, "source": rules.source_path},
        "profile": resolved.profile.name,
        "inputs": [],  # none read: refused before ingest
        "inputs_given": given,
        "inputs_changed": changed,
        "max_reject_rate": request.max_reject_rate,
        "max_shrink": request.max_shrink,
        "accept_input_change": False,
        "status": "rejected",
        "refused_because": refusal.reason,
    }
    with output_errors(paths.folder):
        if paths.raw.is_dir() and not any(paths.raw.iterdir()):
            paths.raw.rmdir()  # made for the ingest that will not run
        publish.write_manifest(paths.folder, manifest)
    raise refusal


def top_checks(quarantine: Path, most: int = TOP_CHECKS) -> list[str]:
    """The most frequent quarantine reasons as ``input column: check — N rows`` (counts, never values)."""
    counts = (
        pl.scan_parquet(quarantine, glob=False)
        .group_by("input", "column", "check")
        .agg(pl.struct(SOURCE_FILE, "source_row").n_unique().alias("rows"))
        .sort(["rows", "input", "column", "check"], descending=[True, False, False, False], nulls_last=True)
        .collect()
    )
    lines = ["most frequent quarantine checks (input column: check — rows):"]
    lines += [
        f"  {r['input']} {r['column'] or '(row)'}: {r['check']} — {r['rows']:,} row(s)"
        for r in counts.head(most).iter_rows(named=True)
    ]
    if counts.height > most:
        lines.append(f"  … and {counts.height - most} more check(s) in {quarantine}")
    if "site_stated" in counts.head(most).get_column("check").to_list():
        unsited = [name for name in shipped_profiles() if load_profile(name).unsited_t]
        lines.append(
            "  (site_stated: a score whose site neither its code nor its text states. An export that writes one"
            f" T-score per exam without a site is read by a profile that uses it: {', '.join(unsited)};"
            " docs/inputs.md)"
        )
    return lines
