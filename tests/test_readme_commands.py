"""Issue 32 §4: the README and the guides under docs/guides/ say only what runs.

Every fenced block whose info string is ``sh runnable`` runs as written, as one ``bash`` script (``set -euo
pipefail``, so a variable set by one line serves the next), from a folder laid out as the repository root after
``make demo``: links to the clone's ``.venv``, ``.tools``, ``data``, ``flows``, ``notebooks`` and ``docs``, and a
fresh copy of a demo screen in ``osteo-demo`` (made once per session, with fewer patients than ``make demo``
makes). Each block runs on its own, in a folder of its own, in this machine's environment without any Prefect or
osteo setting but ``PREFECT_API_URL``: it must exit 0 with no traceback on stderr.

Prefect: every block runs against the session's Prefect server (tests/prefect_server.py, started by the line
the analysts' guide gives), as docs/guides/operations.md says a user may keep one, so that the screens in the
blocks do not each start a temporary server (about two thirds of a sample's screen time, measured on 2 cores;
that way is tested by tests/test_cli.py).
A block's own ``prefect server start`` is that server, on its port; ``osteo serve`` is started, must print
``serving until stopped``, and must exit 0 on SIGTERM.

Also: the README is at most 200 lines, every relative link in it and in the guides reaches a file (and a heading,
when it names one), and the blocks follow the convention (``.venv/bin/osteo``, never a bare ``osteo``).
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from prefect_server import BIN, ROOT, clean_env, dies_with_this_process

README = ROOT / "README.md"
GUIDES = sorted((ROOT / "docs" / "guides").glob("*.md"))
PAGES = [README, *GUIDES]
RUNNABLE = "sh runnable"
DEMO_PATIENTS = "1000"  # make demo screens 10,000; the commands need a demo screen, not its size
LINKED = (".venv", ".tools", "data", "flows", "notebooks", "docs")  # what the blocks may read from the clone
BLOCK_TIMEOUT = 600  # seconds, a whole block (the longest takes ~15 s on a busy 2-core machine)
SERVING = "serving until stopped"
SERVER_LINE = re.compile(r"\bprefect server start\b")
SERVE_LINE = re.compile(r"^(?:[A-Z_][A-Z0-9_]*=\S*\s+)*\S*\bosteo serve\b")


@dataclass(frozen=True)
class Block:
    page: Path
    line: int  # of the opening fence, 1-based
    info: str
    text: str

    @property
    def name(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def fenced_blocks(page: Path) -> list[Block]:
    """Every fenced code block of a Markdown page (fences at the start of a line)."""
    found, opened, info, body = [], None, "", []
    for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1):
        if opened is None:
            if line.startswith("```"):
                opened, info, body = number, line[3:].strip(), []
        elif line.startswith("```"):
            found.append(Block(page, opened, info, "\n".join(body) + "\n"))
            opened = None
        else:
            body.append(line)
    assert opened is None, f"{page.relative_to(ROOT)}:{opened}: a code block is never closed"
    return found


def runnable_blocks() -> list[Block]:
    return [b for page in PAGES for b in fenced_blocks(page) if b.info == RUNNABLE]


def logical_lines(text: str) -> list[tuple[int, str]]:
    """(index of the first physical line, the command with its continuation lines joined), blanks and comments
    left out."""
    lines, out, i = text.splitlines(), [], 0
    while i < len(lines):
        start, command = i, lines[i]
        while command.rstrip().endswith("\\") and i + 1 < len(lines):
            i += 1
            command = command.rstrip()[:-1] + " " + lines[i].strip()
        if command.strip() and not command.lstrip().startswith("#"):
            out.append((start, command))
        i += 1
    return out


# ---- running a block ------------------------------------------------------------------------------------------

# ``osteo serve`` as a test runs a service: started, its banner awaited, then SIGTERM; it must exit 0 in time
SERVE_FUNCTION = f"""
_serve() {{
  local out err pid i code
  out=$(mktemp) err=$(mktemp)
  "$@" > "$out" 2> "$err" &
  pid=$!
  for i in $(seq 1 300); do
    grep -q "{SERVING}" "$out" && break
    if ! kill -0 "$pid" 2> /dev/null; then break; fi
    sleep 1
  done
  if ! grep -q "{SERVING}" "$out"; then
    cat "$out"; cat "$err" >&2; kill -KILL "$pid" 2> /dev/null || true
    echo "_serve: $1 never printed '{SERVING}'" >&2; return 1
  fi
  kill -TERM "$pid"
  for i in $(seq 1 60); do kill -0 "$pid" 2> /dev/null || break; sleep 0.5; done
  if kill -0 "$pid" 2> /dev/null; then kill -KILL "$pid"; echo "_serve: still running 30 s after SIGTERM" >&2; fi
  code=0; wait "$pid" || code=$?
  cat "$out"; cat "$err" >&2
  [ "$code" = 0 ] || {{ echo "_serve: exit $code after SIGTERM" >&2; return 1; }}
}}
"""


def script(block: Block, server) -> str:
    """The block as the test runs it: services handled as the module says, every other line as written."""
    lines = block.text.splitlines()
    for start, command in logical_lines(block.text):
        if SERVER_LINE.search(command):
            written = shlex.split(command, comments=True)
            written = written[:-1] if written[-1] == "&" else written
            assert written == server.command, f"{block.name}: not the server the guide's section starts: {written}"
            end = start
            while lines[end].rstrip().endswith("\\"):
                end += 1
            lines[start : end + 1] = [": the session Prefect server"] + [""] * (end - start)
        elif SERVE_LINE.search(command):
            lines[start] = "_serve " + lines[start]
    text = "\n".join(lines) + "\n"
    if any(SERVER_LINE.search(c) for _, c in logical_lines(block.text)):
        assert ":4200" in text, f"{block.name}: starts a Prefect server but never names its port"
        text = text.replace(":4200", f":{server.port}")
    return "set -euo pipefail\n" + SERVE_FUNCTION + text


@pytest.fixture(scope="session")
def demo_screen(tmp_path_factory, prefect_server) -> Path:
    """``osteo demo`` as ``make demo`` runs it, with fewer patients."""
    folder = tmp_path_factory.mktemp("readme-demo")
    command = [str(BIN / "osteo"), "demo", "--patients", DEMO_PATIENTS, "--out", "osteo-demo"]
    done = subprocess.run(
        command, cwd=folder, env=prefect_server.env, capture_output=True, text=True, timeout=BLOCK_TIMEOUT
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return folder / "osteo-demo"


def clone_after_demo(folder: Path, demo: Path) -> Path:
    """A folder laid out as the clone's root after ``make demo``."""
    folder.mkdir()
    for name in LINKED:
        (folder / name).symlink_to(ROOT / name)
    shutil.copytree(demo, folder / "osteo-demo", symlinks=True)
    return folder


