"""Progress per stage and partition on a terminal (rich); silent when stderr is not a terminal."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import ClassVar

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.progress import Progress as RichProgress


class Progress:
    """The active progress display; ``Progress.current()`` is a no-op one when nothing is shown."""

    _active: ClassVar[Progress | None] = None

    def __init__(self, display: RichProgress | None = None):
        self.display = display

    @classmethod
    def current(cls) -> Progress:
        return cls._active or cls()

    @classmethod
    @contextmanager
    def for_terminal(cls, stream=None) -> Iterator[Progress]:
        stream = stream or sys.stderr
        if not stream.isatty():
            yield cls()
            return
        display = RichProgress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=Console(file=stream),
            transient=False,
        )
        cls._active = cls(display)
        try:
            with display:
                yield cls._active
        finally:
            cls._active = None

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        if self.display is None:
            yield
            return
        task = self.display.add_task(name, total=1)
        yield
        self.display.update(task, completed=1)

    @contextmanager
    def items(self, name: str, total: int) -> Iterator[Callable[[], None]]:
        """A bar of ``total`` items (the partitions); the callable advances it by one."""
        if self.display is None:
            yield lambda: None
            return
        task = self.display.add_task(name, total=total)
        yield lambda: self.display.advance(task)
