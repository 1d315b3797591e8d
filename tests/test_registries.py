"""One registry per concept: a gap, an input kind and a shipped data file are each declared once, and everything
else takes them from there.

* Gaps (``schemas.gaps``): no gap's name is spelled in a string of the code anywhere else (the data files and
  the tests aside; a docstring or a comment may name one), the declarations and ``care_gaps.toml`` agree, and
  every gap has its finder.
* Input kinds (``schemas.inputs``): each kind's option is its name, the request's field and an option of the
  command line.
* Shipped files (``osteo_core.shipped.Shipped``): rule sets, profiles and measures resolve "a shipped name or a
  user's file" with the one resolver.
"""

from __future__ import annotations

import ast
import copy
import dataclasses
import re
from pathlib import Path

import pytest

from osteo_core import reference
from osteo_core.cli.parser import build_parser
from osteo_core.decide.rules import RULE_SETS
from osteo_core.errors import InputError
from osteo_core.gaps.care_gaps import FINDERS
from osteo_core.ingest.profiles import PROFILES
from osteo_core.measures.specs import MEASURE_FILES
from osteo_core.pipeline.request import FIELDS, ScreenRequest
from osteo_core.shipped import Shipped
from schemas.gaps import GAP_NAMES, GAPS
from schemas.inputs import INPUT_KINDS, INPUTS, OPTIONS

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("schemas", "osteo_core", "flows")
GAP_REGISTRY = ROOT / "schemas" / "gaps.py"


def _strings(source: str, where: str = "<source>") -> list[tuple[int, str]]:
    """(line, text) of every string constant of the code, f-strings' literal parts included; not docstrings."""
    tree = ast.parse(source, where)
    documentation = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                documentation.add(id(first.value))
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in documentation
    ]


def _spelled(source: str, names: tuple[str, ...], where: str = "<source>") -> list[str]:
    """Where a string of ``source`` spells one of ``names`` as a word (``overdue_dxa_share`` is another word)."""
    words = re.compile(r"(?<![A-Za-z0-9_])(" + "|".join(map(re.escape, names)) + r")(?![A-Za-z0-9_])")
    return [f"{where}:{line}: {hit.group(1)}" for line, text in _strings(source, where) for hit in words.finditer(text)]


def test_a_gap_name_is_spelled_only_in_its_registry():
    spelled = [
        hit
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        if path != GAP_REGISTRY
        for hit in _spelled(path.read_text(), GAP_NAMES, str(path.relative_to(ROOT)))
    ]
    assert spelled == [], "use the gap's declaration (schemas.gaps) instead"


def test_the_spelling_check_sees_a_string_and_passes_over_documentation():
    """The check can fail: a gap's name in a string or an f-string is found; in a docstring, a comment, an
    identifier or a longer word it is not."""
    source = (
        '"""The screening_due gap."""\n'
        "def screening_due(params):\n"
        '    """Reads params["screening_due"]."""\n'
        "    # the screening_due section\n"
        '    share = "overdue_dxa_share"\n'
        '    return params["screening_due"], f"{share} and overdue_dxa"\n'
    )
    assert _spelled(source, GAP_NAMES) == ["<source>:6: screening_due", "<source>:6: overdue_dxa"]


def test_the_declared_gaps_are_those_of_the_data_file_most_urgent_first():
    params = reference.care_gap_parameters()  # checked against the declarations when read
    assert list(GAP_NAMES) == list(reference.gaps_by_priority()) == list(params["priority"])
    assert len(set(GAP_NAMES)) == len(GAP_NAMES)


@pytest.mark.parametrize(
    ("change", "said"),
    [
        (lambda p: p["priority"].pop("overdue_dxa"), "[priority] differs from the declared gaps in ['overdue_dxa']"),
        (lambda p: p["priority"].update(new_gap=9), "[priority] differs from the declared gaps in ['new_gap']"),
        (lambda p: p["lifecycle"]["needs_input"].update(overdue_dxa="exams"), "'exams' is no input kind"),
        (lambda p: p["lifecycle"]["dxa_closes"].append("new_gap"), "dxa_closes names an undeclared gap"),
        (lambda p: p.pop("screening_due"), "[screening_due] missing"),
        (lambda p: p["post_fracture_untreated"].pop("lookback_years"), "lookback_years missing"),
        (lambda p: p["priority"].update(overdue_dxa=1), "two gaps one priority"),
    ],
)
def test_a_data_file_that_disagrees_with_the_declarations_is_refused(change, said):
    params = copy.deepcopy(reference.care_gap_parameters())
    change(params)
    with pytest.raises(ValueError, match=re.escape(said)):
        reference.check_care_gaps(params)


def test_every_declared_gap_has_a_finder_and_words():
    assert set(FINDERS) == set(GAP_NAMES)
    params = reference.care_gap_parameters()
    for gap in GAPS:
        words = gap.opens(params.get(gap.name, {}))  # every {key} of its words is a key of its section
        assert words and "{" not in words, gap.name


def test_each_input_kind_is_one_option_one_request_field_and_its_own_fields():
    request_fields = {f.name for f in dataclasses.fields(ScreenRequest)}
    args = build_parser().parse_args(["screen", *(word for kind in OPTIONS for word in (kind.option, "x.csv"))])
    assert INPUTS == tuple(kind.name for kind in INPUT_KINDS) and set(FIELDS) == set(INPUTS)
    for kind in OPTIONS:  # the option's value lands in the request's field of the kind's name
        assert kind.option == f"--{kind.name}" and kind.name in request_fields
        assert getattr(args, kind.name) in ("x.csv", ["x.csv"])
    for kind in INPUT_KINDS:
        names = {f.name for f in kind.fields}
        assert set(kind.required_headers) | set(kind.one_of_headers) <= names, kind.name
    assert [kind.name for kind in INPUT_KINDS if not kind.optional] == ["scans"]


@pytest.mark.parametrize("shipped", [RULE_SETS, PROFILES, MEASURE_FILES], ids=lambda s: s.folder)
def test_a_shipped_name_or_a_file_is_resolved_by_the_one_resolver(shipped, tmp_path):
    assert isinstance(shipped, Shipped) and shipped.names() == [p.stem for p in shipped.paths()]
    name = shipped.names()[0]
    assert shipped.resolve(name) == shipped.shipped(name)
    own = tmp_path / "mine.toml"
    own.write_text("")
    assert shipped.resolve(str(own)) == own
    with pytest.raises(InputError, match=f"unknown {shipped.what} \\(shipped: {name}"):
        shipped.resolve("no_such_name")
    with pytest.raises(InputError, match=f"{shipped.file_word} not found"):
        shipped.resolve(str(tmp_path / "missing.toml"))
