"""Issue 12 §6: a run given other kinds of input than the last published one says so (stderr, manifest,
history), instead of letting every denosumab lapse 'close' silently.

Issue 28 §5: a run that lacks a kind of input the published run had (a week whose medications export failed
upstream) is refused, exit 3, before any input is read; the published outputs stay as they were and the
refused run's folder keeps a manifest naming what is missing. ``--accept-input-change`` publishes anyway.
Before, such a week published with exit 0: every treated patient on the call list, OMW and MIPS 418 at 0 %.
"""

import hashlib
import json
from dataclasses import asdict
from pathlib import Path

import polars as pl
import pytest
from conftest import screen_synthetic, write_synthetic

from osteo_core.cli import main
from osteo_core.cli.parser import build_parser
from osteo_core.cli.screen import screen_request
from osteo_core.cli.summary import input_change_warnings
from osteo_core.errors import InputsMissing, RunRefused
from osteo_core.pipeline.publishing import inputs_changed
from osteo_core.pipeline.stages import ScreenRequest, run_screen
from osteo_core.publish.folder import read_history


def _without(paths: dict[str, Path], out: Path, as_of: str, *dropped: str, **options) -> ScreenRequest:
    """The request ``screen_synthetic`` makes, without the ``dropped`` input kinds."""
    given = {kind: str(path) for kind, path in paths.items() if kind not in dropped and kind != "scans"}
    return ScreenRequest(scans=[str(paths["scans"])], out=str(out), as_of=as_of, **given, **options)


def _published_state(out: Path) -> dict[str, str]:
    """What the published outputs are: the run ``current`` points at, each published file's digest, history."""
    files = sorted(p for p in out.iterdir() if p.suffix in (".parquet", ".json", ".duckdb"))
    state = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in files}
    state["current"] = str((out / "current").resolve())
    state["history"] = (out / "history.jsonl").read_text()
    return state


def _refused_folder(out: Path, published_run_id: str) -> Path:
    (folder,) = [p for p in (out / "runs").iterdir() if p.name != published_run_id]
    return folder


def test_a_run_without_the_medications_export_after_one_with_it_is_flagged(tmp_path):
    paths = write_synthetic(tmp_path, 120, seed=3)
    out = tmp_path / "out"
    first = screen_synthetic(paths, out, "2026-01-01")
    assert "inputs_changed" not in first and first["inputs_given"] == ["scans", "meds", "fractures"]
    assert first["accept_input_change"] is False
    second = run_screen(_without(paths, out, "2026-02-01", "meds", accept_input_change=True))
    assert second["inputs_given"] == ["scans", "fractures"] and second["accept_input_change"] is True
    assert second["inputs_changed"] == {"missing": ["meds"], "new": [], "previous_run_id": first["run_id"]}
    assert json.loads((out / "manifest.json").read_text())["inputs_changed"]["missing"] == ["meds"]
    (warning,) = input_change_warnings(second)
    assert "no medications export this time" in warning and first["run_id"] in warning
    third = screen_synthetic(paths, out, "2026-03-01")  # a kind given again is new: never refused
    assert third["inputs_changed"]["new"] == ["meds"]
    history = read_history(out)
    assert ["inputs_changed" in h for h in history] == [False, True, True]


def test_the_same_inputs_again_are_not_flagged(tmp_path):
    paths = write_synthetic(tmp_path, 60, seed=4)
    screen_synthetic(paths, tmp_path / "out", "2026-01-01")
    again = screen_synthetic(paths, tmp_path / "out", "2026-02-01")
    assert "inputs_changed" not in again and input_change_warnings(again) == []


