"""bench/stage_times.py times a whole screen by stage; with ``--steps`` also each step of a partition's screen,
collected by itself. Run as a user runs it (a fresh process: it wraps the pipeline's functions in place)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from osteo_core.demo import synthetic

ROOT = Path(__file__).resolve().parents[2]
STAGES = {"ingest", "conflicts", "validation", "rules+gaps", "write", "publish", "total"}


def _data(folder: Path) -> Path:
    """bench/run.py's layout: FORMAT/{scans,meds,fractures}/NNN.parquet and roster/roster.parquet."""
    scans = synthetic.registry(400, seed=5)
    frames = {
        "scans": scans,
        "meds": synthetic.medications(scans, seed=5),
        "fractures": synthetic.fractures(scans, seed=5),
    }
    for kind, frame in frames.items():
        (folder / "parquet" / kind).mkdir(parents=True)
        frame.write_parquet(folder / "parquet" / kind / "000.parquet")
    (folder / "roster").mkdir()
    synthetic.roster(scans, seed=5).write_parquet(folder / "roster" / "roster.parquet")
    return folder


def _lines(folder: Path, *extra: str) -> list[dict]:
    script = ROOT / "bench" / "stage_times.py"
    done = subprocess.run(
        [sys.executable, str(script), str(folder), "parquet", "2", *extra],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_steps_are_timed_each_alone_and_only_when_asked(tmp_path):
    data = _data(tmp_path)
    plain = _lines(data)
    assert set(plain[0]) == STAGES and not any("partition_steps" in line for line in plain)
    detailed = _lines(data, "--steps")
    assert set(detailed[0]) == STAGES
    (steps,) = [line for line in detailed if "partition_steps" in line]
    timed = steps["partition_steps"]
    # every step this screen takes (a wide export: no assembly; a roster: its validation, patients and measures)
    assert {"validate_scans", "validate_population", "screen", "care_gaps", "all_members", "patients"} <= set(timed)
    assert "assemble" not in timed
    assert list(timed.values()) == sorted(timed.values(), reverse=True) and min(timed.values()) >= 0
    rounding = 0.005 * (len(timed) + 1)  # each figure printed to 0.01 s
    assert 0 < steps["screen_partition"] and sum(timed.values()) <= steps["screen_partition"] + rounding
