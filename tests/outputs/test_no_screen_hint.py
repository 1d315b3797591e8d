"""Issue 32: after ``make demo``, a reading command without ``--out`` looked in the default folder and said only
"osteo-out: no published screen here (run osteo screen first)", though the demo's screen was beside it. Now it
says where the demo's is; the demo still never publishes into the default folder a real screen uses."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import screen_synthetic, write_synthetic

from osteo_core.cli import main
from osteo_core.publish.folder import DEMO_MARKER
from osteo_core.settings import settings

READERS = [["gaps"], ["worklist"], ["measures"], ["sql", "SELECT 1"], ["explain", "X000000001"]]


@pytest.fixture(scope="module")
def working_folder(tmp_path_factory) -> Path:
    """A working folder holding a screen published by a demo (its marker) under the demo's folder name."""
    here = tmp_path_factory.mktemp("working")
    (here / "inputs").mkdir()
    paths = write_synthetic(here / "inputs", 40, seed=3)
    screen_synthetic(paths, here / "osteo-demo", as_of="2026-01-01")
    (here / "osteo-demo" / DEMO_MARKER).touch()
    return here


@pytest.mark.parametrize("command", READERS, ids=lambda c: c[0])
def test_a_reader_without_out_names_the_demos_folder(working_folder, monkeypatch, capsys, command):
    monkeypatch.chdir(working_folder)
    assert main(command) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert f"{settings().out}: no published screen here (run osteo screen first;" in err
    assert "the demo's screen is in osteo-demo: --out osteo-demo" in err
    assert not (working_folder / settings().out).exists()  # nothing made where a real screen publishes


def test_a_folder_with_a_screen_not_made_by_the_demo_is_not_named(working_folder, monkeypatch, capsys, tmp_path):
    shutil.copytree(working_folder / "osteo-demo", tmp_path / "screened", symlinks=True)
    (tmp_path / "screened" / DEMO_MARKER).unlink()  # a real screen's folder: not the demo's to point at
    monkeypatch.chdir(tmp_path)
    assert main(["gaps"]) == 2
    assert "the demo's screen" not in capsys.readouterr().err
    monkeypatch.chdir(working_folder)
    assert main(["gaps", "--out", "osteo-demo", "--limit", "1"]) == 0  # the hint's --out works as written


def test_the_demo_publishes_into_its_own_folder_never_the_default_out():
    from osteo_core.cli.parser import build_parser

    demo = build_parser().parse_args(["demo"])
    screen = build_parser().parse_args(["screen", "--scans", "x.csv"])
    assert demo.out != screen.out == settings().out
