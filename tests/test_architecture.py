"""The package follows the data, and its imports only run down the flow.

Read from the source (every ``import`` and ``from … import``, including those inside functions), not
from what happens to be loaded: a cycle or a reach back up the flow fails here before anyone runs it.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("schemas", "osteo_core", "flows")
# the flow of the data, upstream first: a layer may import its own and earlier layers only
LAYERS = (
    ("schemas",),
    ("osteo_core.errors", "osteo_core.resources", "osteo_core.settings", "osteo_core.reference", "osteo_core"),
    ("osteo_core.ingest",),
    ("osteo_core.validate", "osteo_core.decide", "osteo_core.gaps", "osteo_core.measures", "osteo_core.publish"),
    ("osteo_core.pipeline",),
    ("osteo_core.outputs", "osteo_core.demo"),
    ("osteo_core.docgen",),  # build time: writes docs/ from all of the above (make docs); nothing imports it
    ("flows",),
    ("osteo_core.cli",),
)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports() -> dict[str, set[str]]:
    """module → the project modules it imports (``from pkg import mod`` counts as importing ``pkg.mod``)."""
    modules = {_module_name(p): p for package in PACKAGES for p in (ROOT / package).rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module)
                found.update(f"{node.module}.{alias.name}" for alias in node.names)
        graph[name] = {m for m in found if m in modules and m != name}
    return graph


def _layer(module: str) -> int:
    best, best_len = None, -1
    for number, members in enumerate(LAYERS):
        for member in members:
            if (module == member or module.startswith(member + ".")) and len(member) > best_len:
                best, best_len = number, len(member)
    assert best is not None, f"{module} belongs to no layer: add it to LAYERS"
    return best


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_module_import_graph_has_no_cycle():
    assert _cycle(_imports()) is None


def test_the_folder_import_graph_has_no_cycle():
    """One node per folder (``osteo_core.validate``, ``schemas`` …): no two folders import each other."""
    folders: dict[str, set[str]] = {}

    def folder(module: str) -> str:  # osteo_core's own top-level modules (errors, settings …) are nodes of their own
        parts = module.split(".")
        return ".".join(parts[:2]) if parts[0] == "osteo_core" and len(parts) > 1 else parts[0]

    for module, targets in _imports().items():
        folders.setdefault(folder(module), set()).update(folder(t) for t in targets if folder(t) != folder(module))
    assert _cycle(folders) is None


def test_imports_only_run_down_the_flow():
    upward = [
        f"{module} (layer {_layer(module)}) imports {target} (layer {_layer(target)})"
        for module, targets in _imports().items()
        for target in targets
        if _layer(target) > _layer(module)
    ]
    assert upward == []


def test_only_the_command_line_reaches_prefect_and_the_flows():
    importers = sorted(m for m, targets in _imports().items() if any(t.split(".")[0] == "flows" for t in targets))
    assert [m for m in importers if not m.startswith("flows")] == ["osteo_core.cli.screen"]


def test_nothing_imports_the_docs_generator():
    """``osteo_core.docgen`` writes the reference pages at build time: no screen and no command loads it."""
    importers = {
        m
        for m, targets in _imports().items()
        for t in targets
        if t.split(".")[:2] == ["osteo_core", "docgen"] and m.split(".")[:2] != ["osteo_core", "docgen"]
    }
    assert importers == set()


def test_the_layer_check_sees_an_upward_import():
    """The check can fail: a module of ``schemas`` importing the pipeline is reported."""
    graph = {"schemas.scans": {"osteo_core.pipeline.stages"}, "osteo_core.pipeline.stages": set()}
    upward = [(m, t) for m, ts in graph.items() for t in ts if _layer(t) > _layer(m)]
    assert upward == [("schemas.scans", "osteo_core.pipeline.stages")]
    assert _cycle({"a": {"b"}, "b": {"a"}}) == ["a", "b", "a"]


def test_sql_gaps_and_explain_load_neither_prefect_nor_pandera_nor_plotly():
    """The read-only commands start fast: their modules do not import the heavy engines."""
    code = (
        "import sys\n"
        "import osteo_core.cli, osteo_core.publish.catalog, osteo_core.outputs.gap_list, osteo_core.outputs.explain\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'prefect', 'pandera', 'plotly'}))\n"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert loaded.stdout.strip() == "[]"


def test_help_loads_no_data_library():
    """``osteo --help`` and ``osteo worklist --help`` answer at once: building the parser (which reads the
    outreach statuses) imports neither Polars nor DuckDB nor an engine. Before: the statuses pulled in Polars."""
    code = (
        "import sys\n"
        "import osteo_core.cli\n"
        "osteo_core.cli.parser.build_parser()\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'polars', 'duckdb', 'prefect', 'pandera', 'plotly'}))\n"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert loaded.stdout.strip() == "[]"
