"""The quality team's and researchers' commands on a large published run (issue 34 item 2):
`.venv/bin/python bench/interactive.py [--exams N] [--repeats R] [--write]`.

1. Takes bench/run.py's synthetic registry of N exams (default 10,000,000; typed Parquet, written once under
   bench/out/data-N), adds a population roster for it (demo.synthetic.roster: every scanned patient and a quarter
   as many never scanned, with clinic and pcp_id routing), and publishes one screen of it with `osteo screen`
   into bench/out/interactive-N/out (kept while the data and the screen's code are unchanged: --republish).
2. Times each command as a user runs it, a fresh `osteo` process each time (`.venv/bin/osteo …`, stdout to a
   file): `gaps --limit 50`, `worklist --limit 50`, one `worklist mark`, `explain EXAM`, `measures`, and an
   `osteo sql` count. "cold": the first run after the run's files are evicted from the page cache
   (`posix_fadvise(DONTNEED)` on every file of the run: what a reboot or a busy machine does); "warm": the
   median of R runs after it. Peak RSS per command: GNU time's %M (/usr/bin/time).
3. Prints a Markdown table; --write appends it to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
OSTEO = ROOT / ".venv" / "bin" / "osteo"
TARGET_WARM, TARGET_COLD = 1.0, 2.0  # seconds (issue 34 item 2)


def _code_digest() -> str:
    """The screen's code as committed (a run published by other code is published again)."""
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True)
    return head.stdout.strip()


def publish(exams: int, republish: bool) -> Path:
    sys.path.insert(0, str(ROOT))
    from bench import run

    data = run.generate(exams)
    roster = run.roster(data)
    work = OUT / f"interactive-{exams}"
    out, stamp = work / "out", work / "published.json"
    if not republish and stamp.exists() and (out / "manifest.json").exists():
        return out
    typed = data / "typed"
    command = [str(OSTEO), "screen", "--scans", str(typed / "scans"), "--meds", str(typed / "meds")]
    command += ["--fractures", str(typed / "fractures"), "--population", str(roster), "--out", str(out)]
    command += ["--as-of", "2025-01-01", "--max-reject-rate", "0.2"]
    started = time.perf_counter()
    subprocess.run(command, check=True, cwd=work.parent, stdout=subprocess.DEVNULL)
    stamp.write_text(json.dumps({"commit": _code_digest(), "seconds": round(time.perf_counter() - started, 1)}))
    return out


def _evict(folder: Path) -> None:
    """Drop the run's files from the page cache (the next read comes from the disk)."""
    for path in folder.rglob("*"):
        if path.is_file():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def _timed(argv: list[str], cwd: Path) -> tuple[float, int]:
    """(seconds, peak RSS in MiB: GNU time's %M) of one fresh process."""
    peak_file = (cwd / ".peak").absolute()
    timed = ["/usr/bin/time", "-f", "%M", "-o", str(peak_file), *argv]
    started = time.perf_counter()
    done = subprocess.run(timed, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv[1:3])} failed ({done.returncode}): {done.stderr.strip()[:300]}")
    return seconds, int(peak_file.read_text().split()[-1]) // 1024


def commands(out: Path) -> dict[str, list[str]]:
    import duckdb

    gaps = duckdb.sql(
        f"SELECT patient_id, gap, exam_id FROM read_parquet('{out / 'current' / 'care_gaps.parquet'}')"
        " WHERE exam_id IS NOT NULL ORDER BY priority, since, patient_id LIMIT 1"
    ).fetchall()
    ((patient, gap, exam),) = gaps
    o = ["--out", str(out)]
    return {
        "gaps --limit 50": [str(OSTEO), "gaps", *o, "--limit", "50"],
        "worklist --limit 50": [str(OSTEO), "worklist", *o, "--limit", "50"],
        "worklist mark (one)": [str(OSTEO), "worklist", "mark", patient, gap, "--status", "contacted", *o],
        "explain EXAM": [str(OSTEO), "explain", exam, *o],
        "measures": [str(OSTEO), "measures", *o],
        "sql count": [str(OSTEO), "sql", *o, "SELECT count(*) FROM screening"],
    }


def measure(out: Path, repeats: int) -> dict[str, dict[str, float]]:
    results = {}
    for name, argv in commands(out).items():
        _evict(out.resolve())
        _evict((out / "current").resolve())
        cold, cold_rss = _timed(argv, out.parent)
        warm = [_timed(argv, out.parent) for _ in range(repeats)]
        results[name] = {
            "cold": round(cold, 2),
            "warm": round(statistics.median(w[0] for w in warm), 2),
            "warm_min": round(min(w[0] for w in warm), 2),
            "warm_max": round(max(w[0] for w in warm), 2),
            "rss_mib": max([cold_rss, *(w[1] for w in warm)]),
        }
        print(f"  {name}: cold {cold:.2f} s, warm {results[name]['warm']:.2f} s", file=sys.stderr)
    return results


def report(exams: int, out: Path, results: dict[str, dict[str, float]], repeats: int) -> str:
    manifest = json.loads((out / "manifest.json").read_text())
    stamp = json.loads((out.parent / "published.json").read_text())
    tables = manifest["tables"]
    gaps = sum(manifest["care_gaps"].values())
    lines = [
        f"## Interactive commands on a published run of {exams:,} exams — `bench/interactive.py --exams {exams}`",
        "",
        f"{dt.date.today().isoformat()}, commit `{_code_digest()[:7]}`. Machine: {os.cpu_count()} vCPU, "
        f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB RAM, Python "
        f"{platform.python_version()}. The run: {tables['screening']:,} exams screened, {tables['patients']:,}"
        f" patients, {gaps:,} open gaps, {tables['measure_members']:,} measure members (screened in"
        f" {stamp['seconds']} s by `{stamp['commit'][:7]}`). Each command a fresh process; cold: after evicting the"
        f" run's files from the page cache; warm: median of {repeats} (min–max).",
        "",
        "| command | cold | warm (median) | warm min–max | peak RSS | target (warm ≤ 1 s, cold ≤ 2 s) |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        met = (
            "met"
            if r["warm"] <= TARGET_WARM and r["cold"] <= TARGET_COLD
            else (f"missed by {max(r['warm'] - TARGET_WARM, r['cold'] - TARGET_COLD):.2f} s")
        )
        lines.append(
            f"| `osteo {name}` | {r['cold']:.2f} s | {r['warm']:.2f} s | {r['warm_min']:.2f}–{r['warm_max']:.2f} s"
            f" | {r['rss_mib']:,} MiB | {met} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--exams", type=int, default=10_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--republish", action="store_true", help="screen the data again even if published")
    parser.add_argument("--write", action="store_true", help="append the table to bench/RESULTS.md")
    args = parser.parse_args()
    out = publish(args.exams, args.republish)
    results = measure(out, args.repeats)
    text = report(args.exams, out, results, args.repeats)
    (out.parent / "results.json").write_text(json.dumps(results, indent=2))
    print(text)
    if args.write:
        with (ROOT / "bench" / "RESULTS.md").open("a", encoding="utf-8") as fh:
            fh.write("\n" + text)


if __name__ == "__main__":
    main()
