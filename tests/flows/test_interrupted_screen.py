"""Ctrl-C on ``osteo screen`` while Prefect creates a task run: the race a stop can meet (tests/held_call.py
holds the run's first task-run creation until the signal ends it). Prefect 3.8.8 turned the KeyboardInterrupt into
``ValueError('Task run is not set')``: a traceback and exit 1 instead of ``osteo: interrupted`` and 130."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from conftest import write_synthetic
from held_call import hold_env
from prefect_server import dies_with_this_process, stop, wait

OSTEO = Path(sys.executable).parent / "osteo"


def test_ctrl_c_while_the_screen_creates_a_task_run_is_exit_130_in_one_line_and_publishes_nothing(tmp_path):
    paths = write_synthetic(tmp_path, 200, seed=41)
    hold = hold_env(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env |= hold.env | {"PREFECT_HOME": str(tmp_path / "prefect-home")}
    arguments = ["screen", "--scans", paths["scans"].name, "--meds", paths["meds"].name, "--out", "out"]
    err = tmp_path / "stderr"
    with err.open("wb") as stderr:
        screen = subprocess.Popen(
            [str(OSTEO), *arguments, "--fractures", paths["fractures"].name],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            preexec_fn=dies_with_this_process(),
        )
    try:

        def held() -> bool:
            assert screen.poll() is None, err.read_text(errors="replace")[-3000:]
            return hold.mark.exists()

        wait(held, 180, "the screen's first task run to be held")
        assert hold.held_pid() == screen.pid  # a local screen runs its flow in its own process
        os.kill(screen.pid, signal.SIGINT)
        code = screen.wait(timeout=60)
    finally:
        stop(screen)
    text = err.read_text(errors="replace")
    assert hold.ended.read_text() == "KeyboardInterrupt"
    assert code == 130, text
    assert "osteo: interrupted" in text and "Traceback" not in text and "Task run is not set" not in text, text
    assert not (tmp_path / "out" / "manifest.json").exists()