@pytest.mark.parametrize("block", runnable_blocks(), ids=lambda b: b.name)
def test_a_runnable_block_runs_as_written_after_make_demo(block, demo_screen, prefect_server, tmp_path):
    work = clone_after_demo(tmp_path / "clone", demo_screen)
    shell = subprocess.Popen(
        ["bash", "-c", script(block, prefect_server)],
        cwd=work,
        env=prefect_server.env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # the block's processes in one group, all stopped below (a served screen too)
        preexec_fn=dies_with_this_process(),
    )
    try:
        stdout, stderr = shell.communicate(timeout=BLOCK_TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{block.name} still running after {BLOCK_TIMEOUT} s")
    finally:
        with contextlib.suppress(ProcessLookupError):  # whatever the block left running
            os.killpg(shell.pid, signal.SIGKILL)
        shell.wait()
    said = f"\n--- stdout\n{stdout[-3000:]}\n--- stderr\n{stderr[-3000:]}"
    assert shell.returncode == 0, f"{block.name} exited {shell.returncode}:{said}"
    assert "Traceback" not in stderr, f"{block.name}:{said}"
    if any(SERVE_LINE.search(c) for _, c in logical_lines(block.text)):
        assert SERVING in stdout, said


def test_a_reader_without_out_says_where_the_demo_is_as_the_readme_says(demo_screen, tmp_path):
    work = clone_after_demo(tmp_path / "clone", demo_screen)
    said = re.search(r"when only the demo's folder holds a screen they say so \(`([^`]+)`\)", _flat(README))
    assert said, "the README no longer says what a command without --out says"
    done = subprocess.run(
        [str(BIN / "osteo"), "gaps"], cwd=work, env=clean_env(tmp_path / "home"), capture_output=True, text=True
    )
    assert done.returncode == 2 and said.group(1) in done.stderr, done.stderr


# ---- the pages themselves -----------------------------------------------------------------------------------


def _flat(page: Path) -> str:
    return " ".join(page.read_text(encoding="utf-8").split())


def test_the_readme_is_read_in_five_minutes():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 200, f"README.md has {len(lines)} lines"


def test_every_runnable_block_is_marked_alike_and_uses_the_projects_commands():
    """``sh runnable`` exactly (a typo would leave a block untested), and ``.venv/bin/osteo``, not a bare
    ``osteo`` that only an activated environment finds."""
    blocks = runnable_blocks()
    assert [b for b in blocks if b.page == README], "the README has no runnable block"
    for page in PAGES:
        for block in fenced_blocks(page):
            assert "runnable" not in block.info or block.info == RUNNABLE, f"{block.name}: ```{block.info}"
    for block in blocks:
        assert logical_lines(block.text), f"{block.name}: an empty runnable block"
        for _, command in logical_lines(block.text):
            words = shlex.split(command, comments=True)
            words = [w for w in words if not re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", w)] or ["export"]
            assert words[0] not in {"osteo", "prefect", "python", "uv"}, f"{block.name}: {command}"
            assert "/data/" not in command, f"{block.name}: a real export's path in a runnable block: {command}"


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    found: dict[str, int] = {}
    anchors = set()
    in_code = False
    for line in page.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            in_code = not in_code
        elif not in_code and (heading := re.match(r"#{1,6} (.+)", line)):
            slug = _slug(heading.group(1))
            anchors.add(slug if slug not in found else f"{slug}-{found[slug]}")
            found[slug] = found.get(slug, 0) + 1
    return anchors


def test_every_relative_link_reaches_a_file_and_its_heading():
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for target, anchor in re.findall(r"\]\(([^)#:\s]*)(?:#([^)\s]*))?\)", text):
            linked = (page.parent / target).resolve() if target else page
            assert linked.exists(), f"{page.relative_to(ROOT)} links to missing {target}"
            if anchor and linked.suffix == ".md":
                assert anchor in _anchors(linked), f"{page.relative_to(ROOT)} links to {target}#{anchor}: no heading"


def test_every_guide_is_in_the_readme_and_the_docs_index():
    index = (ROOT / "docs" / "README.md").read_text(encoding="utf-8")
    readme = README.read_text(encoding="utf-8")
    assert GUIDES, "no guide under docs/guides/"
    for guide in GUIDES:
        assert f"](docs/guides/{guide.name})" in readme, f"the README's table does not point at {guide.name}"
        assert f"](guides/{guide.name})" in index, f"docs/README.md does not list {guide.name}"
