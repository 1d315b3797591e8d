"""docs/tables.md: publishing is atomic (old run or new run, never a mix) and idempotent."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest
from conftest import exam, write_scans_csv

from osteo_core.errors import RejectRateExceeded
from osteo_core.pipeline.stages import ScreenRequest, run_screen
from osteo_core.publish import catalog
from osteo_core.publish import folder as publish

ROOT = Path(__file__).resolve().parents[2]


def _request(scans: Path, out: Path, **kw) -> ScreenRequest:
    return ScreenRequest(scans=[str(scans)], out=str(out), as_of="2026-01-01", **kw)


@pytest.fixture()
def two_inputs(tmp_path):
    old = write_scans_csv(tmp_path / "old.csv", [exam(exam_id=f"A{i}", patient_id=f"P{i}") for i in range(3)])
    new = write_scans_csv(
        tmp_path / "new.csv", [exam(exam_id=f"B{i}", patient_id=f"P{i}", total_hip_t="-2.7") for i in range(40)]
    )
    return old, new


def _visible(out: Path) -> tuple[str, list[str], list[str]]:
    """What a reader sees: the manifest's run id, the exam ids via SQL and via the Parquet file."""
    manifest = json.loads((out / "manifest.json").read_text())
    via_sql = catalog.query(out, "SELECT exam_id FROM screening ORDER BY exam_id").get_column("exam_id").to_list()
    via_file = sorted(pl.read_parquet(out / "screening.parquet").get_column("exam_id").to_list())
    assert (out / "current").resolve().name == manifest["run_id"]
    return manifest["run_id"], via_sql, via_file


def _spawn(request: ScreenRequest, crash_at: str | None = None) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    if crash_at:
        env[publish.CRASH_ENV] = crash_at
    code = (
        "import sys; from osteo_core.pipeline.stages import ScreenRequest, run_screen; "
        f"run_screen(ScreenRequest(**{request.__dict__!r}))"
    )
    return subprocess.Popen([sys.executable, "-c", code], env=env, cwd=ROOT)


@pytest.mark.parametrize(
    ("step", "new_visible"), [("after_catalog", False), ("before_swap", False), ("after_swap", True)]
)
def test_kill_at_each_publishing_step_leaves_one_whole_run(tmp_path, two_inputs, step, new_visible):
    old, new = two_inputs
    out = tmp_path / "out"
    run_screen(_request(old, out))
    before = _visible(out)
    proc = _spawn(_request(new, out), crash_at=step)
    assert proc.wait(timeout=120) == -signal.SIGKILL
    run_id, via_sql, via_file = _visible(out)
    assert via_sql == via_file
    if new_visible:
        assert run_id != before[0] and via_sql == sorted(f"B{i}" for i in range(40))
    else:
        assert (run_id, via_sql, via_file) == before


@pytest.mark.parametrize("delay", [0.3, 0.8, 1.2, 1.6, 2.0, 2.5])
def test_kill_at_an_arbitrary_moment_leaves_one_whole_run(tmp_path, two_inputs, delay):
    old, new = two_inputs
    out = tmp_path / "out"
    run_screen(_request(old, out))
    old_ids = _visible(out)[1]
    proc = _spawn(_request(new, out))
    time.sleep(delay)
    proc.kill()
    proc.wait(timeout=60)
    _, via_sql, via_file = _visible(out)
    assert via_sql == via_file
    assert via_sql in (old_ids, sorted(f"B{i}" for i in range(40)))


def test_same_inputs_and_as_of_give_the_same_tables(tmp_path, two_inputs):
    _, new = two_inputs
    first = run_screen(_request(new, tmp_path / "one"))
    second = run_screen(_request(new, tmp_path / "two"))
    assert first["run_id"] != second["run_id"]
    for table in ("screening", "quarantine"):
        a = pl.read_parquet(tmp_path / "one" / f"{table}.parquet")
        b = pl.read_parquet(tmp_path / "two" / f"{table}.parquet")
        assert a.equals(b)
    strip = lambda m: {k: v for k, v in m.items() if k != "run_id"}  # noqa: E731
    assert strip(first) == strip(second)


def test_reject_rate_keeps_previous_outputs_and_writes_quarantine(tmp_path, two_inputs):
    old, _ = two_inputs
    out = tmp_path / "out"
    run_screen(_request(old, out))
    before = _visible(out)
    bad = write_scans_csv(tmp_path / "bad.csv", [exam(exam_id="G1"), exam(exam_id="X1", sex="?")])
    with pytest.raises(RejectRateExceeded) as err:
        run_screen(_request(bad, out, max_reject_rate=0.49))
    assert _visible(out) == before
    rejected = pl.read_parquet(err.value.quarantine_path)
    assert rejected.get_column("exam_id").to_list() == ["X1"]
    manifest = json.loads((Path(err.value.quarantine_path).parent / "manifest.json").read_text())
    assert manifest["status"] == "rejected" and manifest["reject_rate"] == 0.5


def test_reject_rate_at_the_limit_still_publishes(tmp_path):
    bad = write_scans_csv(tmp_path / "bad.csv", [exam(exam_id="G1"), exam(exam_id="X1", sex="?")])
    manifest = run_screen(_request(bad, tmp_path / "out", max_reject_rate=0.5))
    assert manifest["status"] == "published"


def test_old_runs_are_pruned_but_never_the_published_one(tmp_path, two_inputs):
    old, _ = two_inputs
    out = tmp_path / "out"
    ids = [run_screen(_request(old, out, keep_runs=2))["run_id"] for _ in range(4)]
    assert sorted(p.name for p in (out / "runs").iterdir()) == ids[-2:]
    assert (out / "current").resolve().name == ids[-1]