def test_a_week_without_the_medications_export_is_refused_and_publishes_nothing(tmp_path):
    """The issue's case: before, exit 0 and every treated patient on the call list; now exit 3, before ingest."""
    paths = write_synthetic(tmp_path, 120, seed=5)
    out = tmp_path / "out"
    first = screen_synthetic(paths, out, "2026-01-01")
    before = _published_state(out)
    with pytest.raises(InputsMissing) as err:
        run_screen(_without(paths, out, "2026-01-08", "meds"))
    assert isinstance(err.value, RunRefused) and err.value.exit_code == 3 and err.value.missing == ["meds"]
    message = str(err.value)
    assert "\n" not in message and message.startswith("no medications export this time")
    assert first["run_id"] in message and "--accept-input-change" in message
    assert _published_state(out) == before
    refused = _refused_folder(out, first["run_id"])
    assert str(refused) in message
    assert [p.name for p in refused.iterdir()] == ["manifest.json"]  # refused before any input was read
    manifest = json.loads((refused / "manifest.json").read_text())
    assert (manifest["status"], manifest["refused_because"]) == ("rejected", "inputs_missing")
    assert manifest["inputs_given"] == ["scans", "fractures"] and manifest["inputs"] == []
    assert manifest["inputs_changed"] == {"missing": ["meds"], "new": [], "previous_run_id": first["run_id"]}
    assert manifest["as_of"] == "2026-01-08" and manifest["accept_input_change"] is False


def test_every_missing_kind_is_named_fractures_and_roster_too(tmp_path):
    paths = write_synthetic(tmp_path, 80, seed=6, roster=True)
    out = tmp_path / "out"
    first = screen_synthetic(paths, out, "2026-01-01")
    assert first["inputs_given"] == ["scans", "meds", "fractures", "population"]
    for dropped, named in (
        (("fractures",), "no fractures export this time"),
        (("population",), "no population roster export this time"),
        (("meds", "fractures", "population"), "no medications, fractures and population roster exports this time"),
    ):
        with pytest.raises(InputsMissing, match="^" + named) as err:
            run_screen(_without(paths, out, "2026-01-08", *dropped))
        assert err.value.missing == list(dropped)
        assert ("had one: without it " if len(dropped) == 1 else "had them: without them ") in str(err.value)
    assert json.loads((out / "manifest.json").read_text())["run_id"] == first["run_id"]
    assert len(read_history(out)) == 1


def test_accept_input_change_publishes_without_the_missing_export(tmp_path):
    paths = write_synthetic(tmp_path, 80, seed=7, roster=True)
    out = tmp_path / "out"
    screen_synthetic(paths, out, "2026-01-01")
    manifest = run_screen(_without(paths, out, "2026-01-08", "population", accept_input_change=True))
    assert manifest["status"] == "published" and manifest["inputs_changed"]["missing"] == ["population"]
    assert read_history(out)[-1]["inputs_changed"]["missing"] == ["population"]
    # the published run now has no roster: the next week without one is no change at all
    again = run_screen(_without(paths, out, "2026-01-15", "population"))
    assert "inputs_changed" not in again


def test_a_new_kind_of_input_is_not_refused(tmp_path):
    paths = write_synthetic(tmp_path, 60, seed=8, roster=True)
    out = tmp_path / "out"
    run_screen(_without(paths, out, "2026-01-01", "meds", "population"))
    manifest = screen_synthetic(paths, out, "2026-01-08")
    assert manifest["status"] == "published" and manifest["inputs_changed"]["new"] == ["meds", "population"]
    assert [w.split(" export")[0] for w in input_change_warnings(manifest)] == [
        "osteo: warning: a medications",
        "osteo: warning: a population roster",
    ]


