"""``osteo demo``: a folder of its own (made afresh; never one it did not make), a synthetic registry written
into it as four inputs, that registry screened as ``osteo screen`` would screen it, then the untreated
high-risk list and the next commands to try."""

from __future__ import annotations

import argparse
import datetime as dt
import time
from pathlib import Path

from osteo_core.cli.screen import run_screen_flow, screen_request
from osteo_core.cli.summary import print_summary
from osteo_core.errors import OsteoError, output_errors
from osteo_core.settings import settings
from schemas.gaps import SCREENING_DUE, UNTREATED_HIGH_RISK

DEMO_ROWS = 15  # untreated patients the demo prints
DEMO_MARKER_TEXT = (
    "This folder was made by osteo demo. The next osteo demo into it deletes everything here (inputs, runs,\n"
    "catalog, outreach log, history) and starts afresh, as of its own day. Keep nothing of your own here.\n"
)


DEMO_INPUTS = ("scans.csv", "medications.csv", "fractures.csv", "population.csv")  # what osteo demo writes


def _earlier_demo(out: Path) -> bool:
    """A folder ``osteo demo`` made before it left its marker: its published run read exactly the demo's four
    input files in ``OUT/input/`` and nothing else, and the folder holds nothing but what a demo leaves."""
    from osteo_core.publish import folder as publish

    try:
        manifest = publish.published_manifest(out)
        read = {Path(entry["path"]).resolve() for entry in (manifest or {}).get("inputs", [])}
    except (OSError, ValueError, KeyError, TypeError):
        return False
    demo_inputs = {(out / "input" / name).resolve() for name in DEMO_INPUTS}
    left = {"input", "runs", publish.CURRENT, publish.CATALOG, publish.LOCK, "history.jsonl", "report.html"}
    made = {p.name for p in out.iterdir()} <= left | {f"{t}.parquet" for t in publish.TABLES} | {
        publish.MANIFEST, "outreach.jsonl", "outreach.sqlite", "outreach.sqlite-wal", "outreach.sqlite-shm",
        ".outreach.lock", "outreach.jsonl.migrated",
    }  # fmt: skip
    return bool(read) and read == demo_inputs and made


def _fresh_demo_folder(out: Path) -> None:
    """Make ``out`` a demo folder with nothing in it but its marker: a new or empty folder is marked; a folder
    an earlier demo made (its marker) is emptied, so the demo (as of today) never follows a later screen
    into it; any other folder is refused (exit 2), never emptied: it may hold someone's screens."""
    import shutil

    from osteo_core.errors import InputError
    from osteo_core.publish import folder as publish

    if (out.exists() or out.is_symlink()) and not out.is_dir():
        raise InputError(str(out), "--out exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / publish.DEMO_MARKER).is_file() and not _earlier_demo(out):
        raise InputError(
            str(out),
            f"--out is not empty and was not made by osteo demo (no {publish.DEMO_MARKER} file): the demo starts its"
            " folder afresh and never empties one it did not make; give a new or empty --out",
        )
    with output_errors(out):
        out.mkdir(parents=True, exist_ok=True)
        with publish.output_lock(out, "osteo-demo"):  # not while a screen writes here (exit 2, naming it)
            for entry in out.iterdir():
                if entry.name in (publish.DEMO_MARKER, publish.LOCK):
                    continue
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()
            (out / publish.DEMO_MARKER).write_text(DEMO_MARKER_TEXT, encoding="utf-8")


def _write_inputs(out: Path, patients: int, as_of: dt.date) -> Path:
    """The synthetic registry as the demo's four inputs in ``OUT/input/`` (``DEMO_INPUTS``)."""
    from osteo_core.demo import living_registry

    inputs = out / "input"
    inputs.mkdir(parents=True, exist_ok=True)
    # a registry alive up to today, whatever today is: exams, fills and fractures up to two weeks before it
    for name, frame in living_registry.demo_inputs(patients, as_of).items():
        frame.write_csv(inputs / f"{name}.csv")
    print(
        f"synthetic registry: {patients:,} patients -> {inputs}/ (scans, medications, fractures, and a"
        " population roster that also lists people never scanned)"
    )
    return inputs


def _screen_arguments(out: str, inputs: Path, as_of: dt.date) -> argparse.Namespace:
    """The arguments of the demo's screen, as ``osteo screen`` would have them: the four inputs, as of today, the
    standard rule set and generic profile, the configured limits, automatic partitions; every other option not
    given. A namespace of its own: the parsed ``osteo demo`` arguments are left as they are."""
    cfg = settings()
    return argparse.Namespace(
        scans=[str(inputs / "scans.csv")],
        meds=str(inputs / "medications.csv"),
        fractures=str(inputs / "fractures.csv"),
        population=str(inputs / "population.csv"),
        out=out,
        as_of=as_of.isoformat(),
        rules="standard",
        profile="generic",
        max_reject_rate=cfg.max_reject_rate,
        max_shrink=cfg.max_shrink,
        lsc=None,
        partitions=0,
        measurement_year=None,
    )


def cmd_demo(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if args.patients < 1:
        raise OsteoError("--patients must be at least 1")
    _fresh_demo_folder(out)
    as_of = dt.date.today()
    inputs = _write_inputs(out, args.patients, as_of)
    started = time.perf_counter()
    manifest = run_screen_flow(screen_request(_screen_arguments(args.out, inputs, as_of)))
    print_summary(manifest, out, time.perf_counter() - started)
    from osteo_core.outputs.gap_list import TABLE_COLUMNS
    from osteo_core.outputs.render import write_frame
    from osteo_core.publish.catalog import query

    # as the worklist orders a gap: the most recent since first (a patient scanned last week before one from years ago)
    untreated = query(out, f"SELECT * FROM {UNTREATED_HIGH_RISK.name} ORDER BY since DESC, patient_id")
    print(f"\nuntreated high-risk patients ({untreated.height:,}; the first {DEMO_ROWS}, most recent first):")
    write_frame(untreated.select(TABLE_COLUMNS).head(DEMO_ROWS), "table", noun="patient")
    print(f"\nall of them: osteo gaps --out {out} --gap {UNTREATED_HIGH_RISK.name} --format csv")
    never = manifest.get("care_gaps", {}).get(SCREENING_DUE.name, 0)
    print(f"never scanned and due a first DXA: {never:,} (osteo gaps --out {out} --gap {SCREENING_DUE.name})")
    print(f"quality measures (HEDIS OMW, MIPS 418, MIPS 039): osteo measures --out {out}")
    print(f"work the list and record calls: osteo worklist --out {out}  (osteo worklist mark --help)")
    return 0
