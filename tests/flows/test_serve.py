"""Issue 28: scheduled screens that really run. One real Prefect server for the session, started by the README's
own command line (``prefect server start``, SQLite in a temporary PREFECT_HOME, a free loopback port). Every
run waited for here is created by that server's scheduler from a cron schedule; none is started by hand.

Before the fixes: with SQLAlchemy 2.1.9 (the lock's) the scheduler raised ``InvalidRequestError: Can't evaluate
bulk DML statement`` every minute and created no run; the schedule had no time zone (UTC); relative paths were
stored as typed; SIGTERM printed ``RuntimeWarning: coroutine 'Runner.astop' was never awaited`` and SIGINT did
not stop a served screen started as a shell's ``&`` starts it; the server started as the README said logged
``ERROR … Failed to send telemetry``; a run with a missing input failed with Prefect's generic
``Flow run encountered an exception`` message, and nothing told anyone.
"""

import datetime as dt
import hashlib
import http.server
import itertools
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import zoneinfo
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pytest
import yaml
from conftest import exam, write_scans_csv, write_synthetic

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
SECRET = "SECRET-PID-28"
RUN_WAIT = 150  # seconds: the next minute's run, started and finished (a busy 2-core machine)
STOP_WAIT = 10  # seconds: SIGTERM or SIGINT to exit (issue 28 §4)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(predicate, timeout: float, what) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what() if callable(what) else what}")
        time.sleep(0.5)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)


def _dies_with_this_process(ignore_sigint: bool = False):
    """``preexec_fn``: the child is killed when this test process dies, even by SIGKILL or a timeout's exit,
    so no server or served screen outlives the session (``flows.ephemeral``'s own guard); optionally it starts
    with SIGINT ignored, as a shell's ``&`` starts a command."""
    from flows import ephemeral

    parent, bound = os.getpid(), ephemeral._PRCTL is not None and threading.current_thread() is threading.main_thread()

    def prepare() -> None:
        if bound:
            ephemeral._die_with_parent(parent)
        if ignore_sigint:
            signal.signal(signal.SIGINT, signal.SIG_IGN)

    return prepare