def test_a_run_published_by_an_older_version_is_compared_by_its_input_entries(tmp_path):
    """Old forms: a manifest from before ``inputs_given`` (its ``inputs`` entries say what it read), and a
    kind this version does not know (a newer version's) that this run cannot give."""
    paths = write_synthetic(tmp_path, 60, seed=9)
    out = tmp_path / "out"
    first = screen_synthetic(paths, out, "2026-01-01")
    published = out / "current" / "manifest.json"
    old = {k: v for k, v in json.loads(published.read_text()).items() if k != "inputs_given"}
    published.write_text(json.dumps(old))
    with pytest.raises(InputsMissing, match="^no medications export this time"):
        run_screen(_without(paths, out, "2026-01-08", "meds"))
    published.write_text(json.dumps(old | {"inputs_given": [*first["inputs_given"], "vitals"]}))
    with pytest.raises(InputsMissing, match="^no vitals export this time") as err:
        screen_synthetic(paths, out, "2026-01-08")
    assert err.value.missing == ["vitals"]
    assert inputs_changed(["scans"], {"run_id": "R", "inputs": [{"input": "scans"}, {"input": "meds"}]}) == {
        "missing": ["meds"],
        "new": [],
        "previous_run_id": "R",
    }
    assert input_change_warnings({"inputs_changed": {"missing": ["vitals"], "new": [], "previous_run_id": "R"}})


def test_serve_takes_the_option_and_passes_it_to_each_scheduled_run():
    """``osteo serve`` is built from the screen's arguments; its runs get the request as a dict (asdict)."""
    common = ["--cron", "0 6 * * 1", "--scans", "scans.csv"]
    args = build_parser().parse_args(["serve", *common, "--accept-input-change"])
    assert asdict(screen_request(args))["accept_input_change"] is True
    assert asdict(screen_request(build_parser().parse_args(["serve", *common])))["accept_input_change"] is False
    # a deployment registered before the option existed: its parameters lack it, and it refuses
    old = {k: v for k, v in asdict(screen_request(args)).items() if k != "accept_input_change"}
    assert ScreenRequest(**old).accept_input_change is False


def test_osteo_screen_refuses_with_exit_3_and_one_line_then_accepts(tmp_path, capsys, prefect_engine):
    paths = write_synthetic(tmp_path, 60, seed=10)
    out = tmp_path / "out"
    first = screen_synthetic(paths, out, "2026-01-01")
    before = _published_state(out)
    args = ["screen", "--scans", str(paths["scans"]), "--fractures", str(paths["fractures"]), "--out", str(out)]
    args += ["--as-of", "2026-01-08"]
    assert main(args) == 3
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and err.startswith("osteo: no medications export this time")
    assert "--accept-input-change" in err
    patient_ids = pl.read_csv(paths["scans"]).get_column("patient_id").unique().to_list()
    assert not any(pid in err for pid in patient_ids)  # input kinds, never a cell of an input
    assert _published_state(out) == before
    assert main([*args, "--accept-input-change"]) == 0
    captured = capsys.readouterr()
    assert "osteo: warning: no medications export this time" in captured.err
    published = json.loads((out / "manifest.json").read_text())
    assert published["inputs_changed"]["missing"] == ["meds"] and published["accept_input_change"] is True
    assert published["lifecycle"]["base_run_id"] == first["run_id"]


def test_screen_help_documents_the_option(capsys):
    assert main(["screen", "--help"]) == 0
    assert "--accept-input-change" in capsys.readouterr().out


def test_a_scheduled_run_lacking_an_input_fails_and_publishes_nothing(tmp_path, prefect_engine):
    """As a served deployment runs it: the flow with the request as a dict of parameters."""
    from flows.screen import screen_dxa_registry

    paths = write_synthetic(tmp_path, 60, seed=11)
    out = tmp_path / "out"
    first = screen_synthetic(paths, out, "2026-01-01")
    parameters = asdict(_without(paths, out, "", "meds"))  # blank as-of: the day the run starts
    state = screen_dxa_registry(request=parameters, return_state=True)
    assert state.is_failed() and "no medications export this time" in (state.message or "")
    refusal = state.result(raise_on_failure=False)
    assert isinstance(refusal, InputsMissing) and refusal.missing == ["meds"]
    assert json.loads((out / "manifest.json").read_text())["run_id"] == first["run_id"]
    accepted = screen_dxa_registry(request=parameters | {"accept_input_change": True}, return_state=True)
    assert accepted.is_completed() and accepted.result()["inputs_changed"]["missing"] == ["meds"]
