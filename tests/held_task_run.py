"""Hold a Prefect run's first task-run creation until a signal ends it: the race a stop can meet.

``hold_env(folder)`` writes a ``sitecustomize`` into ``folder`` and returns the environment that makes a process
load it (``PYTHONPATH`` first), with the two files it writes: ``mark`` (the process id, once the hold has begun, in
``prefect.task_engine._create_task_run_locally``) and ``ended`` (the name of the exception that ended it). Prefect
3.8.8 turned a SIGTERM or Ctrl-C landing there into ``ValueError('Task run is not set')`` with a traceback (CI,
stop 40).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

_SITECUSTOMIZE = """
import importlib.abc, importlib.util, os, sys, time
from pathlib import Path

MARK, ENDED = Path(os.environ["OSTEO_TEST_HOLD_MARK"]), Path(os.environ["OSTEO_TEST_HOLD_ENDED"])


def _write(path, text):
    part = path.with_name(path.name + ".part")
    part.write_text(text)
    os.replace(part, path)


class HoldFirstTaskRun(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name != "prefect.task_engine":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        load = spec.loader.exec_module

        def exec_module(module):
            load(module)
            create = module._create_task_run_locally

            def held(*args, **kwargs):
                if not MARK.exists():
                    _write(MARK, str(os.getpid()))
                    try:
                        time.sleep(120)
                    except BaseException as exc:
                        _write(ENDED, type(exc).__name__)
                        raise
                return create(*args, **kwargs)

            module._create_task_run_locally = held

        spec.loader.exec_module = exec_module
        return spec


sys.meta_path.insert(0, HoldFirstTaskRun())
"""


@dataclass(frozen=True)
class Hold:
    env: dict[str, str]
    mark: Path
    ended: Path

    def held_pid(self) -> int | None:
        return int(self.mark.read_text()) if self.mark.exists() else None


def hold_env(folder: Path) -> Hold:
    hook = folder / "hold-hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(_SITECUSTOMIZE)
    path = os.pathsep.join(p for p in (str(hook), os.environ.get("PYTHONPATH", "")) if p)
    mark, ended = folder / "held", folder / "hold-ended"
    env = {"PYTHONPATH": path, "OSTEO_TEST_HOLD_MARK": str(mark), "OSTEO_TEST_HOLD_ENDED": str(ended)}
    return Hold(env, mark, ended)
