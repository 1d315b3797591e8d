"""What the catalog costs, and what it could cost instead (issue 34 item 4):
`python bench/catalog.py RUN_FOLDER [REPEATS]`.

RUN_FOLDER is a published run (`OUT/current`). Its tables are linked into a scratch folder, and each form of the
catalog is written there in a fresh process, REPEATS times (median; peak RSS from the kernel):

    copy        the published form: every table copied into the file (no path inside), then views and comments
    views       views that read the run's files by absolute path (OSTEO_CATALOG=views: works only where it is)
    copy-<t>    the copy of one table alone (where the copy's time goes)

and the size of each file. Prints one JSON line per form.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _scratch(run: Path) -> Path:
    """A folder with the run's tables as links (the catalog is written beside them, the run is left alone)."""
    folder = Path(tempfile.mkdtemp(prefix="osteo-catalog-bench-"))
    for entry in run.iterdir():
        if entry.name in ("osteo.duckdb", "raw") or entry.name.startswith("."):
            continue
        (folder / entry.name).symlink_to(entry.resolve(), target_is_directory=entry.is_dir())
    return folder


def _one(folder: Path, form: str) -> dict:
    """Write one form of the catalog in this process; seconds and peak RSS."""
    sys.path.insert(0, str(ROOT))
    from osteo_core.publish import folder as publish

    tables = list(publish.CATALOG_TABLES)
    views = publish.VIEWS
    if form.startswith("copy-"):
        tables, views = [form.removeprefix("copy-")], {}
    started = time.perf_counter()
    path = publish.write_catalog(folder, tables, views, copy=form != "views")
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"seconds": round(seconds, 2), "peak_mib": round(peak), "bytes": path.stat().st_size}


def main(run: Path, repeats: int) -> None:
    folder = _scratch(run)
    try:
        from osteo_core.publish import folder as publish

        forms = [
            "copy",
            "views",
            *(f"copy-{t}" for t in publish.CATALOG_TABLES if publish.table_files(folder, t)),
        ]
        for form in forms:
            runs = []
            for _ in range(repeats):
                done = subprocess.run(
                    [sys.executable, __file__, "--one", str(folder), form],
                    capture_output=True,
                    text=True,
                    env=os.environ | {"PYTHONPATH": str(ROOT)},
                )
                if done.returncode:
                    raise SystemExit(f"{form}: {done.stderr.strip()[-500:]}")
                runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
            seconds = [r["seconds"] for r in runs]
            print(
                json.dumps(
                    {
                        "form": form,
                        "median_s": statistics.median(seconds),
                        "runs": seconds,
                        "peak_mib": max(r["peak_mib"] for r in runs),
                        "bytes": runs[-1]["bytes"],
                    }
                ),
                flush=True,
            )
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    if sys.argv[1] == "--one":
        print(json.dumps(_one(Path(sys.argv[2]), sys.argv[3])))
    else:
        main(Path(sys.argv[1]).resolve(), int(sys.argv[2]) if len(sys.argv) > 2 else 3)
