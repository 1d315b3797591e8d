"""Issue 12 §6: a run given other kinds of input than the last published one says so (stderr, manifest,
history), instead of letting every denosumab lapse 'close' silently."""

import json

from conftest import screen_synthetic, write_synthetic

from osteo_core.cli import input_change_warnings
from osteo_core.pipeline.stages import ScreenRequest, run_screen
from osteo_core.publish.folder import read_history


def test_a_run_without_the_medications_export_after_one_with_it_is_flagged(tmp_path):
    paths = write_synthetic(tmp_path, 120, seed=3)
    out = tmp_path / "out"
    first = screen_synthetic(paths, out, "2026-01-01")
    assert "inputs_changed" not in first and first["inputs_given"] == ["scans", "meds", "fractures"]
    second = run_screen(
        ScreenRequest(scans=[str(paths["scans"])], fractures=str(paths["fractures"]), out=str(out), as_of="2026-02-01")
    )
    assert second["inputs_given"] == ["scans", "fractures"]
    assert second["inputs_changed"] == {"missing": ["meds"], "new": [], "previous_run_id": first["run_id"]}
    assert json.loads((out / "manifest.json").read_text())["inputs_changed"]["missing"] == ["meds"]
    (warning,) = input_change_warnings(second)
    assert "no medications export this time" in warning and first["run_id"] in warning
    third = screen_synthetic(paths, out, "2026-03-01")
    assert third["inputs_changed"]["new"] == ["meds"]
    history = read_history(out)
    assert ["inputs_changed" in h for h in history] == [False, True, True]


def test_the_same_inputs_again_are_not_flagged(tmp_path):
    paths = write_synthetic(tmp_path, 60, seed=4)
    screen_synthetic(paths, tmp_path / "out", "2026-01-01")
    again = screen_synthetic(paths, tmp_path / "out", "2026-02-01")
    assert "inputs_changed" not in again and input_change_warnings(again) == []
