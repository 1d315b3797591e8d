"""The pages ``make docs`` writes under ``docs/``, each from its module, and the writer."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from osteo_core.docgen.care_gaps import care_gaps_page
from osteo_core.docgen.inputs import inputs_page
from osteo_core.docgen.measures import measures_page
from osteo_core.docgen.rules import rule_sets_page, rules_page
from osteo_core.docgen.tables import tables_page, worklist_page

PAGES: dict[str, Callable[[], str]] = {
    "inputs.md": inputs_page,
    "tables.md": tables_page,
    "rules.md": rules_page,
    "rule_sets.md": rule_sets_page,
    "care_gaps.md": care_gaps_page,
    "measures.md": measures_page,
    "worklist.md": worklist_page,
}


def write_docs(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, page in PAGES.items():
        path = folder / name
        path.write_text(page(), encoding="utf-8")
        written.append(path)
    return written