def _clean_env(home: Path) -> dict[str, str]:
    """This machine's environment without any Prefect or osteo setting (the test session sets some), so that
    only what the README says is in force."""
    drop = ("PREFECT_", "OSTEO_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop) and k != "DO_NOT_TRACK"}
    return env | {"PREFECT_HOME": str(home)}


# ---- the README's commands, as written ----------------------------------------------------------------------


def _analysts_section() -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index("## For analysts: scheduled screens\n")
    return text[start : text.index("\n## ", start + 1)]


def _readme_command(containing: str) -> list[str]:
    """The analysts' section's command holding ``containing``: continuation lines joined, the comment and a
    trailing ``&`` dropped, split as a shell (or systemd) splits it."""
    lines = _analysts_section().splitlines()
    for i, line in enumerate(lines):
        if containing in line:
            command = line
            while command.rstrip().endswith("\\"):
                i += 1
                command = command.rstrip()[:-1] + " " + lines[i].strip()
            tokens = shlex.split(command, comments=True)
            return tokens[:-1] if tokens[-1] == "&" else tokens
    pytest.fail(f"README 'For analysts: scheduled screens' has no command with {containing!r}")


def _split_assignments(tokens: list[str]) -> tuple[dict[str, str], list[str]]:
    """``NAME=value command …`` → ({NAME: value}, [command, …])."""
    env = {}
    while re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", tokens[0]):
        name, value = tokens.pop(0).split("=", 1)
        env[name] = value
    return env, tokens


def _substitute(tokens: list[str], replacements: dict[str, str]) -> list[str]:
    """Each README value replaced by the test's (each must occur: the README's command keeps its shape)."""
    for old in replacements:
        assert any(old in t for t in tokens), f"the README's command {tokens} no longer holds {old!r}"
    out = []
    for token in tokens:
        for old, new in replacements.items():
            token = token.replace(old, new)
        out.append(token)
    return out


def _program(tokens: list[str]) -> list[str]:
    """``.venv/bin/prefect`` or ``prefect`` (or osteo): this test environment's."""
    return [str(BIN / Path(tokens[0]).name), *tokens[1:]]


# ---- the shared server ------------------------------------------------------------------------------------


@dataclass
class Server:
    api: str
    env: dict[str, str]  # for its clients: PREFECT_API_URL set
    log: Path

    def call(self, method: str, path: str, body: dict | None = None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.api}{path}", data=data, method=method, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read() or b"null")

    def runs(self, deployment: str) -> list[dict]:
        return self.call(
            "POST",
            "/flow_runs/filter",
            {"deployments": {"name": {"any_": [deployment]}}, "sort": "EXPECTED_START_TIME_ASC", "limit": 50},
        )

    def deployment(self, name: str) -> dict:
        return self.call("GET", f"/deployments/name/screen-dxa-registry/{name}")

    def log_lines(self, pattern: str) -> list[str]:
        return [line for line in self.log.read_text(errors="replace").splitlines() if re.search(pattern, line)]

    def first_ended_run(self, deployment: str, *processes: "Process") -> dict:
        """The first run of ``deployment`` to reach a final state; fails, saying what the server and the
        processes reported, if none does in ``RUN_WAIT`` seconds."""
        found: list[dict] = []

        def ended() -> bool:
            for process in processes:
                process.alive()
            found[:] = [r for r in self.runs(deployment) if r["state_type"] in FINAL]
            return bool(found)

        def why() -> str:
            runs = [(r["name"], r["state_type"], r["auto_scheduled"]) for r in self.runs(deployment)]
            scheduler = self.log_lines(r"Error scheduling|InvalidRequestError|ERROR")[-5:]
            said = "".join(p.tail() for p in processes)
            return f"a run of {deployment} to end; runs: {runs}; server log: {scheduler}{said}"

        _wait(ended, RUN_WAIT, why)
        return found[0]


def _healthy(api: str) -> bool:
    try:
        with urllib.request.urlopen(f"{api}/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    """``prefect server start`` exactly as the README writes it (its environment assignments included), on a
    free port, with a temporary PREFECT_HOME and its output in ``server.log``."""
    home = tmp_path_factory.mktemp("prefect-server")
    port = _free_port()
    env, command = _split_assignments(_readme_command("prefect server start"))
    command = _program(_substitute(command, {"4200": str(port)}))
    assert command[1:3] == ["server", "start"], command
    log = home / "server.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            command,
            env=_clean_env(home) | env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            cwd=home,
            start_new_session=True,
            preexec_fn=_dies_with_this_process(),
        )
    api = f"http://127.0.0.1:{port}/api"
    try:
        _wait(lambda: process.poll() is not None or _healthy(api), 180, "the Prefect server to answer")
        assert process.poll() is None, log.read_text(errors="replace")[-3000:]
        yield Server(api=api, env=_clean_env(home) | {"PREFECT_API_URL": api}, log=log)
    finally:
        _stop(process)


def _assert_no_error_logged(server: Server) -> None:
    """A normal server start (and its scheduling and runs since) logs no ERROR line."""
    text = server.log.read_text(errors="replace")
    found = re.search(r"^.*\bERROR\b.*$", text, re.M)
    assert found is None, text[found.start() : found.start() + 3000] if found else ""


# ---- processes a test starts ------------------------------------------------------------------------------


class Process:
    """A process with its stdout and stderr in files (no pipe to fill), in its own process group."""

    def __init__(self, command: list[str], *, env: dict[str, str], cwd: Path, logs: Path, ignore_sigint=False):
        logs.mkdir(parents=True, exist_ok=True)
        self.command, self.out, self.err = command, logs / "stdout", logs / "stderr"
        with self.out.open("wb") as out, self.err.open("wb") as err:
            self.proc = subprocess.Popen(
                command,
                env=env,
                cwd=cwd,
                stdout=out,
                stderr=err,
                start_new_session=True,
                preexec_fn=_dies_with_this_process(ignore_sigint),
            )

    def stdout(self) -> str:
        return self.out.read_text(errors="replace")

    def stderr(self) -> str:
        return self.err.read_text(errors="replace")

    def tail(self) -> str:
        return f"\n{Path(self.command[0]).name} stderr: {self.stderr()[-2000:]}"

    def alive(self) -> None:
        if self.proc.poll() is not None:
            pytest.fail(f"{' '.join(self.command[:2])} exited {self.proc.returncode}:{self.tail()}")

    def wait_for(self, text: str, timeout: float = 120) -> str:
        def printed() -> bool:
            self.alive()
            return text in self.stdout()

        _wait(printed, timeout, lambda: f"{text!r} on stdout of {self.command[:2]}{self.tail()}")
        return self.stdout()

    def stop(self) -> None:
        _stop(self.proc)


def _osteo_serve(server: Server, folder: Path, arguments: list[str], env: dict[str, str] | None = None) -> Process:
    return Process(
        [str(BIN / "osteo"), "serve", *arguments],
        env=server.env | (env or {}),
        cwd=folder,
        logs=folder / "serve-logs",
    )


SERVING = "serving until stopped"


# ---- time zones -------------------------------------------------------------------------------------------


def _today(zone: str) -> str:
    return dt.datetime.now(zoneinfo.ZoneInfo(zone)).date().isoformat()


def _zone_on_another_day() -> str:
    """UTC+14 or UTC-11, whichever is on another date than this machine now (one always is): a run's as-of
    date in it is not this machine's today."""
    local = dt.date.today().isoformat()
    zones = ["Pacific/Kiritimati", "Pacific/Pago_Pago"]
    return next(z for z in zones if _today(z) != local)


def _run_logs(server: Server, run_id: str) -> str:
    logs = server.call("POST", "/logs/filter", {"logs": {"flow_run_id": {"any_": [run_id]}}, "limit": 200})
    return "\n".join(log["message"] for log in logs)


# ---- the tests ----------------------------------------------------------------------------------------------


def test_the_servers_scheduler_runs_the_served_screen_as_of_its_day_in_the_time_zone(server, tmp_path):
    """``osteo serve`` with relative paths and a time zone; the server's scheduler creates the run, which
    completes and publishes as of today in that zone. The server, started as the README says, logs no ERROR."""
    zone = _zone_on_another_day()
    write_scans_csv(tmp_path / "scans.csv", [exam(patient_id=SECRET, femoral_neck_t="-2.7")])
    days = {_today(zone)}
    name = "every-minute"
    served = _osteo_serve(
        server,
        tmp_path,
        ["--cron", "* * * * *", "--timezone", zone, "--name", name, "--scans", "scans.csv", "--out", "out"],
    )
    try:
        printed = served.wait_for(SERVING)
        run = server.first_ended_run(name, served)
        days.add(_today(zone))
    finally:
        served.stop()
    assert run["auto_scheduled"] and run["created_by"]["type"] == "SCHEDULE", run  # the scheduler's, not by hand
    assert run["state_type"] == "COMPLETED", f"{run['state']['message']}{served.tail()}"
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["status"] == "published" and manifest["as_of"] in days, (manifest["as_of"], days)
    assert run["name"] == f"screen {manifest['as_of']} standard"

    deployment = server.deployment(name)
    assert [s["schedule"]["timezone"] for s in deployment["schedules"]] == [zone]
    request = deployment["parameters"]["request"]
    assert request["scans"] == [str(tmp_path / "scans.csv")] and request["out"] == str(tmp_path / "out")
    offset = dt.datetime.now(zoneinfo.ZoneInfo(zone)).strftime("%z")
    times = re.findall(rf"^  \w{{3}} (\d{{4}}-\d\d-\d\d \d\d:\d\d) \S+ \({offset[:3]}:{offset[3:]}\)$", printed, re.M)
    assert f"cron '* * * * *' in {zone}; next runs:" in printed and len(times) == 3, printed
    minutes = [dt.datetime.fromisoformat(t) for t in times]
    assert [b - a for a, b in itertools.pairwise(minutes)] == [dt.timedelta(minutes=1)] * 2
    assert SECRET not in _run_logs(server, run["id"]) + json.dumps(run)
    _assert_no_error_logged(server)


def test_a_served_omop_screen_reads_its_postgresql_cdm_on_the_schedulers_run(server, postgres_server, tmp_path):
    """Issue 31: ``osteo serve --omop postgresql://…`` (the URL kept as given, not made a path; the credentials only
    in the served process's environment, as PGUSER and PGPASSWORD): the scheduler's run reads the Eunomia CDM from
    the real PostgreSQL server and publishes as of its own day (a served screen's as-of date is the day it runs,
    the CDM's release date being the data's: the summary says how far past it)."""
    zone = _zone_on_another_day()
    days = {_today(zone)}
    name = "omop-every-minute"
    url = postgres_server.url()
    arguments = ["--cron", "* * * * *", "--timezone", zone, "--name", name, "--omop", url, "--omop-schema", "cdm"]
    arguments += ["--profile", "omop_unsited_t", "--out", "out"]
    served = _osteo_serve(server, tmp_path, arguments, env=postgres_server.environment())
    try:
        served.wait_for(SERVING)
        run = server.first_ended_run(name, served)
        days.add(_today(zone))
    finally:
        served.stop()
    assert run["auto_scheduled"] and run["created_by"]["type"] == "SCHEDULE", run
    assert run["state_type"] == "COMPLETED", f"{run['state']['message']}{served.tail()}"
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["status"] == "published" and manifest["as_of"] in days, (manifest["as_of"], days)
    assert manifest["omop"]["source"] == url and manifest["omop"]["release_date"] == "2022-10-10"
    assert manifest["omop"]["tables"]["measurement"] == {
        "rows": 10_040,
        "read": 3,
        "not_read": {"not_a_dxa_result": 10_037, "person_not_in_person_table": 0},
        "file": "omop/scans/measurement.parquet",
        "quarantined": 0,
    }
    screening = pl.read_parquet(tmp_path / "out" / "screening.parquet")
    assert screening.height == 3 and set(screening.get_column("lowest_t_site")) == {"unspecified"}
    request = server.deployment(name)["parameters"]["request"]
    assert request["omop"] == url and request["out"] == str(tmp_path / "out")  # the URL as given, the path absolute
    stored = json.dumps(server.deployment(name)) + _run_logs(server, run["id"]) + json.dumps(run)
    assert postgres_server.password not in stored and "PGPASSWORD" not in stored


def test_the_work_pool_deployment_runs_on_its_schedule_with_a_process_worker(server, tmp_path):
    """``flows/prefect.yaml`` deployed and worked as the README says (pool, deploy, worker), with the test's
    paths, a schedule every minute and a time zone: the scheduler's run completes and publishes."""
    zone = _zone_on_another_day()
    scans = write_scans_csv(tmp_path / "scans.csv", [exam(femoral_neck_t="-2.7")])
    spec = yaml.safe_load((ROOT / "flows" / "prefect.yaml").read_text())
    (deployment,) = spec["deployments"]
    (schedule,) = deployment["schedules"]
    assert deployment["parameters"]["timezone"] == schedule["timezone"]  # one zone for both (a YAML anchor)
    schedule.update(cron="* * * * *", timezone=zone)
    deployment["parameters"]["timezone"] = zone
    request = deployment["parameters"]["request"]
    request.update(scans=[str(scans)], out=str(tmp_path / "out"), meds=None, fractures=None)
    spec_file = tmp_path / "prefect.yaml"
    spec_file.write_text(yaml.safe_dump(spec))

    replace = {"$PWD": str(ROOT), "flows/prefect.yaml": str(spec_file)}
    for containing in ("prefect work-pool create", "prefect deploy"):
        env, command = _split_assignments(_readme_command(containing))
        env = {k: v.replace("$PWD", str(ROOT)) for k, v in env.items()}
        command = _program(_substitute(command, {k: v for k, v in replace.items() if k in " ".join(command)}))
        done = subprocess.run(command, env=server.env | env, cwd=ROOT, capture_output=True, text=True, timeout=180)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    env, command = _split_assignments(_readme_command("prefect worker start"))
    env = {k: v.replace("$PWD", str(ROOT)) for k, v in env.items()}
    worker = Process(_program(command), env=server.env | env, cwd=tmp_path, logs=tmp_path / "worker-logs")
    days = {_today(zone)}
    try:
        run = server.first_ended_run(deployment["name"], worker)
        days.add(_today(zone))
    finally:
        worker.stop()
    assert run["auto_scheduled"] and run["created_by"]["type"] == "SCHEDULE", run
    assert run["state_type"] == "COMPLETED", f"{run['state']['message']}{worker.tail()}"
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["status"] == "published" and manifest["as_of"] in days, (manifest["as_of"], days)
    _assert_no_error_logged(server)


class _Webhook(http.server.ThreadingHTTPServer):
    """A loopback webhook that keeps what is posted to it."""

    def __init__(self):
        received: list[str] = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - the http.server API
                received.append(self.rfile.read(int(self.headers.get("Content-Length", 0))).decode())
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        self.received = received
        self.url = f"http://127.0.0.1:{self.server_address[1]}/osteo-hook"
        threading.Thread(target=self.serve_forever, daemon=True).start()


def _published(out: Path) -> dict:
    """What a reader of ``out`` sees: the current run, its files' digests and the history."""
    current = (out / "current").resolve()
    files = {
        str(p.relative_to(current)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in current.rglob("*")
        if p.is_file()
    }
    return {"current": os.readlink(out / "current"), "files": files, "history": (out / "history.jsonl").read_text()}


def test_a_scheduled_run_whose_input_went_missing_ends_failed_naming_it_and_someone_is_notified(server, tmp_path):
    """Registered with its files present (relative paths; the machine's time zone by default), then the
    medications export goes missing: the scheduler's run ends Failed with one line naming the file (absolute),
    and the published outputs stay as they were. The README's command sets up the automation, which posts that
    line to a webhook when a run of the deployment fails."""
    from osteo_core.pipeline.stages import ScreenRequest, run_screen

    paths = write_synthetic(tmp_path, 30, seed=28)
    out = tmp_path / "out"
    last_week = (dt.date.today() - dt.timedelta(days=7)).isoformat()
    run_screen(
        ScreenRequest(
            scans=[str(paths["scans"])],
            meds=str(paths["meds"]),
            fractures=str(paths["fractures"]),
            out=str(out),
            as_of=last_week,
        )
    )
    before = _published(out)
    patient_ids = pl.read_csv(paths["scans"]).get_column("patient_id").unique().to_list()
    webhook = _Webhook()
    name = "missing-input"
    arguments = ["--cron", "* * * * *", "--name", name, "--scans", "scans.csv", "--meds", "meds.csv"]
    served = _osteo_serve(server, tmp_path, [*arguments, "--fractures", "fx.csv", "--out", "out"], {"TZ": "Asia/Tokyo"})
    try:
        printed = served.wait_for(SERVING)
        paths["meds"].unlink()  # the upstream export job failed
        _, notify = _split_assignments(_readme_command("-m flows.notify"))
        notify = _program(_substitute(notify, {"/weekly": f"/{name}", _readme_webhook(notify): webhook.url}))
        done = subprocess.run(notify, env=server.env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
        run = server.first_ended_run(name, served)
        automations = server.call("POST", "/automations/filter", {})
        assert [a["name"] for a in automations] == [f"osteo: screen-dxa-registry/{name} failed"], automations
        # a run started less than 5 minutes after the scheduler created it (as here) reaches Prefect 3.8.8's
        # automations ~15 minutes late (its events follow a Scheduled event the scheduler never sends; a weekly
        # run, created days before, is not held): the automation is shown to post with a run started by hand
        trigger = [str(BIN / "prefect"), "deployment", "run", f"screen-dxa-registry/{name}"]
        subprocess.run(trigger, env=server.env, capture_output=True, check=True, timeout=120)
        _wait(lambda: webhook.received, RUN_WAIT, "the failure's notification on the webhook")
    finally:
        served.stop()
        webhook.shutdown()
    assert "in Asia/Tokyo; next runs:" in printed  # the machine's zone (TZ) when --timezone is not given
    assert server.deployment(name)["schedules"][0]["schedule"]["timezone"] == "Asia/Tokyo"
    assert run["auto_scheduled"] and run["state_type"] == "FAILED", run
    message = run["state"]["message"]
    assert message == f"{paths['meds']}: file not found", message  # one line, the absolute path as registered
    assert _published(out) == before
    notification = json.loads(webhook.received[0])["text"]
    assert f"{paths['meds']}: file not found" in notification and "Failed" in notification, notification
    said = json.dumps(run) + notification + _run_logs(server, run["id"]) + served.stdout() + served.stderr()
    assert not [pid for pid in patient_ids if pid in said]


def _readme_webhook(tokens: list[str]) -> str:
    return tokens[tokens.index("--webhook") + 1]


def _systemd_unit() -> dict[str, list[str]]:
    """The README's systemd unit: each key's values, continuation lines joined."""
    block = _analysts_section().split("```ini\n", 1)[1].split("```", 1)[0]
    unit: dict[str, list[str]] = {}
    for line in block.replace("\\\n", " ").splitlines():
        if "=" in line and not line.startswith(("[", "#")):
            key, value = line.split("=", 1)
            unit.setdefault(key.strip(), []).append(value.strip())
    return unit


@pytest.mark.parametrize(
    "stop_signal",
    [signal.SIGTERM, signal.SIGINT],
    ids=["SIGTERM as systemd stops it", "SIGINT to a serve started in the background (SIGINT ignored)"],
)
def test_the_readme_systemd_service_prints_its_next_runs_and_stops_cleanly(server, tmp_path, stop_signal):
    """The unit's ``ExecStart`` as the README writes it (the test's paths and deployment name substituted), in
    its ``Environment``: it prints the next three Mondays 06:00 in New York, stores that zone, and exits 0 within
    10 s of SIGTERM or SIGINT with nothing on stderr."""
    exports = tmp_path / "exports"
    exports.mkdir()
    paths = write_synthetic(exports, 20, seed=29)
    (exports / "scans").mkdir()
    paths["scans"].rename(exports / "scans" / "scans.csv")
    work = tmp_path / "workdir"
    work.mkdir()
    unit = _systemd_unit()
    (exec_start,) = unit["ExecStart"]
    name = f"systemd-{stop_signal.name.lower()}"
    command = _program(
        _substitute(
            shlex.split(exec_start),
            {
                "/data/exports/scans/": f"{exports}/scans/",
                "/data/exports/medications.csv": str(paths["meds"]),
                "/data/exports/fractures.csv": str(paths["fractures"]),
                "/data/osteo": str(tmp_path / "out"),
                "weekly": name,
            },
        )
    )
    env = dict(value.split("=", 1) for value in unit["Environment"])
    assert set(env) == {"PREFECT_API_URL"}, env
    ignore_sigint = stop_signal == signal.SIGINT
    served = Process(command, env=server.env, cwd=work, logs=tmp_path / "serve-logs", ignore_sigint=ignore_sigint)
    try:
        printed = served.wait_for(SERVING)
        os.kill(served.proc.pid, stop_signal)
        try:
            code = served.proc.wait(timeout=STOP_WAIT)
        except subprocess.TimeoutExpired:
            pytest.fail(f"osteo serve still running {STOP_WAIT} s after {stop_signal.name}{served.tail()}")
    finally:
        served.stop()
    assert code == 0, served.tail()
    assert served.stderr() == ""  # no RuntimeWarning, no traceback, no log line
    mondays = re.findall(r"^  Mon (\d{4}-\d\d-\d\d) 06:00 E[SD]T \(-0[45]:00\)$", printed, re.M)
    assert "cron '0 6 * * 1' in America/New_York; next runs:" in printed and len(mondays) == 3, printed
    deployment = server.deployment(name)
    assert deployment["schedules"][0]["schedule"] == {
        "cron": "0 6 * * 1",
        "timezone": "America/New_York",
        "day_or": True,
    }
    assert deployment["parameters"]["request"]["scans"] == [str(exports / "scans")]


def test_a_run_in_flight_when_serve_is_stopped_is_cancelled_publishes_nothing_and_serve_exits_0(server, tmp_path):
    """SIGTERM while a screen runs: Prefect cancels the run, its process is killed if it has not ended 2.5 s
    later (Prefect 3.8.8 would wait up to 30 s for a partition to finish), and ``osteo serve`` exits 0 in time."""
    paths = write_synthetic(tmp_path, 5000, seed=30)
    name = "stopped-mid-run"
    arguments = ["--cron", "0 6 1 1 *", "--name", name, "--scans", "scans.csv", "--meds", "meds.csv"]
    served = _osteo_serve(server, tmp_path, [*arguments, "--fractures", paths["fractures"].name, "--out", "out"])
    try:
        served.wait_for(SERVING)
        trigger = [str(BIN / "prefect"), "deployment", "run", f"screen-dxa-registry/{name}"]
        subprocess.run(trigger, env=server.env, capture_output=True, check=True, timeout=120)
        _wait(lambda: any(r["state_type"] == "RUNNING" for r in server.runs(name)), 120, "the run to start")
        os.kill(served.proc.pid, signal.SIGTERM)
        try:
            code = served.proc.wait(timeout=STOP_WAIT)
        except subprocess.TimeoutExpired:
            pytest.fail(f"osteo serve still running {STOP_WAIT} s after SIGTERM with a run in flight{served.tail()}")
    finally:
        served.stop()
    assert code == 0, served.tail()
    assert "Warning" not in served.stderr() and "Traceback" not in served.stderr(), served.stderr()
    (run,) = [r for r in server.runs(name) if not r["auto_scheduled"]]  # the one started by hand
    assert run["state_type"] == "CANCELLED", run["state"]
    assert not (tmp_path / "out" / "manifest.json").exists()


@pytest.mark.parametrize(
    "option, value, says",
    [
        ("--cron", "61 * * * *", "--cron: '61 * * * *' is not a cron expression"),
        ("--cron", "every monday", "--cron: 'every monday' is not a cron expression"),
        ("--timezone", "Mars/Olympus_Mons", "--timezone: 'Mars/Olympus_Mons' is not an IANA time zone name"),
        ("--timezone", "+05:00", "--timezone: '+05:00' is not an IANA time zone name"),
        ("--scans", "gone.csv", "{tmp}/gone.csv: file not found"),
    ],
)
def test_a_bad_schedule_or_path_is_exit_2_in_one_line_before_anything_is_registered(
    tmp_path, capsys, monkeypatch, option, value, says
):
    """Said before the server is asked anything (nothing listens at the API address here); a relative path is
    named absolute, as it would have been registered."""
    from osteo_core.cli import main

    write_scans_csv(tmp_path / "scans.csv", [exam()])
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PREFECT_API_URL", f"http://127.0.0.1:{_free_port()}/api")
    arguments = {"--cron": "0 6 * * 1", "--timezone": "Europe/Paris", "--scans": "scans.csv"} | {option: value}
    argv = ["serve", "--name", "never", "--out", "out", *(x for pair in arguments.items() for x in pair)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"osteo: {says.format(tmp=tmp_path)}") and len(err.strip().splitlines()) == 1, err


def test_the_notify_command_refuses_a_bad_webhook_or_no_server_in_one_line(capsys, monkeypatch):
    from flows.notify import main

    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    assert main(["--deployment", "screen-dxa-registry/weekly", "--webhook", "https://hooks.example.org/x"]) == 2
    assert capsys.readouterr().err == "flows.notify: PREFECT_API_URL: set it to the Prefect server of the deployment\n"
    monkeypatch.setenv("PREFECT_API_URL", f"http://127.0.0.1:{_free_port()}/api")  # nothing is asked of it
    assert main(["--deployment", "screen-dxa-registry/weekly", "--webhook", "hooks.example.org/x"]) == 2
    assert capsys.readouterr().err == "flows.notify: --webhook: 'hooks.example.org/x' is not an http(s) URL\n"


def test_no_prefect_server_at_the_address_is_exit_1_in_one_line(tmp_path):
    """Before: httpx's ConnectError and a traceback. (A process of its own: in this one, a test harness's Prefect
    settings may win over PREFECT_API_URL.)"""
    write_scans_csv(tmp_path / "scans.csv", [exam()])
    api = f"http://127.0.0.1:{_free_port()}/api"  # nothing listens there
    command = [str(BIN / "osteo"), "serve", "--cron", "0 6 * * 1", "--timezone", "Europe/Paris", "--scans", "scans.csv"]
    env = _clean_env(tmp_path / "home") | {"PREFECT_API_URL": api}
    done = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr
    assert done.stderr.startswith(f"osteo: could not register the deployment on the Prefect server at {api} (")
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
