"""Hold a run's process at the first call of one function until a signal ends the hold: the races a stop can meet.

``hold_env(folder, at)`` writes a ``sitecustomize`` into ``folder`` and returns the environment that makes a process
load it (``PYTHONPATH`` first), with the two files it writes: ``mark`` (the process id, once the hold has begun) and
``ended`` (the name of the exception that ended it). Where:
- ``TASK_RUN_CREATION``: Prefect 3.8.8 turned a SIGTERM or Ctrl-C landing there into ``ValueError('Task run is not
  set')`` with a traceback (CI, stop 40);
- ``THE_SWITCH`` with ``lose_it``: the signal is swallowed, as Python swallows one raised inside a finalizer
  ("Exception ignored in ... TerminationSignal", seen in the suite), and the run goes on to publish.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

_SITECUSTOMIZE = """
import importlib.abc, importlib.util, os, sys, time
from pathlib import Path

MARK, ENDED = Path(os.environ["OSTEO_TEST_HOLD_MARK"]), Path(os.environ["OSTEO_TEST_HOLD_ENDED"])
MODULE, FUNCTION = os.environ["OSTEO_TEST_HOLD_AT"].split(":")
LOSE_IT = os.environ["OSTEO_TEST_HOLD_LOSE_IT"] == "1"


def _write(path, text):
    part = path.with_name(path.name + ".part")
    part.write_text(text)
    os.replace(part, path)


class HoldFirstCall(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name != MODULE:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        load = spec.loader.exec_module

        def exec_module(module):
            load(module)
            original = getattr(module, FUNCTION)

            def held(*args, **kwargs):
                if not MARK.exists():
                    _write(MARK, str(os.getpid()))
                    try:
                        time.sleep(120)
                    except BaseException as exc:
                        _write(ENDED, type(exc).__name__)
                        if not LOSE_IT:
                            raise
                return original(*args, **kwargs)

            setattr(module, FUNCTION, held)

        spec.loader.exec_module = exec_module
        return spec


sys.meta_path.insert(0, HoldFirstCall())
"""


@dataclass(frozen=True)
class Hold:
    env: dict[str, str]
    mark: Path
    ended: Path

    def held_pid(self) -> int | None:
        return int(self.mark.read_text()) if self.mark.exists() else None


TASK_RUN_CREATION = "prefect.task_engine:_create_task_run_locally"
THE_SWITCH = "osteo_core.publish.folder:promote"  # a run switched in as the published one


def hold_env(folder: Path, at: str = TASK_RUN_CREATION, lose_it: bool = False) -> Hold:
    hook = folder / "hold-hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(_SITECUSTOMIZE)
    path = os.pathsep.join(p for p in (str(hook), os.environ.get("PYTHONPATH", "")) if p)
    mark, ended = folder / "held", folder / "hold-ended"
    env = {
        "PYTHONPATH": path,
        "OSTEO_TEST_HOLD_MARK": str(mark),
        "OSTEO_TEST_HOLD_ENDED": str(ended),
        "OSTEO_TEST_HOLD_AT": at,
        "OSTEO_TEST_HOLD_LOSE_IT": "1" if lose_it else "0",
    }
    return Hold(env, mark, ended)
