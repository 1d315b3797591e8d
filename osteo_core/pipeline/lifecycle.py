"""A run's life in the output folder: lock it, create the run folder, and whatever goes wrong, remove what
this run wrote (never the published run; a refused run keeps its folder, its quarantine is there to read)."""

from __future__ import annotations

import datetime as dt
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from osteo_core.errors import RunRefused, output_errors
from osteo_core.pipeline.omop_run import OMOP_FOLDER, extract_omop
from osteo_core.pipeline.request import check_run_order
from osteo_core.pipeline.resolve import Resolved
from osteo_core.publish import folder as publish
from osteo_core.publish.folder import RunPaths


def prepare(resolved: Resolved, run_id: str | None = None) -> dict[str, Any]:
    """Create the run's folder (an OMOP screen: extract the CDM into it); returns the run's identity and files.

    The run's as-of date is checked against the published run's again here: ``open_run`` calls this under the
    output folder's lock, held until the run is published, so this is the check no other screen can publish
    around (one may have published since the request was resolved)."""
    request = resolved.request
    check_run_order(request.out, resolved.as_of)
    run_id = run_id or new_run_id()
    paths = RunPaths(Path(request.out), run_id)
    with output_errors(request.out):
        paths.raw.mkdir(parents=True, exist_ok=False)
    files, partitions = resolved.files, resolved.partitions
    if request.omop:  # the CDM's rows the screen reads, as files in the run's folder (ingest.omop)
        files, partitions = extract_omop(request, paths.folder / OMOP_FOLDER)
    return {
        "run_id": run_id,
        "partitions": partitions,
        "files": {kind: list(found) for kind, found in files.items()},
        "skipped_files": {kind: list(skipped) for kind, skipped in resolved.skipped.items()},
    }


def new_run_id() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ") + "-" + secrets.token_hex(3)


@contextmanager
def open_run(resolved: Resolved) -> Iterator[dict[str, Any]]:
    """Lock the output folder and create the run's folder for the stages; whatever goes wrong, remove
    what this run wrote (a refused run keeps its folder: its quarantine is there for inspection)."""
    out = resolved.out
    created = [p for p in (out, *out.parents) if not p.exists()]
    with output_errors(out):
        out.mkdir(parents=True, exist_ok=True)
    run_id = new_run_id()
    with publish.output_lock(out, run_id):
        try:
            yield prepare(resolved, run_id)
        except RunRefused:
            raise
        except BaseException:
            discard(out, run_id)
            if created:  # folders made for this run that hold nothing of anyone's: remove them again
                remove_empty_folders([out / publish.RUNS, *created], lock_file=out / publish.LOCK)
            raise


def remove_empty_folders(folders: list[Path], lock_file: Path) -> None:
    """Remove these folders, innermost first, while each holds nothing; the lock file (still held by this
    run, so no other screen's) goes with its folder."""
    for folder in folders:
        try:
            if any(entry != lock_file for entry in folder.iterdir()):
                return
            if lock_file.parent == folder:
                lock_file.unlink(missing_ok=True)
            folder.rmdir()
        except OSError:
            return


def discard(out: Path, run_id: str) -> None:
    """Remove an unfinished run's folder; never the published one (a failure after the switch keeps it)."""
    paths = RunPaths(out, run_id)
    if publish.current_run(paths.out) == paths.folder.resolve():
        return
    shutil.rmtree(paths.folder, ignore_errors=True)
